//! The origin shield (DESIGN §7.3), black-box against real upstreams: the RFC 9111 rules (one
//! route per rule, each over its own origin, so hits at the origin say what was stored),
//! stale-if-error with `Age`, `cache = "direct"` with a CDN active and then without, coalescing
//! of concurrent misses, purges, a response over `max_object`, and the store's bound.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use support::exposition::{self, Format};
use support::{admin_get, bounded, get, request, Bascule, FakeUpstream, Mode, ProxyConfig, Reply};

const LIMIT: Duration = Duration::from_secs(60);

async fn scrape(proxy: &Bascule) -> exposition::Samples {
    let text = admin_get(proxy.admin, "/metrics").await.text();
    exposition::parse(&text, Format::Text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

async fn get_with(proxy: &Bascule, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(proxy.addr, Method::GET, host, path, headers, Bytes::new()).await
}

/// One rule: the origin's response headers, the request's headers, whether a second identical
/// request is answered from the store.
struct Rule {
    name: &'static str,
    response: &'static [(&'static str, &'static str)],
    request: &'static [(&'static str, &'static str)],
    stored: bool,
}

const RULES: &[Rule] = &[
    Rule {
        name: "max-age",
        response: &[("cache-control", "max-age=60")],
        request: &[],
        stored: true,
    },
    Rule {
        name: "s-maxage",
        response: &[("cache-control", "s-maxage=60")],
        request: &[],
        stored: true,
    },
    Rule {
        name: "cdn-cache-control-first",
        response: &[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ],
        request: &[],
        stored: true,
    },
    Rule {
        name: "cdn-cache-control-no-store",
        response: &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store"),
        ],
        request: &[],
        stored: false,
    },
    Rule {
        name: "no-store",
        response: &[("cache-control", "no-store, max-age=60")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "private",
        response: &[("cache-control", "private, max-age=60")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "set-cookie",
        response: &[("cache-control", "max-age=60"), ("set-cookie", "session=1")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "vary-star",
        response: &[("cache-control", "max-age=60"), ("vary", "*")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "authorization",
        response: &[("cache-control", "max-age=60")],
        request: &[("authorization", "Bearer x")],
        stored: false,
    },
    Rule {
        name: "authorization-public",
        response: &[("cache-control", "public, max-age=60")],
        request: &[("authorization", "Bearer x")],
        stored: true,
    },
    Rule {
        name: "expires",
        response: &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")],
        request: &[],
        stored: true,
    },
    Rule {
        name: "expired",
        response: &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "age-used-up",
        response: &[("cache-control", "max-age=60"), ("age", "60")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "no-lifetime",
        response: &[("cache-control", "public")],
        request: &[],
        stored: false,
    },
    Rule {
        name: "no-cache",
        response: &[("cache-control", "no-cache, max-age=60")],
        request: &[],
        stored: false,
    },
];

#[tokio::test]
async fn every_storing_rule_decides_whether_the_second_request_reaches_the_origin() {
    bounded(LIMIT, async {
        let mut origins = Vec::new();
        for rule in RULES {
            origins.push(FakeUpstream::with_headers(rule.name, rule.response).await);
        }
        let config = origins.iter().fold(ProxyConfig::new(), |c, o| {
            let host = format!("{}.test", o.name);
            c.upstream(&o.name, o)
                .route(&o.name, &[&host], "/", &format!("[{:?}]", o.name))
        });
        let proxy = config.start().await;
        for (rule, origin) in RULES.iter().zip(&origins) {
            let host = format!("{}.test", rule.name);
            let first = get_with(&proxy, &host, "/page", rule.request).await;
            assert_eq!(first.status, 200, "{}", rule.name);
            assert_eq!(first.header("x-bascule-cache"), "miss", "{}", rule.name);
            let second = get_with(&proxy, &host, "/page", rule.request).await;
            assert_eq!(second.status, 200, "{}", rule.name);
            assert_eq!(second.body, first.body, "{}", rule.name);
            let want_hits = if rule.stored { 1 } else { 2 };
            assert_eq!(origin.hits(), want_hits, "{}: origin hits", rule.name);
            // Not stored: a miss again, or (the response's own doing) passed for a while.
            let second_result = second.header("x-bascule-cache");
            if rule.stored {
                assert_eq!(second_result, "hit", "{}", rule.name);
            } else {
                assert!(
                    ["miss", "bypass"].contains(&second_result),
                    "{}: {second_result}",
                    rule.name
                );
            }
            if rule.stored {
                assert!(
                    second.header("age").parse::<u64>().is_ok(),
                    "{}: Age on a hit",
                    rule.name
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn vary_head_and_requests_that_bypass_the_store() {
    bounded(LIMIT, async {
        // The echo shows the request, so a copy for one language is told from another's.
        let origin = FakeUpstream::with_headers_mode(
            "origin",
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            Mode::Echo,
        )
        .await;
        let proxy = ProxyConfig::new()
            .one_route("www", &[&origin], "")
            .start()
            .await;
        let en = [("accept-language", "en")];
        let fr = [("accept-language", "fr")];
        let a = get_with(&proxy, "www.test", "/v", &en).await;
        let b = get_with(&proxy, "www.test", "/v", &en).await;
        assert_eq!((b.header("x-bascule-cache"), origin.hits()), ("hit", 1));
        assert_eq!(a.body, b.body);
        let c = get_with(&proxy, "www.test", "/v", &fr).await;
        assert_eq!((c.header("x-bascule-cache"), origin.hits()), ("miss", 2));
        assert!(
            c.text().to_lowercase().contains("accept-language: fr"),
            "{}",
            c.text()
        );
        // HEAD is answered from the stored GET: its head, the length, no body.
        let head = request(
            proxy.addr,
            Method::HEAD,
            "www.test",
            "/v",
            &fr,
            Bytes::new(),
        )
        .await;
        assert_eq!(
            (head.status.as_u16(), head.header("x-bascule-cache")),
            (200, "hit")
        );
        assert_eq!(head.header("content-length"), c.body.len().to_string());
        assert!(head.body.is_empty());
        assert_eq!(origin.hits(), 2);
        // Ranges, conditionals and POSTs go upstream as they are.
        let range = get_with(&proxy, "www.test", "/v", &[("range", "bytes=0-3")]).await;
        assert_eq!(range.header("x-bascule-cache"), "bypass");
        let post = request(proxy.addr, Method::POST, "www.test", "/v", &fr, "x").await;
        assert_eq!(post.header("x-bascule-cache"), "bypass");
        assert_eq!(origin.hits(), 4);
    })
    .await;
}

#[tokio::test]
async fn every_tier_failing_serves_a_stale_copy_with_its_age() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::with_headers("origin", &[("cache-control", "max-age=1")]).await;
        let strict = FakeUpstream::with_headers(
            "strict",
            &[("cache-control", "max-age=1, must-revalidate")],
        )
        .await;
        let proxy = ProxyConfig::new()
            .upstream("origin", &origin)
            .upstream("strict", &strict)
            .route("www", &["www.test"], "/", r#"["origin"]"#)
            .route("strict", &["strict.test"], "/", r#"["strict"]"#)
            .start()
            .await;
        let fresh = get(proxy.addr, "www.test", "/story").await;
        assert_eq!(fresh.header("x-bascule-cache"), "miss");
        get(proxy.addr, "strict.test", "/story").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        origin.set(Mode::Refuse).await;
        strict.set(Mode::Refuse).await;
        let stale = get(proxy.addr, "www.test", "/story").await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.header("x-bascule-cache"), "stale");
        assert_eq!(stale.body, fresh.body);
        let age: u64 = stale.header("age").parse().expect("an Age");
        assert!(age >= 2, "age {age}");
        // must-revalidate: no stale copy; the error passes.
        let strict_answer = get(proxy.addr, "strict.test", "/story").await;
        assert_eq!(strict_answer.status, 502);
        // A path never seen has nothing stale to serve.
        assert_eq!(get(proxy.addr, "www.test", "/other").await.status, 502);
    })
    .await;
}

#[tokio::test]
async fn direct_serves_stored_copies_only_once_the_origin_is_the_active_tier() {
    bounded(LIMIT, async {
        // The CDN passes the origin's caching headers on (here it sets them itself).
        let cdn = FakeUpstream::switchable_with_headers(
            "cdn",
            "/healthz",
            &[("cache-control", "max-age=60")],
        )
        .await;
        let origin = FakeUpstream::with_headers("origin", &[("cache-control", "max-age=60")]).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults("[defaults.health]\ninterval = \"100ms\"\nrise = 1\nfall = 1\n[defaults.passive]\nconsecutive_failures = 0")
            .upstream_with("cdn", &cdn, "role = \"cdn\"")
            .upstream("origin", &origin)
            .route("www", &["*"], "/", r#"["cdn", "origin"]"#)
            .start()
            .await;
        for _ in 0..2 {
            let r = get(proxy.addr, "www.test", "/front").await;
            assert_eq!((r.status.as_u16(), r.header("x-bascule-cache")), (200, "bypass"));
        }
        assert_eq!(cdn.hits(), 2, "a CDN is active: every request goes to it");
        cdn.set(Mode::Refuse).await;
        proxy
            .wait_status(Duration::from_secs(10), "origin tier active", |s| {
                s["routes"][0]["active_tier"] == 1
            })
            .await;
        let r = get(proxy.addr, "www.test", "/front").await;
        assert_eq!((r.status.as_u16(), r.header("x-bascule-cache")), (200, "hit"));
        assert_eq!(r.text(), "ok from cdn", "the copy stored while the CDN served");
        assert_eq!(origin.hits(), 0, "the origin sees nothing for a stored page");
        // The origin fails its checks too: nothing is usable, and fresh copies still serve
        // (the failing origin is not sent every reader).
        origin.set(Mode::Refuse).await;
        proxy
            .wait_status(Duration::from_secs(10), "no tier usable", |s| {
                s["routes"][0]["active_tier"].is_null()
            })
            .await;
        let r = get(proxy.addr, "www.test", "/front").await;
        assert_eq!((r.status.as_u16(), r.header("x-bascule-cache")), (200, "hit"));
        assert_eq!(origin.hits(), 0);
        let m = scrape(&proxy).await;
        let hits = m
            .get("bascule_cache_requests_total{result=\"hit\",route=\"www\"}")
            .copied();
        assert_eq!(hits, Some(2.0), "{m:?}");
        assert!(m.get("bascule_cache_bytes{}").copied().unwrap_or(0.0) > 0.0);
    })
    .await;
}

#[tokio::test]
async fn concurrent_misses_reach_the_origin_once() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::with_headers_mode(
            "origin",
            &[("cache-control", "max-age=60")],
            Mode::Slow(Duration::from_millis(600)),
        )
        .await;
        let proxy = ProxyConfig::new()
            .one_route("www", &[&origin], "")
            .start()
            .await;
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let addr = proxy.addr;
                tokio::spawn(async move { get(addr, "www.test", "/hot").await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            let r = t.await.expect("task");
            assert_eq!(
                (r.status.as_u16(), r.text()),
                (200, "slow from origin".into())
            );
            results.push(r.header("x-bascule-cache").to_owned());
        }
        assert_eq!(origin.hits(), 1, "{results:?}");
        assert_eq!(
            results.iter().filter(|r| *r == "miss").count(),
            1,
            "{results:?}"
        );
        assert_eq!(
            results.iter().filter(|r| *r == "coalesced").count(),
            19,
            "{results:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn purges_remove_one_path_or_a_prefix() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::with_headers("origin", &[("cache-control", "max-age=60")]).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        for p in ["/news/a", "/news/b?page=2", "/sport/c"] {
            get(proxy.addr, "www.test", p).await;
        }
        assert_eq!(origin.hits(), 3);
        let (code, v) = proxy
            .admin_post(
                "/cache/purge",
                r#"{"host": "www.test", "path": "/sport/c"}"#,
            )
            .await;
        assert_eq!((code, v["purged"].as_u64()), (200, Some(1)));
        let (code, v) = proxy
            .admin_post("/cache/purge", r#"{"host": "www.test", "path": "/news/*"}"#)
            .await;
        assert_eq!((code, v["purged"].as_u64()), (200, Some(2)));
        for p in ["/news/a", "/news/b?page=2", "/sport/c"] {
            assert_eq!(
                get(proxy.addr, "www.test", p)
                    .await
                    .header("x-bascule-cache"),
                "miss"
            );
        }
        assert_eq!(origin.hits(), 6);
        let (code, _) = proxy
            .admin_post("/cache/purge", r#"{"host": "www.test"}"#)
            .await;
        assert_eq!(code, 400, "a body without a path");
        // The CLI wraps it; `bascule status` shows the store.
        let out = cli(&proxy, &["purge", "www.test", "/news/*"]).await;
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "purged 2 stored copies of www.test/news/*"
        );
        let out = cli(&proxy, &["status"]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("cache 0.0 MiB of 256.0 MiB, 1 entries, hit ratio 0.0%"),
            "{text}"
        );
        let status = proxy.status().await;
        assert_eq!(status["cache"]["entries"], 1, "{status:#}");
        assert_eq!(status["routes"][0]["cache"], "direct");
    })
    .await;
}

#[tokio::test]
async fn a_response_over_max_object_streams_intact_and_is_not_stored() {
    bounded(LIMIT, async {
        let body: Bytes = (0..300_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>()
            .into();
        let origin = FakeUpstream::with_headers_mode(
            "origin",
            &[("cache-control", "max-age=60")],
            Mode::Body(body.clone()),
        )
        .await;
        let proxy = ProxyConfig::new()
            .one_route("www", &[&origin], "")
            .cache("max_object = \"64KiB\"")
            .start()
            .await;
        for _ in 0..2 {
            let r = get(proxy.addr, "www.test", "/video").await;
            assert_eq!(r.body, body, "intact");
        }
        assert_eq!(origin.hits(), 2, "not stored");
    })
    .await;
}

#[tokio::test]
async fn filling_the_store_twice_over_keeps_it_within_max_size() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::with_headers_mode(
            "origin",
            &[("cache-control", "max-age=60")],
            Mode::Body(Bytes::from(vec![b'x'; 10_000])),
        )
        .await;
        let proxy = ProxyConfig::new()
            .admin("")
            .one_route("www", &[&origin], "")
            .cache("max_size = \"4MiB\"")
            .start()
            .await;
        // Warm up the process (connections, buffers) on pages the origin does not let us store.
        for i in 0..50 {
            get(proxy.addr, "www.test", &format!("/warm/{i}?")).await;
        }
        let rss_before = rss_kib(proxy.pid());
        // 2 × 4 MiB of bodies offered: the store fills, then churns.
        let mut rss_full = 0;
        for round in 0..2 {
            for i in 0..840 {
                let r = get(proxy.addr, "www.test", &format!("/p/{round}/{i}")).await;
                assert_eq!(r.body.len(), 10_000);
            }
            if round == 0 {
                rss_full = rss_kib(proxy.pid());
            }
        }
        let rss_after = rss_kib(proxy.pid());
        let grown = rss_after.saturating_sub(rss_before);
        eprintln!("RSS {rss_before} KiB, full {rss_full} KiB, churned {rss_after} KiB");
        let m = scrape(&proxy).await;
        let bytes = m.get("bascule_cache_bytes{}").copied().unwrap_or(0.0);
        assert!(bytes <= 4.0 * 1048576.0, "bascule_cache_bytes {bytes}");
        assert!(
            bytes >= 2.0 * 1048576.0,
            "bascule_cache_bytes {bytes}: the store is used"
        );
        // Churn does not grow the process: what filling took, it keeps, and no more. (glibc's
        // per-thread arenas keep freed pages, so the process holds more than the store's own
        // bytes: see benches/README.md.)
        assert!(
            rss_after <= rss_full + 1024,
            "churn grew RSS from {rss_full} to {rss_after} KiB"
        );
        assert!(
            grown < 3 * 4 * 1024 + 4096,
            "RSS grew by {grown} KiB for a 4 MiB store"
        );
    })
    .await;
}

/// Runs `bascule ARGS --admin URL` against `proxy`.
async fn cli(proxy: &Bascule, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bascule"));
    cmd.args(args)
        .arg("--admin")
        .arg(format!("http://{}", proxy.admin))
        .env_remove("BASCULE_ADMIN_TOKEN");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("cli task")
        .expect("run bascule")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
