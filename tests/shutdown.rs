//! Graceful shutdown (DESIGN §4 "Shutdown"): on SIGTERM the listening sockets close at once,
//! in-flight requests finish within `shutdown_grace`, and the process exits 0.

mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use support::{bounded, get, read_response, wait_closed, FakeUpstream, ProxyConfig, TEST_LIMIT};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_refuses_new_connections_and_exits_0() {
    bounded(TEST_LIMIT, async {
        let slow = FakeUpstream::slow("slow", Duration::from_secs(1)).await;
        let mut proxy = ProxyConfig::new()
            .limits(r#"shutdown_grace = "5s""#)
            .one_route("all", &[&slow], "")
            .start()
            .await;
        let addr = proxy.addr;

        let in_flight = tokio::spawn(async move { get(addr, "www.example.com", "/slow").await });
        let waiting = Instant::now();
        while slow.hits() == 0 {
            assert!(
                waiting.elapsed() < Duration::from_secs(3),
                "the request never reached the upstream"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let sigterm = Instant::now();
        proxy.terminate();

        // New connections are refused right away, while the request is still in flight.
        let refused = loop {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => break sigterm.elapsed(),
                // While the listener closes, a handshake caught half-way is reset.
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                Err(e) => panic!("unexpected connect error: {e}"),
                Ok(_queued_before_close) => {}
            }
            assert!(
                sigterm.elapsed() < Duration::from_millis(800),
                "still accepting connections {:?} after SIGTERM",
                sigterm.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            !in_flight.is_finished(),
            "the in-flight request should still be running when new connections are refused"
        );

        let r = in_flight.await.expect("in-flight task");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "slow from slow");

        let status = proxy
            .wait_exit(Duration::from_secs(5))
            .await
            .expect("bascule must exit within the grace period");
        assert!(status.success(), "exit status {status}\n{}", proxy.logs());
        assert!(
            sigterm.elapsed() < Duration::from_secs(5),
            "exit took {:?}; refused after {refused:?}",
            sigterm.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    bounded(TEST_LIMIT, async {
        let ok = FakeUpstream::ok("ok").await;
        let mut proxy = ProxyConfig::new()
            .limits(r#"shutdown_grace = "10s""#)
            .one_route("all", &[&ok], "")
            .start()
            .await;
        // An HTTP/1.1 keep-alive connection, left open and idle after one request.
        let mut h1 = TcpStream::connect(proxy.addr).await.expect("connect");
        h1.write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_response(&mut h1).await.expect("response").status, 200);
        // An HTTP/2 connection, left open and idle after one request.
        let stream = TcpStream::connect(proxy.addr).await.expect("connect");
        let (mut h2, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("h2 handshake");
        let h2_conn = tokio::spawn(conn);
        let req = http::Request::get(format!("http://{}/", proxy.addr))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        assert_eq!(
            h2.send_request(req).await.expect("h2 response").status(),
            200
        );

        let sigterm = Instant::now();
        proxy.terminate();
        let status = proxy
            .wait_exit(Duration::from_secs(3))
            .await
            .expect("idle connections must not keep bascule alive for the grace period");
        assert!(status.success(), "exit status {status}");
        assert!(sigterm.elapsed() < Duration::from_secs(2));
        assert!(
            wait_closed(&mut h1, Duration::from_secs(1)).await.is_some(),
            "the idle HTTP/1.1 connection was closed"
        );
        drop(h2);
        h2_conn.abort();
    })
    .await;
}
