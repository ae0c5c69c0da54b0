//! The attempt bodies: a streamed body that an attempt never read comes back, one that was
//! read does not, the prefix goes first, and a client that stops sending is cut after
//! `body_timeout` (paused time). A real `Incoming` comes from a hyper HTTP/1.1 connection over
//! an in-memory pipe ([`loopback`]), so no socket is needed.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::*;

/// A request body as a hyper server receives it (`Incoming`, streamed), and the sender of the
/// chunks its client sends: dropping the sender ends the body.
pub(crate) async fn loopback() -> (Incoming, Sender<Bytes>) {
    let (client_io, server_io) = tokio::io::duplex(64 << 10);
    let (got_tx, got_rx) = oneshot::channel();
    let got_tx = std::sync::Mutex::new(Some(got_tx));
    let svc = service_fn(move |req: http::Request<Incoming>| {
        if let Some(tx) = got_tx.lock().expect("lock").take() {
            let _test_may_be_gone = tx.send(req.into_body());
        }
        // The answer never comes: the body stays the test's to read.
        std::future::pending::<Result<http::Response<String>, Infallible>>()
    });
    tokio::spawn(
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server_io), svc),
    );
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io))
        .await
        .expect("handshake over the pipe");
    tokio::spawn(conn);
    let (chunks, body) = Channel::new(4);
    let req = http::Request::post("/").body(body).expect("request");
    tokio::spawn(async move { sender.send_request(req).await });
    (got_rx.await.expect("the server got the request"), chunks)
}

/// The next piece of `s`, as an attempt's body would ask for it.
async fn next(s: &mut Stream) -> Option<Result<Frame<Bytes>, BodyError>> {
    std::future::poll_fn(|cx| s.poll_next(cx)).await
}

fn stream(prefix: &[&'static str], rest: Incoming, timeout: Duration) -> Stream {
    let prefix = prefix
        .iter()
        .map(|p| Bytes::from_static(p.as_bytes()))
        .collect();
    Stream::new(prefix, rest, timeout)
}

#[tokio::test]
async fn a_streamed_body_its_attempt_never_read_comes_back_with_its_prefix() {
    let (rest, _chunks) = loopback().await;
    let (body, returned) = UpstreamBody::returnable(stream(&["a"], rest, Duration::from_secs(5)));
    drop(body);
    let back = returned
        .back
        .await
        .expect("the unread stream is given back");
    assert_eq!(back.prefix, [Bytes::from_static(b"a")]);
    assert!(
        returned.done.await.is_err(),
        "never sent: done is dropped, not told"
    );
}

#[tokio::test]
async fn a_streamed_body_its_attempt_began_to_read_is_not_given_back() {
    let (rest, _chunks) = loopback().await;
    let (mut body, returned) =
        UpstreamBody::returnable(stream(&["a"], rest, Duration::from_secs(5)));
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "a");
    drop(body);
    assert!(
        returned.back.await.is_err(),
        "partly sent: it cannot be replayed"
    );
}

#[tokio::test]
async fn the_prefix_goes_first_then_the_rest_and_done_is_told_at_the_end() {
    let (rest, mut chunks) = loopback().await;
    let (body, returned) =
        UpstreamBody::returnable(stream(&["a", "b"], rest, Duration::from_secs(5)));
    chunks
        .send_data(Bytes::from_static(b"c"))
        .await
        .expect("send");
    drop(chunks);
    let all = body.collect().await.expect("whole body").to_bytes();
    assert_eq!(all, "abc");
    assert!(returned.done.await.is_ok(), "sent whole: done is told");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_nothing_for_body_timeout_fails_with_timeout() {
    let (rest, _chunks) = loopback().await;
    let (mut body, returned) = UpstreamBody::returnable(stream(&[], rest, Duration::from_secs(2)));
    let start = Instant::now();
    let err = body.frame().await.expect("a frame").expect_err("a timeout");
    assert!(matches!(err, BodyError::Timeout), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(returned.done.await.is_ok(), "a failed body is done too");
}

#[tokio::test(start_paused = true)]
async fn each_chunk_restarts_the_inactivity_timer() {
    let (rest, chunks) = loopback().await;
    let mut body = stream(&[], rest, Duration::from_secs(1));
    let start = Instant::now();
    tokio::spawn(async move {
        let mut chunks = chunks;
        for c in ["x", "y"] {
            tokio::time::sleep(Duration::from_millis(600)).await;
            chunks
                .send_data(Bytes::from_static(c.as_bytes()))
                .await
                .expect("send");
        }
        // Keep the body open (no end of stream) past the timeout.
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    for want in ["x", "y"] {
        let frame = next(&mut body).await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().expect("data"), want);
    }
    let err = next(&mut body)
        .await
        .expect("a frame")
        .expect_err("a timeout");
    assert!(matches!(err, BodyError::Timeout), "{err}");
    // Two chunks 600 ms apart, then 1 s of silence: never 1 s without bytes before that.
    assert_eq!(start.elapsed(), Duration::from_millis(2200));
}

#[test]
fn a_buffered_body_is_sent_once_and_says_its_exact_size() {
    let mut body = UpstreamBody::Full(Some(Bytes::from_static(b"abc")));
    assert_eq!(body.size_hint().exact(), Some(3));
    assert!(!body.is_end_stream());
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    let first = Pin::new(&mut body).poll_frame(&mut cx);
    assert!(matches!(first, Poll::Ready(Some(Ok(_)))));
    assert!(body.is_end_stream());
    assert!(matches!(
        Pin::new(&mut body).poll_frame(&mut cx),
        Poll::Ready(None)
    ));
    assert!(UpstreamBody::Empty.is_end_stream());
    assert_eq!(UpstreamBody::Empty.size_hint().exact(), Some(0));
}
