//! `GET /history` (the admin API's rate history, read from the counters once a second): a
//! failover shows as answered attempts moving from one upstream to the next, with the failed
//! ones in between and the route's active tier changing; rates times intervals add up to the
//! requests sent; `?after=` returns only newer samples; the bearer-token rule applies.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{admin_get, admin_request, bounded, get, FakeUpstream, Mode, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(60);

/// Fast active checks (as in tests/health.rs), passive ejection off.
const FAST_HEALTH: &str = "connect_timeout = \"500ms\"\nresponse_timeout = \"600ms\"\n\
     [defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
     rise = 2\nfall = 2\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n";

async fn history(admin: std::net::SocketAddr, query: &str) -> Value {
    let r = admin_get(admin, &format!("/history{query}")).await;
    assert_eq!(r.status, 200, "GET /history{query}: {}", r.text());
    assert!(r.header("content-type").starts_with("application/json"));
    serde_json::from_slice(&r.body).expect("/history is JSON")
}

/// Sends `n` requests to route www, 5 ms apart.
async fn traffic(addr: std::net::SocketAddr, n: usize) {
    for _ in 0..n {
        assert_eq!(get(addr, "www.example.com", "/").await.status, 200);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Per sample, `f` of it, for the samples where `f` is defined.
fn each<T>(h: &Value, f: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    h["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(f)
        .collect()
}

#[tokio::test]
async fn the_history_shows_traffic_moving_from_the_primary_to_the_secondary() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::switchable("primary", "/healthz").await;
        let secondary = FakeUpstream::switchable("secondary", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(FAST_HEALTH)
            .upstream_at("primary", &primary.address(), "")
            .upstream_at("secondary", &secondary.address(), "")
            .route(
                "www",
                &["www.example.com"],
                "/",
                r#"["primary", "secondary"]"#,
            )
            .start()
            .await;
        traffic(proxy.addr, 300).await;
        primary.set(Mode::Refuse).await;
        let (addr, sent_after) = (proxy.addr, 300);
        let during = tokio::spawn(traffic(addr, sent_after));
        proxy
            .wait_status(Duration::from_secs(5), "www on tier 1", |s| {
                s["routes"][0]["active_tier"] == 1
            })
            .await;
        during.await.expect("traffic");
        // Two more readings, so that every request is in a sample.
        tokio::time::sleep(Duration::from_millis(2200)).await;

        let h = history(proxy.admin, "").await;
        assert_eq!(h["period_ms"], 1000, "{h}");
        assert_eq!(h["capacity"], 600, "{h}");
        let samples = h["samples"].as_array().expect("samples");
        assert!(samples.len() >= 3, "{h:#}");
        let seqs = each(&h, |s| s["seq"].as_u64());
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert_eq!(seqs.last().copied(), h["last"].as_u64());
        let times = each(&h, |s| s["t"].as_u64());
        assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
        for dt in each(&h, |s| s["dt_ms"].as_u64()) {
            assert!(
                (900..=3000).contains(&dt),
                "{dt} ms between readings: {h:#}"
            );
        }

        // Rates times intervals: every request sent, none twice.
        let counted = |f: &dyn Fn(&Value) -> Option<f64>| -> f64 {
            each(&h, |s| Some(f(s)? * s["dt_ms"].as_f64()? / 1000.0))
                .iter()
                .sum()
        };
        let requests = counted(&|s| s["routes"]["www"]["requests"].as_f64());
        assert!((requests - 600.0).abs() < 1.0, "{requests} requests: {h:#}");
        let by_secondary = counted(&|s| s["routes"]["www"]["by_upstream"]["secondary"].as_f64());
        let ok_primary = counted(&|s| s["upstreams"]["primary"]["ok"].as_f64());
        assert!((ok_primary - 300.0).abs() < 1.0, "{ok_primary}: {h:#}");
        assert!((by_secondary - 300.0).abs() < 1.0, "{by_secondary}: {h:#}");

        // The move itself: the primary answered first, then failed, then the secondary took
        // over and the route's active tier went from 0 to 1.
        let first = |pred: &dyn Fn(&Value) -> bool| samples.iter().position(pred);
        let primary_ok = first(&|s| s["upstreams"]["primary"]["ok"].as_f64() > Some(0.0));
        let primary_failed = first(&|s| s["upstreams"]["primary"]["failed"].as_f64() > Some(0.0));
        let secondary_ok = first(&|s| s["upstreams"]["secondary"]["ok"].as_f64() > Some(0.0));
        let on_tier_1 = first(&|s| s["routes"]["www"]["active_tier"] == 1);
        assert!(
            primary_ok < primary_failed && primary_failed.is_some(),
            "{primary_ok:?} {primary_failed:?}: {h:#}"
        );
        assert!(primary_ok < secondary_ok, "{h:#}");
        assert!(on_tier_1.is_some_and(|i| samples[..i]
            .iter()
            .any(|s| s["routes"]["www"]["active_tier"] == 0)));
        // Latency: the secondary answered, so it has recent percentiles.
        let last = samples.last().expect("a sample");
        let p50 = last["upstreams"]["secondary"]["p50_ms"].as_f64();
        let p95 = last["upstreams"]["secondary"]["p95_ms"].as_f64();
        assert!(p50.is_some_and(|p| p > 0.0) && p95 >= p50, "{last}");

        // Only what is newer than the last answer.
        let newer = history(proxy.admin, &format!("?after={}", h["last"])).await;
        assert!(newer["samples"].as_array().expect("samples").len() <= 1);
        let bad = admin_get(proxy.admin, "/history?after=soon").await;
        assert_eq!(bad.status, 400, "{}", bad.text());
    })
    .await;
}

#[tokio::test]
async fn the_history_needs_the_token_like_every_endpoint() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("token = \"s3cret\"")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        assert_eq!(admin_get(proxy.admin, "/history").await.status, 401);
        let auth = [("authorization", "Bearer s3cret")];
        let r = admin_request(proxy.admin, http::Method::GET, "/history", &auth, "").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let post = [auth[0], ("content-type", "application/json")];
        let r = admin_request(proxy.admin, http::Method::POST, "/history", &post, "").await;
        assert_eq!(r.status, 405, "{}", r.text());
    })
    .await;
}
