//! What an upstream sees and what the client gets back (DESIGN §4 "Proxy semantics"): header
//! rewriting, large bodies streamed intact both ways, and h2c from the client.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{
    bounded, get, get_h2c, pattern, raw_exchange, request, sha256_hex, split_echo, FakeUpstream,
    ProxyConfig, Seen, TEST_LIMIT,
};

/// A request whose every hop-by-hop header must be stripped, with forged X-Forwarded-*.
fn hop_by_hop_request(host: &str) -> Vec<u8> {
    format!(
        "GET /page?q=1 HTTP/1.1\r\n\
         Host: {host}\r\n\
         Connection: keep-alive, X-Secret\r\n\
         X-Secret: must-not-pass\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Upgrade: websocket\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\n\
         X-Forwarded-For: 203.0.113.9\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: forged.example\r\n\
         X-Kept: yes\r\n\
         \r\n"
    )
    .into_bytes()
}

fn assert_no_hop_by_hop(seen: &Seen) {
    for h in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "transfer-encoding",
    ] {
        assert_eq!(seen.header(h), None, "{h} reached the upstream");
    }
    assert_eq!(seen.header("x-kept").as_deref(), Some("yes"));
}

#[tokio::test]
async fn an_untrusted_peer_has_hop_by_hop_headers_removed_and_forwarded_headers_replaced() {
    bounded(TEST_LIMIT, async {
        let echo = FakeUpstream::echo("echo").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&echo], "")
            .start()
            .await;

        let host = "www.example.com:8080";
        let r = raw_exchange(proxy.addr, &hop_by_hop_request(host)).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let seen = echo.last().expect("the echo upstream got the request");
        assert_no_hop_by_hop(&seen);
        assert_eq!(seen.uri.to_string(), "/page?q=1");
        assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(seen.header("x-forwarded-host").as_deref(), Some(host));
        assert_eq!(seen.header("via").as_deref(), Some("1.1 bascule"));
        // No `host` configured: the client's Host exactly as received.
        assert_eq!(seen.header("host").as_deref(), Some(host));
        // The echo body shows the same view, end to end.
        let (head, _) = split_echo(&r.body);
        assert!(head.contains("via: 1.1 bascule"), "{head}");
        assert!(!head.contains("x-secret"), "{head}");
        // The client gets Via too.
        assert_eq!(r.header("via"), "1.1 bascule");
    })
    .await;
}

#[tokio::test]
async fn a_trusted_peer_has_its_x_forwarded_for_appended_to() {
    bounded(TEST_LIMIT, async {
        let echo = FakeUpstream::echo("echo").await;
        let proxy = ProxyConfig::new()
            .listen(r#"trusted_proxies = ["127.0.0.1/32"]"#)
            .one_route("all", &[&echo], "")
            .start()
            .await;

        let r = raw_exchange(proxy.addr, &hop_by_hop_request("www.example.com")).await;
        assert_eq!(r.status, 200);
        let seen = echo.last().expect("request seen");
        assert_no_hop_by_hop(&seen);
        assert_eq!(
            seen.header("x-forwarded-for").as_deref(),
            Some("203.0.113.9, 127.0.0.1")
        );
        assert_eq!(seen.header("via").as_deref(), Some("1.1 bascule"));
        assert_eq!(seen.header("host").as_deref(), Some("www.example.com"));
    })
    .await;
}

#[tokio::test]
async fn an_upstream_with_a_configured_host_gets_that_host_and_the_clients_in_x_forwarded_host() {
    bounded(TEST_LIMIT, async {
        let cdn = FakeUpstream::echo("cdn").await;
        let proxy = ProxyConfig::new()
            .upstream_with("cdn", &cdn, r#"host = "origin.example.net""#)
            .route("all", &["*"], "/", r#"["cdn"]"#)
            .start()
            .await;

        let r = get(proxy.addr, "Www.Example.com", "/a").await;
        assert_eq!(r.status, 200);
        let seen = cdn.last().expect("request seen");
        assert_eq!(seen.header("host").as_deref(), Some("origin.example.net"));
        assert_eq!(
            seen.header("x-forwarded-host").as_deref(),
            Some("Www.Example.com")
        );
        assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    })
    .await;
}

#[tokio::test]
async fn a_request_without_host_reaches_the_upstream_with_the_address_as_host() {
    bounded(TEST_LIMIT, async {
        let echo = FakeUpstream::echo("echo").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&echo], "")
            .start()
            .await;

        // HTTP/1.0 allows a request without Host; HTTP/1.1 to the upstream requires one.
        let r = raw_exchange(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.version, "HTTP/1.0", "answered in the client's version");
        let seen = echo.last().expect("request seen");
        assert_eq!(seen.header("host"), Some(echo.addr.to_string()));
        assert_eq!(seen.header("x-forwarded-host"), None);
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    bounded(TEST_LIMIT, async {
        let up = FakeUpstream::with_headers(
            "up",
            &[
                ("connection", "x-internal"),
                ("x-internal", "secret"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("via", "1.1 cdn"),
                ("x-kept", "yes"),
            ],
        )
        .await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&up], "")
            .start()
            .await;

        let r = raw_exchange(
            proxy.addr,
            b"GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200);
        for h in ["x-internal", "keep-alive", "proxy-authenticate"] {
            assert_eq!(r.header(h), "", "{h} reached the client: {:?}", r.headers);
        }
        assert!(
            !r.header("connection").contains("x-internal"),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-kept"), "yes");
        assert_eq!(r.header("via"), "1.1 cdn, 1.1 bascule");
        assert_eq!(String::from_utf8_lossy(&r.body), "ok from up");
    })
    .await;
}

#[tokio::test]
async fn a_response_is_streamed_to_the_client_as_the_upstream_sends_it() {
    bounded(TEST_LIMIT, async {
        let delay = Duration::from_millis(400);
        let drip = FakeUpstream::drip("drip", 3, delay).await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&drip], "")
            .start()
            .await;

        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let start = Instant::now();
        let resp = client
            .get(
                format!("http://{}/events", proxy.addr)
                    .parse()
                    .expect("uri"),
            )
            .await
            .expect("response");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let first = loop {
            let frame = body.frame().await.expect("a frame").expect("body ok");
            if let Ok(data) = frame.into_data() {
                break data;
            }
        };
        let first_at = start.elapsed();
        assert_eq!(&first[..], b"chunk 0\n");
        assert!(
            first_at < delay,
            "the first chunk took {first_at:?}: the response was buffered"
        );
        let rest = body.collect().await.expect("rest of body").to_bytes();
        assert_eq!(&rest[..], b"chunk 1\nchunk 2\n");
        assert!(start.elapsed() >= delay * 2);
    })
    .await;
}

#[tokio::test]
async fn sequential_requests_to_an_upstream_reuse_pooled_connections() {
    bounded(TEST_LIMIT, async {
        let up = FakeUpstream::ok("up").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&up], "")
            .start()
            .await;
        for _ in 0..6 {
            assert_eq!(get(proxy.addr, "www.example.com", "/").await.status, 200);
        }
        assert_eq!(up.hits(), 6);
        // Without a pool there would be one connection per request.
        assert!(
            up.connections() <= 2,
            "{} upstream connections for 6 sequential requests",
            up.connections()
        );
    })
    .await;
}

#[tokio::test]
async fn an_8_mib_response_body_reaches_the_client_intact() {
    bounded(TEST_LIMIT, async {
        let payload = pattern(8 << 20, 0x8a11);
        let big = FakeUpstream::body("big", payload.clone()).await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&big], "")
            .start()
            .await;

        let r = get(proxy.addr, "www.example.com", "/big.bin").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), payload.len());
        assert_eq!(sha256_hex(&r.body), sha256_hex(&payload));
    })
    .await;
}

#[tokio::test]
async fn a_3_mib_request_body_reaches_the_upstream_intact() {
    bounded(TEST_LIMIT, async {
        let payload = pattern(3 << 20, 0x3b0d);
        let echo = FakeUpstream::echo("echo").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&echo], "")
            .start()
            .await;

        let r = request(
            proxy.addr,
            Method::POST,
            "www.example.com",
            "/upload",
            &[("content-type", "application/octet-stream")],
            payload.clone(),
        )
        .await;
        assert_eq!(r.status, 200);
        let want = sha256_hex(&payload);
        let seen = echo.last().expect("request seen");
        assert_eq!(seen.body.len(), payload.len());
        assert_eq!(
            sha256_hex(&seen.body),
            want,
            "upstream got a different body"
        );
        let (_, echoed) = split_echo(&r.body);
        assert_eq!(
            sha256_hex(&echoed),
            want,
            "client got a different body back"
        );
    })
    .await;
}

#[tokio::test]
async fn an_h2c_client_with_prior_knowledge_is_served_over_http2() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::echo("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;

        let r = get_h2c(proxy.addr, "/h2?x=1").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.version, http::Version::HTTP_2);
        assert_eq!(r.header("x-bascule-upstream"), "site");
        let seen = site.last().expect("request seen");
        assert_eq!(seen.uri.to_string(), "/h2?x=1");
        // HTTP/2 carries the host in :authority; the upstream gets it as Host.
        let authority = proxy.addr.to_string();
        assert_eq!(seen.header("host").as_deref(), Some(authority.as_str()));
        assert_eq!(
            seen.header("x-forwarded-host").as_deref(),
            Some(authority.as_str())
        );
    })
    .await;
}

#[tokio::test]
async fn curl_with_http2_prior_knowledge_is_routed_on_the_authority() {
    if !support::tools::require("curl", "curl") {
        return;
    }
    bounded(TEST_LIMIT, async {
        let named = FakeUpstream::echo("named").await;
        let other = FakeUpstream::ok("other").await;
        let proxy = ProxyConfig::new()
            .upstream("named", &named)
            .upstream("other", &other)
            .route("named", &["h2.example.com"], "/", r#"["named"]"#)
            .route("other", &["*"], "/", r#"["other"]"#)
            .start()
            .await;

        let port = proxy.addr.port();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["--silent", "--show-error", "--http2-prior-knowledge"])
                .args(["--max-time", "10", "--include"])
                .arg("--resolve")
                .arg(format!("h2.example.com:{port}:127.0.0.1"))
                .arg(format!("http://h2.example.com:{port}/via-curl"))
                .output()
                .expect("run curl")
        })
        .await
        .expect("curl thread");
        let stdout = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("http/2 200"), "{stdout}");
        assert!(stdout.contains("x-bascule-upstream: named"), "{stdout}");
        assert_eq!(other.hits(), 0);
        let seen = named.last().expect("request seen");
        assert_eq!(
            seen.header("host"),
            Some(format!("h2.example.com:{port}")),
            "the upstream gets the :authority as Host"
        );
    })
    .await;
}
