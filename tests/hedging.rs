//! Hedged requests and the retry budget (DESIGN §7.4), black-box over real sockets: a primary
//! that accepts requests and never answers, while its health checks stay green, costs each GET
//! about `hedge_after` (the secondary answers the hedge, the primary's attempt is cancelled); a
//! connect that hangs (SYNs dropped) is hedged too; a POST is never hedged; `hedge_after =
//! "off"` waits for `response_timeout` as before; the budget holds back retries of a primary
//! that answers 503, never failovers off a refused connect.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use support::exposition::{self, Format};
use support::{admin_get, bounded, get, request, Bascule, FakeUpstream, ProxyConfig, HOST};

const LIMIT: Duration = Duration::from_secs(40);
/// Health checks every 200 ms (they pass: the fakes answer probes), no passive ejection.
const GREEN_CHECKS: &str =
    "[defaults.health]\ninterval = \"200ms\"\n[defaults.passive]\nconsecutive_failures = 0";
/// What a hedge may take beyond its delay on a loaded test machine.
const MARGIN: Duration = Duration::from_millis(400);

/// A route `site` over `primary` then `secondary` (each with `upstream` keys), with `retry` as
/// its `[routes.retry]` keys, and the admin API on.
async fn proxy(
    primary: &FakeUpstream,
    secondary: &FakeUpstream,
    upstream: &str,
    retry: &str,
) -> Bascule {
    ProxyConfig::new()
        .admin("")
        .defaults(GREEN_CHECKS)
        .upstream_with("primary", primary, upstream)
        .upstream_with("secondary", secondary, upstream)
        .route_with(
            "site",
            &["*"],
            "/",
            r#"["primary", "secondary"]"#,
            &format!("[routes.retry]\n{retry}"),
        )
        .start()
        .await
}

async fn metric(proxy: &Bascule, name: &str) -> f64 {
    let text = admin_get(proxy.admin, "/metrics").await.text();
    let samples = exposition::parse(&text, Format::Text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    samples.get(name).copied().unwrap_or(0.0)
}

const CANCELLED: &str =
    "bascule_upstream_attempts_total{outcome=\"cancelled\",upstream=\"primary\"}";
const EXHAUSTED: &str = "bascule_retry_budget_exhausted_total{route=\"site\"}";

#[tokio::test]
async fn a_blackholed_primary_costs_each_get_about_hedge_after() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::hang("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let p = proxy(&primary, &secondary, "", r#"hedge_after = "150ms""#).await;
        for i in 0..5 {
            let start = Instant::now();
            let r = get(p.addr, HOST, "/story").await;
            let took = start.elapsed();
            assert_eq!(r.status, 200, "{i}: {}", r.text());
            assert_eq!(r.header("x-bascule-upstream"), "secondary", "{i}");
            assert_eq!(r.header("x-bascule-attempts"), "2", "{i}: the hedge counts");
            assert!(
                took >= Duration::from_millis(150) && took < Duration::from_millis(150) + MARGIN,
                "{i}: answered after {took:?}"
            );
        }
        assert_eq!(primary.hits(), 5, "every request reached the primary first");
        assert_eq!(metric(&p, CANCELLED).await, 5.0, "each loser cancelled");
        let s = p.upstream_status("primary").await;
        assert_eq!(
            s["state"], "healthy",
            "a cancelled attempt is no failure: {s}"
        );
    })
    .await;
}

#[tokio::test]
async fn auto_hedges_at_the_primarys_recent_p95() {
    bounded(LIMIT, async {
        // Fast answers on every path but /story, which hangs (checks stay green).
        let primary = FakeUpstream::hang_on("primary", "/story").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let p = proxy(&primary, &secondary, "", "").await;
        // With too few samples, "auto" waits 1 s.
        let start = Instant::now();
        let r = get(p.addr, HOST, "/story").await;
        let cold = start.elapsed();
        assert_eq!(r.header("x-bascule-upstream"), "secondary");
        assert!(cold >= Duration::from_secs(1), "cold estimate: {cold:?}");
        for _ in 0..40 {
            assert_eq!(get(p.addr, HOST, "/warm").await.status, 200);
        }
        // Now its p95 is a few ms: the hedge goes at the 50 ms floor.
        for i in 0..3 {
            let start = Instant::now();
            let r = get(p.addr, HOST, "/story").await;
            let took = start.elapsed();
            assert_eq!(r.header("x-bascule-upstream"), "secondary", "{i}");
            assert!(
                took >= Duration::from_millis(50) && took < Duration::from_millis(50) + MARGIN,
                "{i}: answered after {took:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_post_is_never_hedged() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::hang("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let p = proxy(
            &primary,
            &secondary,
            r#"response_timeout = "600ms""#,
            r#"hedge_after = "100ms""#,
        )
        .await;
        let start = Instant::now();
        let r = request(p.addr, Method::POST, HOST, "/form", &[], Bytes::from("a=1")).await;
        let took = start.elapsed();
        assert_eq!(r.status, 504, "sent, so not replayed: {}", r.text());
        assert!(took >= Duration::from_millis(600), "{took:?}");
        assert_eq!(secondary.hits(), 0, "no hedge, no retry");
        assert_eq!(r.header("x-bascule-attempts"), "1");
    })
    .await;
}

#[tokio::test]
async fn hedge_after_off_waits_for_the_response_timeout_as_before() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::hang("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let p = proxy(
            &primary,
            &secondary,
            r#"response_timeout = "700ms""#,
            r#"hedge_after = "off""#,
        )
        .await;
        let start = Instant::now();
        let r = get(p.addr, HOST, "/story").await;
        let took = start.elapsed();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-bascule-upstream"), "secondary");
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert!(
            took >= Duration::from_millis(700),
            "retried after the timeout: {took:?}"
        );
        assert_eq!(metric(&p, CANCELLED).await, 0.0);
        let timeouts = "bascule_upstream_attempts_total{outcome=\"timeout\",upstream=\"primary\"}";
        assert_eq!(metric(&p, timeouts).await, 1.0);
    })
    .await;
}

#[tokio::test]
async fn the_budget_limits_retries_of_a_primary_answering_503_with_green_checks() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::status("primary", 503).await;
        let secondary = FakeUpstream::ok("secondary").await;
        // No share of requests, 1 per second: 10 retries in the 10 s window.
        let retry = "hedge_after = \"off\"\nbudget = 0\nbudget_min_per_sec = 1";
        let p = proxy(&primary, &secondary, "", retry).await;
        let (mut retried, mut passed) = (0, 0);
        for _ in 0..30 {
            let r = get(p.addr, HOST, "/story").await;
            match (r.status.as_u16(), r.header("x-bascule-upstream")) {
                (200, "secondary") => retried += 1,
                (503, "primary") => passed += 1,
                other => panic!("unexpected answer {other:?}: {}", r.text()),
            }
        }
        assert_eq!(
            (retried, passed),
            (10, 20),
            "the primary's 503 passed on once spent"
        );
        assert_eq!(primary.hits(), 30);
        assert_eq!(secondary.hits(), 10, "upstream requests held to 30 + 10");
        assert_eq!(metric(&p, EXHAUSTED).await, 20.0);
        let s = p.upstream_status("primary").await;
        assert_eq!(s["state"], "healthy", "checks stay green: {s}");
    })
    .await;
}

#[tokio::test]
async fn refused_connects_are_never_limited_by_the_budget() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::refuse("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let retry = "budget = 0\nbudget_min_per_sec = 0";
        let p = proxy(&primary, &secondary, "", retry).await;
        for i in 0..30 {
            let r = get(p.addr, HOST, "/story").await;
            assert_eq!(r.status, 200, "{i}: {}", r.text());
            assert_eq!(r.header("x-bascule-upstream"), "secondary", "{i}");
        }
        assert_eq!(secondary.hits(), 30);
        assert_eq!(metric(&p, EXHAUSTED).await, 0.0);
    })
    .await;
}

#[tokio::test]
async fn a_spent_budget_sends_no_hedge_and_answers_as_if_no_attempt_were_left() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::hang("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let retry = "hedge_after = \"100ms\"\nbudget = 0\nbudget_min_per_sec = 0";
        let p = proxy(&primary, &secondary, r#"response_timeout = "500ms""#, retry).await;
        let start = Instant::now();
        let r = get(p.addr, HOST, "/story").await;
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert_eq!(secondary.hits(), 0);
        assert_eq!(r.header("x-bascule-attempts"), "1");
        assert_eq!(
            metric(&p, EXHAUSTED).await,
            2.0,
            "the hedge, then the retry"
        );
    })
    .await;
}

#[tokio::test]
async fn a_hedge_that_wins_asks_for_a_probe_of_the_upstream_it_beat() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::hang("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        // Probes a minute apart: only the hedge's word brings the next one sooner.
        let p = ProxyConfig::new()
            .defaults("[defaults.health]\ninterval = \"60s\"")
            .upstream("primary", &primary)
            .upstream("secondary", &secondary)
            .route_with(
                "site",
                &["*"],
                "/",
                r#"["primary", "secondary"]"#,
                "[routes.retry]\nhedge_after = \"100ms\"",
            )
            .start()
            .await;
        let first = Instant::now() + Duration::from_secs(5);
        while primary.probes() == 0 && Instant::now() < first {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = primary.probes();
        assert_eq!(before, 1, "the first probe, at start");
        let r = get(p.addr, HOST, "/story").await;
        assert_eq!(r.header("x-bascule-upstream"), "secondary");
        let until = Instant::now() + Duration::from_secs(5);
        while primary.probes() == before && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            primary.probes(),
            before + 1,
            "probed at once, not in a minute"
        );
        assert_eq!(secondary.probes(), 1, "the winner is not probed again");
    })
    .await;
}

#[tokio::test]
async fn a_connect_that_hangs_is_hedged_too() {
    bounded(LIMIT, async {
        // SYNs dropped: only connect_timeout (2 s here) would end the attempt.
        let primary = FakeUpstream::blackhole("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let p = proxy(
            &primary,
            &secondary,
            r#"connect_timeout = "2s""#,
            r#"hedge_after = "100ms""#,
        )
        .await;
        let start = Instant::now();
        let r = get(p.addr, HOST, "/story").await;
        let took = start.elapsed();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-bascule-upstream"), "secondary");
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_millis(100) + MARGIN,
            "answered after {took:?}, not after the connect timeout"
        );
        assert_eq!(metric(&p, CANCELLED).await, 1.0);
    })
    .await;
}
