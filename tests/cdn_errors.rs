//! Roles and fault attribution (DESIGN §7.1), black-box: a CDN's own error page fails over
//! whatever `on_status` says; an origin's error seen through a CDN is passed on; and an origin
//! outage seen through every CDN blames the origin — the CDNs stay healthy, the origin tier is
//! never made active, each request costs one attempt, and readers are back on the primary the
//! moment the origin recovers.

mod support;

use std::time::{Duration, Instant};

use support::exposition::{self, Format};
use support::{admin_get, bounded, get, Bascule, FakeUpstream, Mode, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(40);
const CDN: &str = "role = \"cdn\"";
/// Quiet checks, no passive ejection: what is measured is the answer to one request.
const QUIET: &str =
    "[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0";

/// A route `www` over a CDN tier `cdn` and an origin tier `origin`, with `retry` as its
/// `[routes.retry]` keys.
fn cdn_then_origin(
    cdn: &FakeUpstream,
    origin: &FakeUpstream,
    defaults: &str,
    retry: &str,
) -> ProxyConfig {
    ProxyConfig::new()
        .admin("")
        .defaults(defaults)
        .upstream_with("cdn", cdn, CDN)
        .upstream_with("origin", origin, "")
        .route_with(
            "www",
            &["*"],
            "/",
            r#"["cdn", "origin"]"#,
            &format!("[routes.retry]\n{retry}"),
        )
}

async fn scrape(proxy: &Bascule) -> exposition::Samples {
    let text = admin_get(proxy.admin, "/metrics").await.text();
    exposition::parse(&text, Format::Text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn value(samples: &exposition::Samples, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn every_cdn_error_signature_fails_over_even_when_on_status_is_empty() {
    bounded(LIMIT, async {
        for fixture in [
            "cloudflare-500",
            "cloudflare-522",
            "fastly-503",
            "cloudfront-502",
            "akamai-503",
        ] {
            let cdn = FakeUpstream::page("cdn", fixture).await;
            let origin = FakeUpstream::ok("origin").await;
            let proxy = cdn_then_origin(&cdn, &origin, QUIET, "on_status = []")
                .start()
                .await;
            let r = get(proxy.addr, "www.example.com", "/story").await;
            assert_eq!(r.status, 200, "{fixture}: {}", r.text());
            assert_eq!(r.header("x-bascule-upstream"), "origin", "{fixture}");
            assert_eq!(r.header("x-bascule-attempts"), "2", "{fixture}");
            assert_eq!(r.text(), "ok from origin", "{fixture}");
            let m = scrape(&proxy).await;
            let name = "bascule_upstream_attempts_total{outcome=\"cdn_error\",upstream=\"cdn\"}";
            assert_eq!(value(&m, name), 1.0, "{fixture}");
            let fault = "bascule_upstream_failures_total{fault=\"cdn\",upstream=\"cdn\"}";
            assert_eq!(value(&m, fault), 1.0, "{fixture}: charged to the CDN");
        }
    })
    .await;
}

#[tokio::test]
async fn an_origin_error_passed_through_a_cdn_reaches_the_client_as_it_is() {
    bounded(LIMIT, async {
        for fixture in [
            "cloudflare-origin-500",
            "fastly-origin-503",
            "akamai-origin-500",
        ] {
            let cdn = FakeUpstream::page("cdn", fixture).await;
            let origin = FakeUpstream::ok("origin").await;
            let proxy = cdn_then_origin(&cdn, &origin, QUIET, "on_status = []")
                .start()
                .await;
            let want = support::upstream::fixture_page(fixture);
            let r = get(proxy.addr, "www.example.com", "/story").await;
            assert_eq!(r.status, want.status, "{fixture}");
            assert_eq!(r.header("x-bascule-upstream"), "cdn", "{fixture}");
            assert_eq!(r.header("x-bascule-attempts"), "1", "{fixture}");
            assert_eq!(
                r.body, want.body,
                "{fixture}: the whole page, prefix read included"
            );
            assert_eq!(origin.hits(), 0, "{fixture}");
        }
    })
    .await;
}

#[tokio::test]
async fn with_an_origin_marker_a_cdn_5xx_without_it_is_the_cdns_own() {
    bounded(LIMIT, async {
        let defaults = format!("origin_marker = \"x-origin\"\n{QUIET}");
        // A plain 500 with no marker: the CDN made it.
        let cdn = FakeUpstream::status("cdn", 500).await;
        let origin = FakeUpstream::ok("origin").await;
        let proxy = cdn_then_origin(&cdn, &origin, &defaults, "on_status = []")
            .start()
            .await;
        let r = get(proxy.addr, "www.example.com", "/").await;
        assert_eq!(r.header("x-bascule-upstream"), "origin");
        assert_eq!(r.status, 200);
        drop(proxy);

        // The same 500 carrying the marker: the origin's, passed on.
        let cdn =
            FakeUpstream::with_headers_mode("cdn", &[("x-origin", "1")], Mode::Status(500)).await;
        let proxy = cdn_then_origin(&cdn, &origin, &defaults, "on_status = []")
            .start()
            .await;
        let r = get(proxy.addr, "www.example.com", "/").await;
        assert_eq!(r.status, 500);
        assert_eq!(r.header("x-bascule-upstream"), "cdn");
        assert_eq!(r.header("x-bascule-attempts"), "1");
        assert_eq!(r.header("x-origin"), "1");
        let st = proxy.upstream_status("cdn").await;
        assert_eq!(st["state"], "healthy", "{st:#}");
        let m = scrape(&proxy).await;
        let name = "bascule_upstream_attempts_total{outcome=\"ok\",upstream=\"cdn\"}";
        assert_eq!(
            value(&m, name),
            1.0,
            "the origin's 500 is the CDN's success"
        );
    })
    .await;
}

/// Events of `kind` about `subject`, as "from -> to".
fn events(status: &serde_json::Value, kind: &str, subject: &str) -> Vec<String> {
    status["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind && e["subject"] == subject)
                .map(|e| format!("{} -> {}", e["from"], e["to"]))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_origin_outage_seen_through_every_cdn_blames_the_origin() {
    bounded(LIMIT, async {
        // Two CDNs and the origin; every probe obeys its upstream's mode, as in production:
        // when the origin fails, the CDNs' own health pages (served from it) fail too.
        let cdn1 = FakeUpstream::switchable("cdn1", "/healthz").await;
        let cdn2 = FakeUpstream::switchable("cdn2", "/healthz").await;
        let origin = FakeUpstream::switchable("origin", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 2\nrise = 2\n\
                 [defaults.passive]\nconsecutive_failures = 3\nejection = \"30s\"",
            )
            .upstream_with("cdn1", &cdn1, CDN)
            .upstream_with("cdn2", &cdn2, CDN)
            .upstream_with("origin", &origin, "")
            .route_with(
                "www",
                &["*"],
                "/",
                r#"["cdn1", "cdn2", "origin"]"#,
                "failback_delay = \"30s\"",
            )
            .start()
            .await;
        assert_eq!(get(proxy.addr, "www.example.com", "/").await.header("x-bascule-upstream"), "cdn1");

        // The origin fails; the CDNs pass its 503 on, probes included.
        for u in [&origin, &cdn1, &cdn2] {
            u.set(Mode::Status(503)).await;
        }
        proxy
            .wait_status(Duration::from_secs(5), "origin_failing", |s| {
                s["routes"][0]["origin_failing"] == true
            })
            .await;
        let hits_before = (cdn1.hits(), cdn2.hits(), origin.hits());
        let n = 30;
        for _ in 0..n {
            let r = get(proxy.addr, "www.example.com", "/").await;
            assert_eq!(r.status, 503, "the origin's answer, passed on");
            assert_eq!(r.header("x-bascule-upstream"), "cdn1", "no tier is abandoned");
            assert_eq!(r.header("x-bascule-attempts"), "1", "no retries into the same failure");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(cdn1.hits() - hits_before.0, n, "one attempt per request");
        assert_eq!((cdn2.hits(), origin.hits()), (hits_before.1, hits_before.2));

        // Recovery: the CDNs are in use at once, no failback delay (they were never at fault).
        for u in [&origin, &cdn1, &cdn2] {
            u.set(Mode::Ok).await;
        }
        proxy
            .wait_status(Duration::from_secs(5), "origin back", |s| {
                s["routes"][0]["origin_failing"] == false
            })
            .await;
        let healed = Instant::now();
        let r = get(proxy.addr, "www.example.com", "/").await;
        assert_eq!((r.status.as_u16(), r.header("x-bascule-upstream")), (200, "cdn1"));
        assert!(healed.elapsed() < Duration::from_secs(2));

        let st = proxy.status().await;
        assert_eq!(
            events(&st, "origin", "www"),
            vec!["\"ok\" -> \"failing\"", "\"failing\" -> \"ok\""],
            "{st:#}"
        );
        for u in ["cdn1", "cdn2"] {
            assert_eq!(events(&st, "upstream_state", u), Vec::<String>::new(), "{u}: {st:#}");
        }
        assert!(events(&st, "active_tier", "www").is_empty(), "the active tier never moved: {st:#}");
        assert_eq!(st["routes"][0]["active_tier"], 0);
        let m = scrape(&proxy).await;
        for u in ["cdn1", "cdn2"] {
            let cdn_fault = format!("bascule_upstream_failures_total{{fault=\"cdn\",upstream=\"{u}\"}}");
            assert_eq!(value(&m, &cdn_fault), 0.0, "{u}");
        }
        let through = "bascule_upstream_failures_total{fault=\"origin\",upstream=\"cdn1\"}";
        assert!(value(&m, through) >= n as f64, "the origin's failures, seen through cdn1");
    })
    .await;
}

#[tokio::test]
async fn a_route_without_an_origin_tier_blames_its_cdns() {
    bounded(LIMIT, async {
        let cdn1 = FakeUpstream::switchable("cdn1", "/healthz").await;
        let cdn2 = FakeUpstream::ok("cdn2").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\nfall = 2\n\
                 [defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0",
            )
            .upstream_with("cdn1", &cdn1, CDN)
            .upstream_with("cdn2", &cdn2, CDN)
            .route("www", &["*"], "/", r#"["cdn1", "cdn2"]"#)
            .start()
            .await;
        cdn1.set(Mode::Status(503)).await;
        proxy
            .wait_status(Duration::from_secs(5), "cdn1 down", |s| {
                s["routes"][0]["active_tier"] == 1
            })
            .await;
        let st = proxy.status().await;
        assert_eq!(st["routes"][0]["origin_failing"], false);
        let r = get(proxy.addr, "www.example.com", "/").await;
        assert_eq!((r.status.as_u16(), r.header("x-bascule-upstream")), (200, "cdn2"));
    })
    .await;
}
