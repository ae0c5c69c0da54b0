//! Strictness where the RFCs ask for it (README "How a request is handled"): malformed Hosts
//! get 400, Forwarded and X-Real-IP are not taken from untrusted peers, HTTP/2 cookie crumbs
//! are joined, `path_prefix` matches the normalized path and the upstream receives it, long
//! targets get 414, absurd Content-Lengths 400, and the header count follows max_header_bytes.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::client::RawReply;
use support::{
    bounded, raw_exchange, read_response, wait_closed, FakeUpstream, ProxyConfig, TEST_LIMIT,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `GET target` with these extra header lines, on its own connection.
async fn get_raw(addr: std::net::SocketAddr, target: &str, lines: &str) -> RawReply {
    let req = format!("GET {target} HTTP/1.1\r\n{lines}Connection: close\r\n\r\n");
    raw_exchange(addr, req.as_bytes()).await
}

/// One exchange that must be answered within a few seconds (a request the proxy accepted
/// would instead wait for a body that never comes).
async fn answered(addr: std::net::SocketAddr, req: &str) -> RawReply {
    tokio::time::timeout(Duration::from_secs(5), raw_exchange(addr, req.as_bytes()))
        .await
        .unwrap_or_else(|_| panic!("no answer to {req:?}"))
}

#[tokio::test]
async fn a_malformed_host_gets_400_and_never_reaches_the_upstream() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        for host in [
            "user@www.example.com",
            "user:secret@www.example.com:8080",
            "www.example.com:abc",
            "www.example.com:99999",
            "www.exa\"mple.com",
            "www.{example}.com",
            "ex%41mple.com",
            "[www.example.com]",
        ] {
            let r = get_raw(proxy.addr, "/", &format!("Host: {host}\r\n")).await;
            assert_eq!(r.status, 400, "Host: {host}");
        }
        // An absolute-form target's authority is held to the same rule.
        let r = get_raw(proxy.addr, "http://user@www.example.com/", "").await;
        assert_eq!(r.status, 400);
        assert_eq!(site.hits(), 0);

        for host in [
            "www.example.com",
            "www.example.com:",
            "my_host.internal:8080",
            "[::1]:8080",
        ] {
            let r = get_raw(proxy.addr, "/", &format!("Host: {host}\r\n")).await;
            assert_eq!(r.status, 200, "Host: {host}");
        }
    })
    .await;
}

#[tokio::test]
async fn forwarded_and_x_real_ip_from_an_untrusted_peer_are_not_passed_on() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        let lines = "Host: a.example\r\nForwarded: for=203.0.113.9;proto=https\r\n\
                     X-Real-IP: 203.0.113.9\r\n";
        assert_eq!(get_raw(proxy.addr, "/", lines).await.status, 200);
        let seen = site.last().expect("request reached the upstream");
        assert_eq!(seen.header("forwarded"), None);
        assert_eq!(seen.header("x-real-ip").as_deref(), Some("127.0.0.1"));
        assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    })
    .await;
}

#[tokio::test]
async fn forwarded_and_x_real_ip_from_a_trusted_peer_are_kept() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .listen(r#"trusted_proxies = ["127.0.0.1/32"]"#)
            .one_route("all", &[&site], "")
            .start()
            .await;
        let lines = "Host: a.example\r\nForwarded: for=203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\n";
        assert_eq!(get_raw(proxy.addr, "/", lines).await.status, 200);
        let seen = site.last().expect("request reached the upstream");
        assert_eq!(seen.header("forwarded").as_deref(), Some("for=203.0.113.9"));
        assert_eq!(seen.header("x-real-ip").as_deref(), Some("203.0.113.9"));
    })
    .await;
}

#[tokio::test]
async fn http2_cookie_crumbs_reach_an_http1_upstream_as_one_cookie() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let req = Request::get(format!("http://{}/crumbs", proxy.addr))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("cookie", "c=3")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = client.request(req).await.expect("h2c response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), Version::HTTP_2);
        let _body = resp.into_body().collect().await.expect("body");
        let seen = site.last().expect("request reached the upstream");
        assert_eq!(seen.version, Version::HTTP_11);
        let cookies: Vec<_> = seen.headers.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"]);
    })
    .await;
}

#[tokio::test]
async fn path_prefix_matches_the_normalized_path_and_the_upstream_receives_it() {
    bounded(TEST_LIMIT, async {
        let public = FakeUpstream::ok("public").await;
        let admin = FakeUpstream::ok("admin").await;
        let proxy = ProxyConfig::new()
            .upstream("public", &public)
            .upstream("admin", &admin)
            .route("public", &["*"], "/public/", r#"["public"]"#)
            .route("admin", &["*"], "/admin/", r#"["admin"]"#)
            .start()
            .await;
        let cases = [
            ("/public/../admin/x", &admin, "/admin/x"),
            ("/public/%2e%2e/admin/x", &admin, "/admin/x"),
            (
                "/public/%2E%2e/admin/./x?q=%41/../",
                &admin,
                "/admin/x?q=%41/../",
            ),
            ("/public/./a/../b", &public, "/public/b"),
            ("/public/%41bc%7e", &public, "/public/Abc~"),
            ("/public/a%2Fb", &public, "/public/a%2Fb"),
            ("/public/a%2f..%2fb", &public, "/public/a%2F..%2Fb"),
            ("/public//x", &public, "/public//x"),
        ];
        for (target, up, want) in cases {
            let before = up.hits();
            let r = get_raw(proxy.addr, target, "Host: www.example.com\r\n").await;
            assert_eq!(r.status, 200, "{target}");
            assert_eq!(r.header("x-bascule-upstream"), up.name, "{target}");
            assert_eq!(up.hits(), before + 1, "{target}");
            let seen = up.last().expect("request reached the upstream");
            assert_eq!(seen.uri.to_string(), want, "{target}");
        }
        // A bad escape cannot be normalized: 400; a path that leaves both prefixes: 404.
        let (p, a) = (public.hits(), admin.hits());
        for (target, status) in [
            ("/public/%zz", 400),
            ("/public/%4", 400),
            ("/public/..", 404),
        ] {
            let r = get_raw(proxy.addr, target, "Host: www.example.com\r\n").await;
            assert_eq!(r.status, status, "{target}");
        }
        assert_eq!((public.hits(), admin.hits()), (p, a));
    })
    .await;
}

#[tokio::test]
async fn an_over_long_request_target_gets_414() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        // The default 64 KiB head allows an 8 KiB target.
        let fits = format!("/{}", "a".repeat(8 * 1024 - 1));
        let r = get_raw(proxy.addr, &fits, "Host: a.example\r\n").await;
        assert_eq!(r.status, 200);
        let long = format!("/?q={}", "a".repeat(8 * 1024));
        let r = get_raw(proxy.addr, &long, "Host: a.example\r\n").await;
        assert_eq!(r.status, 414);
        assert_eq!(site.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_absurd_content_length_gets_400() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        for cl in [
            "Content-Length: 9007199254740992\r\n",
            "Content-Length: 18446744073709551613\r\n",
            "Content-Length: 99999999999999999999999\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: a.example\r\n{cl}\r\nhello");
            assert_eq!(answered(proxy.addr, &req).await.status, 400, "{cl}");
        }
        assert_eq!(site.hits(), 0);
    })
    .await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_framed_by_chunked_and_the_connection_closed() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::echo("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\
              Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await
        .expect("write");
        let r = read_response(&mut s).await.expect("response");
        assert_eq!(r.status, 200);
        let seen = site.last().expect("request reached the upstream");
        assert_eq!(&seen.body[..], b"hello");
        assert_ne!(seen.header("content-length").as_deref(), Some("100"));
        // RFC 9112 §6.1: the server closes the connection after such a request.
        assert!(wait_closed(&mut s, Duration::from_secs(3)).await.is_some());
    })
    .await;
}

#[tokio::test]
async fn the_header_count_limit_follows_max_header_bytes() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .one_route("all", &[&site], "")
            .start()
            .await;
        let headers = |n: usize, len: usize| -> String {
            (0..n)
                .map(|i| format!("X-H-{i}: {}\r\n", "v".repeat(len)))
                .collect()
        };
        // 200 small headers, well within the default 64 KiB: hyper's fixed 100 no longer applies.
        let many = format!("Host: a.example\r\n{}", headers(200, 8));
        assert_eq!(get_raw(proxy.addr, "/", &many).await.status, 200);
        assert!(site.last().expect("seen").headers.len() >= 200);
        // Beyond 64 KiB / 32 = 2048 headers, or beyond 64 KiB of head: 431.
        let too_many = format!("Host: a.example\r\n{}", headers(2100, 1));
        assert_eq!(get_raw(proxy.addr, "/", &too_many).await.status, 431);
        let too_big = format!("Host: a.example\r\n{}", headers(70, 1000));
        assert_eq!(get_raw(proxy.addr, "/", &too_big).await.status, 431);
        assert_eq!(site.hits(), 1);
    })
    .await;
}
