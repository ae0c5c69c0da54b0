//! Routing (DESIGN §4 "Choosing where a request goes", "Hosts"): exact host, then wildcard,
//! then `*`; the longest plain-string path prefix; no route is a short 404.

mod support;

use support::{bounded, get, FakeUpstream, ProxyConfig, TEST_LIMIT};

#[tokio::test]
async fn requests_are_routed_by_exact_host_longest_prefix_wildcard_and_fallback() {
    bounded(TEST_LIMIT, async {
        let www = FakeUpstream::ok("www").await;
        let api = FakeUpstream::ok("api").await;
        let api_v2 = FakeUpstream::ok("api-v2").await;
        let wild = FakeUpstream::ok("wild").await;
        let fallback = FakeUpstream::ok("fallback").await;
        let proxy = ProxyConfig::new()
            .upstream("www", &www)
            .upstream("api", &api)
            .upstream("api-v2", &api_v2)
            .upstream("wild", &wild)
            .upstream("fallback", &fallback)
            .route("fallback", &["*"], "/public/", r#"["fallback"]"#)
            .route("www", &["www.example.com"], "/", r#"["www"]"#)
            .route("api", &["www.example.com"], "/api", r#"["api"]"#)
            .route("api-v2", &["www.example.com"], "/api/v2/", r#"["api-v2"]"#)
            .route("wild", &["*.example.com"], "/", r#"["wild"]"#)
            .start()
            .await;
        let a = proxy.addr;

        let cases = [
            // Exact host; case and port do not matter.
            ("www.example.com", "/", "www"),
            ("WWW.Example.COM:8080", "/index.html", "www"),
            // Longest prefix wins; prefixes are plain strings ("/api" matches "/apix").
            ("www.example.com", "/api", "api"),
            ("www.example.com", "/apix", "api"),
            ("www.example.com", "/api/v1/users", "api"),
            ("www.example.com", "/api/v2/users", "api-v2"),
            ("www.example.com", "/api/v2", "api"),
            // Wildcard: any depth of subdomain.
            ("a.example.com", "/", "wild"),
            ("a.b.example.com", "/x", "wild"),
            // `*` catches other hosts, and paths the more specific hosts leave unrouted.
            ("other.test", "/public/logo.png", "fallback"),
            ("example.com", "/public/", "fallback"),
        ];
        for (host, path, want) in cases {
            let r = get(a, host, path).await;
            assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
            assert_eq!(
                r.header("x-bascule-upstream"),
                want,
                "{host}{path} went to the wrong upstream"
            );
            assert_eq!(r.text(), format!("ok from {want}"), "{host}{path}");
            assert_eq!(r.header("x-bascule-attempts"), "1", "{host}{path}");
        }
        assert_eq!(www.hits(), 2);
        assert_eq!(api.hits(), 4);
        assert_eq!(api_v2.hits(), 1);
        assert_eq!(wild.hits(), 2);
        assert_eq!(fallback.hits(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_request_no_route_matches_gets_a_short_plain_text_404() {
    bounded(TEST_LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .upstream("site", &site)
            .route("wild", &["*.example.com"], "/", r#"["site"]"#)
            .route("public", &["*"], "/public/", r#"["site"]"#)
            .start()
            .await;

        // "*.example.com" does not match "example.com" itself, and "/" is not under "/public/".
        for (host, path) in [
            ("example.com", "/"),
            ("other.test", "/private"),
            ("other.test", "/public"),
        ] {
            let r = get(proxy.addr, host, path).await;
            assert_eq!(r.status, 404, "{host}{path}");
            assert!(
                r.header("content-type").starts_with("text/plain"),
                "{host}{path}: content-type {:?}",
                r.header("content-type")
            );
            assert!(
                !r.body.is_empty() && r.body.len() < 200,
                "{host}{path}: body {:?}",
                r.text()
            );
            assert!(
                r.header("x-bascule-upstream").is_empty(),
                "no upstream answered a 404"
            );
        }
        assert_eq!(
            site.hits(),
            0,
            "unrouted requests must not reach an upstream"
        );
    })
    .await;
}
