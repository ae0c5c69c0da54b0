//! Partial and flapping failures (DESIGN §7.2), black-box: a CDN failing every other request
//! (probes green) is ejected by `failure_rate` while every reader gets a 200; a CDN that keeps
//! relapsing after each failback waits twice as long each time, and its delay returns to
//! `failback_delay` once it stays quiet; a warm standby takes its share of reads, evenly, and a
//! broken standby is invisible to readers and ejected.

mod support;

use std::time::Duration;

use support::exposition::{self, Format};
use support::upstream::fixture_page;
use support::{admin_get, bounded, get, Bascule, FakeUpstream, Mode, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(60);
const CDN: &str = "role = \"cdn\"";
const HOST: &str = "www.example.com";

async fn scrape(proxy: &Bascule) -> exposition::Samples {
    let text = admin_get(proxy.admin, "/metrics").await.text();
    exposition::parse(&text, Format::Text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn events(status: &serde_json::Value, kind: &str, subject: &str) -> Vec<serde_json::Value> {
    status["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["kind"] == kind && e["subject"] == subject)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_cdn_failing_every_other_request_is_ejected_by_rate_and_readers_see_only_200s() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::ok("primary").await;
        let page = fixture_page("cloudflare-500");
        primary
            .set(Mode::EveryNth(2, Box::new(Mode::Page(page))))
            .await;
        let secondary = FakeUpstream::ok("secondary").await;
        // Probes pass (the fakes answer them 200): only live traffic can tell.
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\ninterval = \"200ms\"\n\
                 [defaults.passive]\nconsecutive_failures = 3\nejection = \"30s\"\n\
                 failure_rate = 0.5\nmin_requests = 20\nwindow = \"10s\"",
            )
            .upstream_with("primary", &primary, CDN)
            .upstream_with("secondary", &secondary, CDN)
            .route("www", &["*"], "/", r#"["primary", "secondary"]"#)
            .start()
            .await;
        let mut by = std::collections::BTreeMap::new();
        for i in 0..60 {
            let r = get(proxy.addr, HOST, &format!("/story/{i}")).await;
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            *by.entry(r.header("x-bascule-upstream").to_owned())
                .or_insert(0) += 1;
        }
        let st = proxy.upstream_status("primary").await;
        assert_eq!(st["state"], "ejected", "{st:#}");
        // Failures alternate with successes: never three in a row, so the rate rule did it,
        // at the failure that made 11 of 21 (the failures are every other attempt).
        let status = proxy.status().await;
        let ejected = events(&status, "upstream_state", "primary");
        let reason = ejected
            .iter()
            .find(|e| e["to"] == "ejected")
            .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
            .expect("an ejection event");
        assert!(
            reason.contains("11 of 21 attempts failed within the last"),
            "{reason}"
        );
        assert_eq!(primary.hits(), 21, "no attempt on it once ejected");
        assert_eq!(by.get("primary"), Some(&10), "{by:?}");
        assert_eq!(by.get("secondary"), Some(&50), "{by:?}");
        let m = scrape(&proxy).await;
        let cdn_errors =
            "bascule_upstream_attempts_total{outcome=\"cdn_error\",upstream=\"primary\"}";
        assert_eq!(m.get(cdn_errors).copied(), Some(11.0));
    })
    .await;
}

/// Waits for the route's active tier to be `tier`.
async fn until_active(proxy: &Bascule, tier: u64, what: &str) {
    proxy
        .wait_status(Duration::from_secs(20), what, |s| {
            s["routes"][0]["active_tier"] == tier
        })
        .await;
}

#[tokio::test]
async fn each_relapse_doubles_the_next_failback_delay_until_it_stays_quiet() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::switchable("primary", "/healthz").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"200ms\"\n\
                 rise = 1\nfall = 1\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0",
            )
            .upstream_with("primary", &primary, CDN)
            .upstream_with("secondary", &secondary, CDN)
            .route_with(
                "www",
                &["*"],
                "/",
                r#"["primary", "secondary"]"#,
                "failback_delay = \"300ms\"",
            )
            // DESIGN's five minutes, shortened so that the test can watch them run out.
            .env("BASCULE_TEST_DAMPING_MEMORY", "4s")
            .start()
            .await;
        until_active(&proxy, 0, "primary active at start").await;
        let mut waited = Vec::new();
        for cycle in 0..3 {
            primary.set(Mode::Status(503)).await;
            until_active(&proxy, 1, &format!("cycle {cycle}: failed over")).await;
            primary.set(Mode::Ok).await;
            until_active(&proxy, 0, &format!("cycle {cycle}: failed back")).await;
            let st = proxy.status().await;
            let back = events(&st, "active_tier", "www");
            let last = back.last().cloned().unwrap_or_default();
            assert_eq!(last["to"], "0", "{last:#}");
            waited.push(last["failback_delay_ms"].as_u64().unwrap_or(0));
        }
        assert_eq!(waited, [300, 600, 1200], "each relapse doubles the delay");
        let st = proxy.route_status("www").await;
        assert_eq!(st["failback_delay_ms"], 1200, "{st:#}");
        // Lost again within the memory of that failback: the next would wait 2400 ms.
        primary.set(Mode::Status(503)).await;
        until_active(&proxy, 1, "lost again").await;
        assert_eq!(proxy.route_status("www").await["failback_delay_ms"], 2400);
        let st = proxy.status().await;
        let failovers = events(&st, "active_tier", "www");
        let failover = failovers.last().cloned().unwrap_or_default();
        assert!(failover["failback_delay_ms"].is_null(), "{failover:#}");
        // Quiet for the memory (4 s here): back to failback_delay, shown in /status at once.
        let reset = proxy
            .wait_status(Duration::from_secs(10), "delay reset", |s| {
                s["routes"][0]["failback_delay_ms"] == 300
            })
            .await;
        assert!(reset > Duration::from_secs(3), "reset after {reset:?}");
        primary.set(Mode::Ok).await;
        until_active(&proxy, 0, "failed back after the reset").await;
        let st = proxy.status().await;
        let last = events(&st, "active_tier", "www").last().cloned();
        assert_eq!(last.unwrap_or_default()["failback_delay_ms"], 300);
    })
    .await;
}

/// primary (cdn) > secondary (cdn) > origin, with `standby_share` on the route.
async fn with_standby(
    primary: &FakeUpstream,
    secondary: &FakeUpstream,
    origin: &FakeUpstream,
    share: &str,
) -> Bascule {
    ProxyConfig::new()
        .admin("")
        .defaults(
            "[defaults.health]\ninterval = \"60s\"\n\
             [defaults.passive]\nconsecutive_failures = 3\nejection = \"60s\"",
        )
        .upstream_with("primary", primary, CDN)
        .upstream_with("secondary", secondary, CDN)
        .upstream("origin", origin)
        .route_with(
            "www",
            &["*"],
            "/",
            r#"["primary", "secondary", "origin"]"#,
            &format!("standby_share = {share}"),
        )
        .start()
        .await
}

#[tokio::test]
async fn a_warm_standby_takes_its_share_evenly_and_a_broken_one_is_invisible_and_ejected() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::ok("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let origin = FakeUpstream::ok("origin").await;
        let proxy = with_standby(&primary, &secondary, &origin, "0.02").await;
        let mut answered = Vec::new();
        for i in 0..1000 {
            let r = get(proxy.addr, HOST, &format!("/a/{i}")).await;
            assert_eq!(r.status, 200);
            answered.push(r.header("x-bascule-upstream").to_owned());
        }
        let standby: Vec<usize> = (0..answered.len())
            .filter(|&i| answered[i] == "secondary")
            .collect();
        assert_eq!(standby.len(), 20, "2 % of 1000");
        assert!(
            standby.windows(2).all(|w| w[1] - w[0] == 50),
            "evenly spread, one in 50: {standby:?}"
        );
        assert_eq!(primary.hits(), 980);
        assert_eq!(origin.hits(), 0);
        let m = scrape(&proxy).await;
        let name = "bascule_requests_total{code=\"200\",route=\"www\",upstream=\"secondary\"}";
        assert_eq!(
            m.get(name).copied(),
            Some(20.0),
            "metrics show standby traffic"
        );
        let st = proxy.route_status("www").await;
        assert_eq!(st["standby_share"], 0.02, "{st:#}");

        // The standby breaks (its own error page): readers see nothing of it.
        let page = fixture_page("cloudflare-500");
        secondary.set(Mode::Page(page)).await;
        let before = secondary.hits();
        let mut by_origin = 0;
        for i in 0..500 {
            let r = get(proxy.addr, HOST, &format!("/b/{i}")).await;
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
            let up = r.header("x-bascule-upstream").to_owned();
            assert_ne!(up, "secondary", "request {i}");
            assert_eq!(r.text(), format!("ok from {up}"));
            by_origin += usize::from(up == "origin");
        }
        let st = proxy.upstream_status("secondary").await;
        assert_eq!(
            st["state"], "ejected",
            "three failed standby attempts: {st:#}"
        );
        assert_eq!(
            secondary.hits() - before,
            3,
            "no standby attempt once it is ejected"
        );
        // Once it is out, the next usable tier after the active one is the origin: the
        // standby share goes there (the path readers would take next is the one kept proven).
        assert_eq!(
            by_origin,
            10 - 3,
            "standby requests after the ejection: {by_origin}"
        );
        assert_eq!(origin.hits(), by_origin);
    })
    .await;
}

#[tokio::test]
async fn only_replay_safe_reads_go_to_the_standby() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::echo("primary").await;
        let secondary = FakeUpstream::echo("secondary").await;
        let origin = FakeUpstream::ok("origin").await;
        let proxy = with_standby(&primary, &secondary, &origin, "0.5").await;
        for i in 0..20 {
            let r = support::request(
                proxy.addr,
                http::Method::POST,
                HOST,
                &format!("/order/{i}"),
                &[],
                "pay=1",
            )
            .await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-bascule-upstream"), "primary");
        }
        assert_eq!(secondary.hits(), 0);
        for i in 0..20 {
            let r = support::request(
                proxy.addr,
                http::Method::HEAD,
                HOST,
                &format!("/{i}"),
                &[],
                "",
            )
            .await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(secondary.hits(), 10, "half the HEADs");
    })
    .await;
}

/// primary > secondary, both CDNs, with `passive` as `[defaults.passive]` and `route` keys.
fn flaky_site(primary: &FakeUpstream, secondary: &FakeUpstream, passive: &str) -> ProxyConfig {
    ProxyConfig::new()
        .admin("")
        .defaults(&format!(
            "[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\n{passive}"
        ))
        .upstream_with("primary", primary, CDN)
        .upstream_with("secondary", secondary, CDN)
        .route("www", &["*"], "/", r#"["primary", "secondary"]"#)
}

#[tokio::test]
async fn a_reload_turns_the_rate_rule_on_in_place() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::ok("primary").await;
        primary
            .set(Mode::EveryNth(2, Box::new(Mode::Status(502))))
            .await;
        let secondary = FakeUpstream::ok("secondary").await;
        let off = "consecutive_failures = 3\nmin_requests = 0";
        let proxy = flaky_site(&primary, &secondary, off).start().await;
        for i in 0..40 {
            let r = get(proxy.addr, HOST, &format!("/{i}")).await;
            assert_eq!(r.status, 200, "request {i}");
        }
        assert_eq!(proxy.upstream_status("primary").await["state"], "healthy");
        let on = "consecutive_failures = 3\nmin_requests = 20\nfailure_rate = 0.5";
        proxy.replace(&flaky_site(&primary, &secondary, on));
        proxy
            .wait_status(Duration::from_secs(5), "reloaded", |s| {
                s["config"]["generation"] == 2
            })
            .await;
        let st = proxy.status().await;
        let reload = events(&st, "reload", st["config"]["path"].as_str().unwrap_or(""))
            .last()
            .cloned()
            .unwrap_or_default();
        assert!(
            reload["reason"]
                .as_str()
                .unwrap_or("")
                .contains("retuned in place primary"),
            "{reload:#}"
        );
        for i in 0..40 {
            let r = get(proxy.addr, HOST, &format!("/again/{i}")).await;
            assert_eq!(r.status, 200, "request {i}");
        }
        let st = proxy.upstream_status("primary").await;
        assert_eq!(st["state"], "ejected", "{st:#}");
    })
    .await;
}
