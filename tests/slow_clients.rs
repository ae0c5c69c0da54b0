//! Hostile and slow clients (DESIGN §7.6): request bodies that stall are cut after
//! `body_timeout` (408 on HTTP/1.1, a reset stream on HTTP/2) and are never blamed on the
//! upstream; `response_timeout` runs from the end of the request body; a client that accepts no
//! response bytes is cut after `send_timeout` and the upstream connection serving it freed; one
//! HTTP/2 connection has at most `max_in_flight_per_connection` requests upstream at once.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{bounded, get, read_response, Bascule, FakeUpstream, ProxyConfig, TEST_LIMIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A request body fed through a channel: it stalls while the sender is silent.
struct ChannelBody(mpsc::Receiver<Bytes>, u64);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.1 == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.1)
    }
}

/// An HTTP/2 (prior knowledge) connection to `addr`.
async fn h2c(addr: std::net::SocketAddr) -> hyper::client::conn::http2::SendRequest<ChannelBody> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    send
}

fn two_tiers(primary: &FakeUpstream, secondary: &FakeUpstream, limits: &str) -> ProxyConfig {
    ProxyConfig::new()
        .limits(limits)
        .defaults("connect_timeout = \"1s\"\n[defaults.health]\ninterval = \"60s\"\nfall = 100\n[defaults.passive]\nconsecutive_failures = 1\nejection = \"30s\"")
        .upstream("primary", primary)
        .upstream("secondary", secondary)
        .route_with(
            "all",
            &["*"],
            "/",
            r#"["primary", "secondary"]"#,
            "[routes.retry]\nbuffer_body = \"1KiB\"",
        )
}

#[tokio::test]
async fn connections_that_never_send_their_declared_body_are_cut_with_408() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::echo("site").await;
        let proxy = ProxyConfig::new()
            .limits("max_connections = 40\nbody_timeout = \"500ms\"")
            .one_route("all", &[&site], "")
            .start()
            .await;
        // Every connection slot taken by a body that never comes.
        let mut held = Vec::new();
        for _ in 0..40 {
            let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
            s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
                .await
                .expect("write head");
            held.push(s);
        }
        let start = Instant::now();
        for s in &mut held {
            let r = read_response(s).await.expect("an answer");
            assert_eq!(r.status, 408);
            let mut rest = Vec::new();
            let n = s.read_to_end(&mut rest).await.unwrap_or(0);
            assert_eq!(n, 0, "the connection is closed after the 408");
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(site.hits(), 0, "nothing was forwarded");
        // The slots are free again.
        assert_eq!(get(proxy.addr, "a", "/").await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn an_http2_stream_whose_body_stalls_is_reset_and_its_connection_keeps_serving() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::echo("site").await;
        let proxy = ProxyConfig::new()
            .limits("body_timeout = \"500ms\"")
            .one_route("all", &[&site], "")
            .start()
            .await;
        let mut send = h2c(proxy.addr).await;
        let (tx, rx) = mpsc::channel(1);
        tx.send(Bytes::from_static(b"0123456789"))
            .await
            .expect("send");
        let req = Request::post(format!("http://{}/", proxy.addr))
            .body(ChannelBody(rx, 100))
            .expect("request");
        let start = Instant::now();
        let r = send.send_request(req).await;
        assert!(r.is_err(), "the stream is reset, not answered: {r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        drop(tx);
        // The same connection still serves.
        let (_tx2, rx2) = mpsc::channel(1);
        let ok = Request::get(format!("http://{}/", proxy.addr))
            .body(ChannelBody(rx2, 0))
            .expect("request");
        let resp = send.send_request(ok).await.expect("answer");
        assert_eq!(resp.status(), 200);
    })
    .await;
}

/// Sends a streamed (larger than buffer_body) POST head and `sent` body bytes of `declared`.
async fn streamed_post(proxy: &Bascule, declared: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&vec![b'x'; sent]).await.expect("body");
    s
}

#[tokio::test]
async fn a_streamed_body_that_stalls_gets_408_and_never_counts_against_the_upstream() {
    bounded(TEST_LIMIT, async {
        let (primary, secondary) = (
            FakeUpstream::echo("primary").await,
            FakeUpstream::ok("secondary").await,
        );
        let proxy = two_tiers(&primary, &secondary, "body_timeout = \"500ms\"")
            .start()
            .await;
        // Three clients stall mid-body (over buffer_body, so the body streams to the primary);
        // one failure would eject the primary (consecutive_failures = 1).
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(streamed_post(&proxy, 200_000, 5_000).await);
        }
        for s in &mut clients {
            let r = read_response(s).await.expect("an answer");
            assert_eq!(r.status, 408, "the client's stall, not a gateway timeout");
        }
        let r = get(proxy.addr, "a", "/").await;
        assert_eq!(
            r.header("x-bascule-upstream"),
            "primary",
            "the primary was not ejected"
        );
    })
    .await;
}

#[tokio::test]
async fn response_timeout_runs_from_the_end_of_a_streamed_body() {
    bounded(TEST_LIMIT, async {
        let (primary, secondary) = (FakeUpstream::echo("primary").await, FakeUpstream::ok("secondary").await);
        let proxy = two_tiers(&primary, &secondary, "body_timeout = \"2s\"")
            .defaults("response_timeout = \"300ms\"\n[defaults.health]\ninterval = \"60s\"\nfall = 100\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0")
            .start()
            .await;
        // A slow but steady upload: 8 pieces 150 ms apart, 1.2 s in all, each well within
        // body_timeout; the echo answers once it has the whole body.
        let mut s = streamed_post(&proxy, 8 * 4096, 4096).await;
        for _ in 1..8 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(&[b'y'; 4096]).await.expect("body piece");
        }
        let r = read_response(&mut s).await.expect("an answer");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("x-bascule-upstream"), "primary");
    })
    .await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_after_send_timeout_and_frees_the_upstream() {
    bounded(TEST_LIMIT, async {
        let big = Bytes::from(vec![b'z'; 64 << 20]);
        let site = FakeUpstream::body("site", big).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .limits("send_timeout = \"1s\"")
            .one_route("all", &[&site], "")
            .start()
            .await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("request");
        // Never read: the upstream's answer is in flight, then cut.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(proxy.upstream_status("site").await["in_flight"], 1);
        proxy
            .wait_status(Duration::from_secs(5), "upstream freed", |st| {
                st["upstreams"][0]["in_flight"] == 0
            })
            .await;
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        assert!(
            got < 64 << 20,
            "the response was cut short, got {got} bytes"
        );
        assert_eq!(get(proxy.addr, "a", "/healthz").await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn one_http2_connection_has_at_most_max_in_flight_per_connection_requests_upstream() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::hang_on("site", "/hang").await;
        let proxy = ProxyConfig::new()
            .limits("max_in_flight_per_connection = 4")
            .one_route("all", &[&site], "")
            .start()
            .await;
        let send = h2c(proxy.addr).await;
        let mut waiting = Vec::new();
        for _ in 0..10 {
            let mut send = send.clone();
            let (_tx, rx) = mpsc::channel(1);
            let req = Request::get(format!("http://{}/hang", proxy.addr))
                .body(ChannelBody(rx, 0))
                .expect("request");
            waiting.push(tokio::spawn(async move {
                let _keep_body_open = _tx;
                send.send_request(req).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(site.hits(), 4, "the other six wait for a slot");
        // Another connection is not held up by this one's limit.
        assert_eq!(get(proxy.addr, "a", "/").await.status, 200);
        for w in waiting {
            w.abort();
        }
    })
    .await;
}
