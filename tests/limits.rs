//! Bad input and connection limits (DESIGN §4 "Bad input", §3 `[limits]`): malformed requests
//! get 400, oversized heads 431, slow head senders and idle keep-alive connections are cut.

mod support;

use std::time::Duration;

use support::{
    bounded, raw_exchange, read_response, wait_closed, Bascule, FakeUpstream, ProxyConfig,
    TEST_LIMIT,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn proxy_with_limits(site: &FakeUpstream, limits: &str) -> Bascule {
    ProxyConfig::new()
        .limits(limits)
        .one_route("all", &[site], "")
        .start()
        .await
}

#[tokio::test]
async fn a_malformed_request_line_gets_400() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, "").await;
        let r = raw_exchange(proxy.addr, b"THIS IS NOT HTTP AT ALL\r\n\r\n").await;
        assert_eq!(r.status, 400);
        let r = raw_exchange(proxy.addr, b"GET /\x01bad HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert_eq!(r.status, 400);
        assert_eq!(site.hits(), 0);
        // The process survived: a good request still works.
        let r = raw_exchange(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200);
    })
    .await;
}

#[tokio::test]
async fn an_http_1_1_request_without_exactly_one_valid_host_gets_400() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, "").await;
        for req in [
            &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n",
        ] {
            let r = raw_exchange(proxy.addr, req).await;
            assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(req));
        }
        assert_eq!(site.hits(), 0);
        // The authority of an absolute-form target stands in for Host.
        let r = raw_exchange(
            proxy.addr,
            b"GET http://www.example.com/ HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_request_head_larger_than_max_header_bytes_gets_431() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, r#"max_header_bytes = "8KiB""#).await;
        let mut req = String::from("GET / HTTP/1.1\r\nHost: www.example.com\r\n");
        for i in 0..20 {
            req.push_str(&format!("X-Filler-{i:02}: {}\r\n", "a".repeat(1000)));
        }
        req.push_str("\r\n");
        assert!(req.len() > 20_000);
        let r = raw_exchange(proxy.addr, req.as_bytes()).await;
        assert_eq!(r.status, 431);
        assert_eq!(site.hits(), 0);
        // A head under the limit passes.
        let small = "GET / HTTP/1.1\r\nHost: a\r\nX-Filler: aaaa\r\nConnection: close\r\n\r\n";
        assert_eq!(raw_exchange(proxy.addr, small.as_bytes()).await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_line_is_cut_after_header_timeout() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, r#"header_timeout = "500ms""#).await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(b"GET /slow HT").await.expect("write");
        let (took, got) = wait_closed(&mut s, Duration::from_secs(3))
            .await
            .expect("the server must close a slow head's connection");
        assert!(
            took >= Duration::from_millis(400) && took <= Duration::from_secs(2),
            "closed after {took:?}"
        );
        let got = String::from_utf8_lossy(&got);
        assert!(!got.contains(" 200 "), "{got}");
        assert_eq!(site.hits(), 0);
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_cut_after_header_timeout() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, r#"header_timeout = "500ms""#).await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let (took, _) = wait_closed(&mut s, Duration::from_secs(3))
            .await
            .expect("the server must close a silent connection");
        assert!(
            took >= Duration::from_millis(400) && took <= Duration::from_secs(2),
            "closed after {took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, r#"idle_timeout = "600ms""#).await;
        let req = b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(req).await.expect("write");
        let r = read_response(&mut s).await.expect("first response");
        assert_eq!(r.status, 200);
        // Still open well within the idle timeout: a second request is served.
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(req).await.expect("write");
        let r = read_response(&mut s).await.expect("second response");
        assert_eq!(r.status, 200);
        assert_eq!(site.hits(), 2);
        // Then, idle, it is closed.
        let (took, got) = wait_closed(&mut s, Duration::from_secs(3))
            .await
            .expect("the server must close an idle connection");
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(
            took >= Duration::from_millis(450) && took <= Duration::from_secs(2),
            "closed after {took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_keep_alive_connection_that_stalls_in_its_next_head_is_cut_after_header_timeout() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy =
            proxy_with_limits(&site, "header_timeout = \"500ms\"\nidle_timeout = \"10s\"").await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
            .await
            .expect("write");
        assert_eq!(read_response(&mut s).await.expect("response").status, 200);
        // Past the first head's deadline, idle (allowed for 10 s), then half a head.
        tokio::time::sleep(Duration::from_millis(700)).await;
        s.write_all(b"GET /next HTTP/1.1\r\nHost: www.exa")
            .await
            .expect("write");
        let (took, got) = wait_closed(&mut s, Duration::from_secs(4))
            .await
            .expect("the server must cut a stalled head on a keep-alive connection");
        assert!(
            took >= Duration::from_millis(400) && took <= Duration::from_secs(2),
            "closed after {took:?}"
        );
        assert!(!String::from_utf8_lossy(&got).contains(" 200 "));
        assert_eq!(site.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_until_one_closes() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = proxy_with_limits(&site, "max_connections = 1").await;
        let req = b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
        let mut first = TcpStream::connect(proxy.addr).await.expect("connect");
        first.write_all(req).await.expect("write");
        assert_eq!(read_response(&mut first).await.expect("first").status, 200);

        // The first connection stays open (keep-alive): the second waits in the accept queue.
        let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
        second.write_all(req).await.expect("write");
        let early = tokio::time::timeout(Duration::from_millis(400), read_response(&mut second));
        assert!(
            early.await.is_err(),
            "the second connection was served while the first was open"
        );
        assert_eq!(site.hits(), 1);

        drop(first);
        let r = tokio::time::timeout(Duration::from_secs(3), read_response(&mut second))
            .await
            .expect("served once the first connection closed")
            .expect("second response");
        assert_eq!(r.status, 200);
        assert_eq!(site.hits(), 2);
    })
    .await;
}
