//! Health (DESIGN §4 "Choosing where a request goes", "Active health checks", "Passive
//! detection", "Events"; §5 `/status`): real fake upstreams that refuse, hang, answer 5xx or
//! flap, and the proxy's `/status` as the observer. Health timings are shortened (probes every
//! 200 ms, timeout 150 ms, rise = fall = 2, failback 1 s) so the scenarios run in seconds.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{bounded, get, Bascule, FakeUpstream, Mode, ProxyConfig};

const INTERVAL: Duration = Duration::from_millis(200);
const PROBE_TIMEOUT: Duration = Duration::from_millis(150);
const FAILBACK: Duration = Duration::from_secs(1);
const LIMIT: Duration = Duration::from_secs(40);

/// Fast active checks, passive ejection off unless `passive` says otherwise.
fn defaults(passive: &str) -> String {
    format!(
        "connect_timeout = \"500ms\"\nresponse_timeout = \"600ms\"\n\
         [defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
         rise = 2\nfall = 2\n[defaults.passive]\n{passive}\n"
    )
}

/// primary > secondary > origin, all switchable, with the admin API on.
struct Site {
    primary: FakeUpstream,
    secondary: FakeUpstream,
    origin: FakeUpstream,
    proxy: Bascule,
}

async fn site(passive: &str) -> Site {
    let primary = FakeUpstream::switchable("primary", "/healthz").await;
    let secondary = FakeUpstream::switchable("secondary", "/healthz").await;
    let origin = FakeUpstream::switchable("origin", "/healthz").await;
    let proxy = ProxyConfig::new()
        .admin("")
        .defaults(&defaults(passive))
        .one_route(
            "www",
            &[&primary, &secondary, &origin],
            "failback_delay = \"1s\"",
        )
        .start()
        .await;
    Site {
        primary,
        secondary,
        origin,
        proxy,
    }
}

/// Sends `n` GETs one after the other (bounded by `limit`); returns the upstreams that
/// answered, and the number of non-200 answers.
async fn traffic(proxy: &Bascule, n: usize, limit: Duration) -> (Vec<String>, usize) {
    traffic_to(proxy.addr, n, limit).await
}

async fn traffic_to(addr: SocketAddr, n: usize, limit: Duration) -> (Vec<String>, usize) {
    let start = Instant::now();
    let mut served = Vec::with_capacity(n);
    let mut errors = 0;
    for _ in 0..n {
        if start.elapsed() > limit {
            break;
        }
        let r = get(addr, "www.example.com", "/page").await;
        if r.status != 200 {
            errors += 1;
        }
        served.push(r.header("x-bascule-upstream").to_owned());
    }
    (served, errors)
}

fn state_of(status: &Value, name: &str) -> String {
    status["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name))
        .map(|u| u["state"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn active_tier(status: &Value) -> Value {
    status["routes"][0]["active_tier"].clone()
}

fn events_of(status: &Value, kind: &str) -> Vec<Value> {
    status["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).cloned().collect())
        .unwrap_or_default()
}

/// Waits until the first probes have passed, so each test starts from verified health.
async fn verified(site: &Site) {
    site.proxy
        .wait_status(Duration::from_secs(5), "first probes", |s| {
            s["upstreams"]
                .as_array()
                .is_some_and(|a| a.iter().all(|u| u["last_check"]["ok"] == true))
        })
        .await;
}

#[tokio::test]
async fn a_refused_primary_is_marked_unhealthy_in_time_and_the_secondary_serves_without_errors() {
    bounded(LIMIT, async {
        let s = site("consecutive_failures = 0\nmin_requests = 0").await;
        verified(&s).await;
        s.primary.set(Mode::Refuse).await;
        let broke = Instant::now();
        // Traffic meanwhile: every request is answered (a refused connect is replayed).
        let load = tokio::spawn(traffic_to(s.proxy.addr, 40, Duration::from_secs(5)));
        s.proxy
            .wait_status(Duration::from_secs(3), "primary unhealthy", |st| {
                state_of(st, "primary") == "unhealthy"
            })
            .await;
        let took = broke.elapsed();
        // fall × interval + timeout, plus the interval's 10 % jitter and polling slack.
        let bound = INTERVAL * 2 + PROBE_TIMEOUT + Duration::from_millis(250);
        assert!(took <= bound, "unhealthy after {took:?}, bound {bound:?}");
        let (served, errors) = load.await.expect("load task");
        assert_eq!(errors, 0, "{served:?}");
        assert!(served.iter().all(|u| u == "secondary"), "{served:?}");
        let st = s.proxy.status().await;
        assert_eq!(active_tier(&st), 1);
        let check = &st["upstreams"][1]["last_check"];
        assert_eq!(st["upstreams"][1]["name"], "primary");
        assert_eq!(check["ok"], false);
        assert!(
            check["error"].as_str().unwrap_or("").contains("onnect"),
            "{check}"
        );
        let changes = events_of(&st, "upstream_state");
        assert!(
            changes.iter().any(|e| e["subject"] == "primary"
                && e["from"] == "healthy"
                && e["to"] == "unhealthy"),
            "{changes:?}"
        );
        let tiers = events_of(&st, "active_tier");
        assert!(
            tiers
                .iter()
                .any(|e| e["subject"] == "www" && e["from"] == "0" && e["to"] == "1"),
            "{tiers:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_hanging_primary_is_abandoned_and_no_request_fails() {
    bounded(LIMIT, async {
        let s = site("consecutive_failures = 0\nmin_requests = 0").await;
        verified(&s).await;
        s.primary.set(Mode::Hang).await;
        let broke = Instant::now();
        let (_, errors) = traffic(&s.proxy, 10, Duration::from_secs(10)).await;
        assert_eq!(
            errors, 0,
            "GETs that time out are replayed on the next tier"
        );
        s.proxy
            .wait_status(Duration::from_secs(3), "primary unhealthy", |st| {
                state_of(st, "primary") == "unhealthy"
            })
            .await;
        // From now on no request waits for the primary.
        let before = s.primary.hits();
        let t = Instant::now();
        let (served, errors) = traffic(&s.proxy, 10, Duration::from_secs(5)).await;
        assert_eq!(errors, 0);
        assert!(served.iter().all(|u| u == "secondary"), "{served:?}");
        assert_eq!(
            s.primary.hits(),
            before,
            "no traffic to an unhealthy primary"
        );
        assert!(t.elapsed() < Duration::from_secs(2), "no response timeouts");
        assert!(broke.elapsed() < Duration::from_secs(15));
    })
    .await;
}

async fn status_storm(code: u16) {
    let s = site("consecutive_failures = 3\nejection = \"10s\"").await;
    verified(&s).await;
    s.primary.set(Mode::Status(code)).await;
    let (served, errors) = traffic(&s.proxy, 30, Duration::from_secs(10)).await;
    assert_eq!(
        errors, 0,
        "{code}s are retried on the secondary: {served:?}"
    );
    assert!(served.iter().all(|u| u == "secondary"), "{served:?}");
    // Passive ejection after 3 live failures, at once; active checks agree soon after.
    let st = s.proxy.status().await;
    let state = state_of(&st, "primary");
    assert!(state == "ejected" || state == "unhealthy", "{state}");
    s.proxy
        .wait_status(Duration::from_secs(3), "primary unhealthy", |st| {
            st["upstreams"][1]["last_check"]["status"] == code
        })
        .await;
    let hits = s.primary.hits();
    assert!(
        hits <= 3,
        "the primary got {hits} live requests; ejected after 3"
    );
}

#[tokio::test]
async fn a_503_storm_moves_traffic_to_the_secondary_with_no_client_errors() {
    bounded(LIMIT, status_storm(503)).await;
}

#[tokio::test]
async fn a_520_storm_moves_traffic_to_the_secondary_with_no_client_errors() {
    bounded(LIMIT, status_storm(520)).await;
}

#[tokio::test]
async fn when_both_cdns_fail_traffic_cascades_to_the_origin() {
    bounded(LIMIT, async {
        let s = site("consecutive_failures = 0\nmin_requests = 0").await;
        verified(&s).await;
        s.primary.set(Mode::Refuse).await;
        s.secondary.set(Mode::Status(503)).await;
        s.proxy
            .wait_status(Duration::from_secs(3), "active tier 2", |st| {
                active_tier(st) == 2
            })
            .await;
        let (served, errors) = traffic(&s.proxy, 10, Duration::from_secs(5)).await;
        assert_eq!(errors, 0);
        assert!(served.iter().all(|u| u == "origin"), "{served:?}");
        assert_eq!(s.origin.hits(), 10);
        // Everything down: the tiers are still tried in order (a stale verdict must never be
        // worse than trying), and the route shows no active tier.
        s.origin.set(Mode::Refuse).await;
        s.proxy
            .wait_status(Duration::from_secs(3), "no active tier", |st| {
                active_tier(st).is_null()
            })
            .await;
        s.secondary.set(Mode::Ok).await;
        let r = get(s.proxy.addr, "www.example.com", "/").await;
        assert_eq!(r.status, 200, "the secondary answers although marked down");
        assert_eq!(r.header("x-bascule-upstream"), "secondary");
        assert_eq!(r.header("x-bascule-attempts"), "2");
    })
    .await;
}

#[tokio::test]
async fn a_balanced_origin_group_shares_traffic_and_covers_for_a_dead_member() {
    bounded(LIMIT, async {
        let cdn = FakeUpstream::refuse("cdn").await;
        let o1 = FakeUpstream::switchable("o1", "/healthz").await;
        let o2 = FakeUpstream::switchable("o2", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(&defaults("consecutive_failures = 0\nmin_requests = 0"))
            .upstream("cdn", &cdn)
            .upstream_at("o1", &o1.address(), "")
            .upstream_at("o2", &o2.address(), "")
            .route("www", &["*"], "/", r#"["cdn", ["o1", "o2"]]"#)
            .start()
            .await;
        proxy
            .wait_status(Duration::from_secs(3), "cdn down", |st| {
                active_tier(st) == 1
            })
            .await;
        let (served, errors) = traffic(&proxy, 20, Duration::from_secs(5)).await;
        assert_eq!(errors, 0);
        let n1 = served.iter().filter(|u| *u == "o1").count();
        let n2 = served.iter().filter(|u| *u == "o2").count();
        assert_eq!((n1, n2), (10, 10), "round-robin: {served:?}");
        o1.set(Mode::Refuse).await;
        proxy
            .wait_status(Duration::from_secs(3), "o1 unhealthy", |st| {
                state_of(st, "o1") == "unhealthy"
            })
            .await;
        let (served, errors) = traffic(&proxy, 10, Duration::from_secs(5)).await;
        assert_eq!(errors, 0);
        assert!(served.iter().all(|u| u == "o2"), "{served:?}");
        assert_eq!(active_tier(&proxy.status().await), 1);
    })
    .await;
}

#[tokio::test]
async fn failback_waits_failback_delay_and_comes_within_it_plus_two_intervals() {
    bounded(LIMIT, async {
        let s = site("consecutive_failures = 0\nmin_requests = 0").await;
        verified(&s).await;
        s.primary.set(Mode::Refuse).await;
        s.proxy
            .wait_status(Duration::from_secs(3), "failed over", |st| {
                active_tier(st) == 1
            })
            .await;
        s.primary.set(Mode::Ok).await;
        // Usable again after `rise` passing probes…
        let usable = s
            .proxy
            .wait_status(Duration::from_secs(3), "primary healthy", |st| {
                state_of(st, "primary") == "healthy"
            })
            .await;
        let usable_at = Instant::now();
        assert!(
            usable <= INTERVAL * 3 + Duration::from_millis(300),
            "{usable:?}"
        );
        // …then held back for failback_delay.
        let (served, _) = traffic(&s.proxy, 3, Duration::from_secs(1)).await;
        assert!(served.iter().all(|u| u == "secondary"), "{served:?}");
        s.proxy
            .wait_status(Duration::from_secs(5), "failed back", |st| {
                active_tier(st) == 0
            })
            .await;
        let back = usable_at.elapsed();
        assert!(
            back + Duration::from_millis(50) >= FAILBACK - INTERVAL,
            "failed back after {back:?}, before failback_delay"
        );
        assert!(
            back <= FAILBACK + INTERVAL * 2 + Duration::from_millis(300),
            "failed back after {back:?}"
        );
        let r = get(s.proxy.addr, "www.example.com", "/").await;
        assert_eq!(r.header("x-bascule-upstream"), "primary");
        let st = s.proxy.status().await;
        let tiers = events_of(&st, "active_tier");
        assert!(
            tiers.iter().any(|e| e["from"] == "1" && e["to"] == "0"),
            "{tiers:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn an_upstream_failing_every_other_probe_does_not_flap_the_active_tier() {
    bounded(LIMIT, async {
        let s = site("consecutive_failures = 0\nmin_requests = 0").await;
        verified(&s).await;
        s.primary.set(Mode::FlapProbes).await;
        let from = s.primary.probes();
        // Twenty probes at a 50 % failure rate.
        let t = Instant::now();
        while s.primary.probes() < from + 20 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(s.primary.probes() >= from + 20);
        let st = s.proxy.status().await;
        assert_eq!(state_of(&st, "primary"), "healthy");
        assert_eq!(active_tier(&st), 0);
        assert!(events_of(&st, "active_tier").is_empty(), "{st:#}");
        assert!(events_of(&st, "upstream_state").is_empty(), "{st:#}");
    })
    .await;
}

#[tokio::test]
async fn passive_ejection_doubles_on_repeats() {
    bounded(LIMIT, async {
        let primary = FakeUpstream::status("primary", 503).await;
        let backup = FakeUpstream::ok("backup").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\ninterval = \"60s\"\nfall = 100\n\
                 [defaults.passive]\nconsecutive_failures = 3\nejection = \"400ms\"\n",
            )
            .one_route("www", &[&primary, &backup], "failback_delay = \"1ms\"")
            .start()
            .await;
        let mut lengths = Vec::new();
        for round in 0..2 {
            proxy
                .wait_status(Duration::from_secs(3), "primary in use", |st| {
                    active_tier(st) == 0
                })
                .await;
            let (_, errors) = traffic(&proxy, 3, Duration::from_secs(5)).await;
            assert_eq!(errors, 0);
            assert_eq!(primary.hits(), 3 * (round + 1));
            let ejected = Instant::now();
            assert_eq!(proxy.upstream_status("primary").await["state"], "ejected");
            let (served, _) = traffic(&proxy, 3, Duration::from_secs(1)).await;
            assert!(served.iter().all(|u| u == "backup"), "ejected: {served:?}");
            proxy
                .wait_status(Duration::from_secs(3), "ejection over", |st| {
                    state_of(st, "primary") == "healthy"
                })
                .await;
            lengths.push(ejected.elapsed());
        }
        let (first, second) = (lengths[0], lengths[1]);
        assert!(
            first >= Duration::from_millis(300) && first <= Duration::from_millis(800),
            "{lengths:?}"
        );
        assert!(
            second >= Duration::from_millis(700) && second <= Duration::from_millis(1300),
            "second ejection should last twice as long: {lengths:?}"
        );
        let st = proxy.status().await;
        let ejections: Vec<Value> = events_of(&st, "upstream_state")
            .into_iter()
            .filter(|e| e["to"] == "ejected")
            .collect();
        assert_eq!(ejections.len(), 2, "{ejections:?}");
        assert!(
            ejections[1]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("800ms"),
            "{ejections:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn probes_carry_the_configured_path_and_host() {
    bounded(LIMIT, async {
        let cdn = FakeUpstream::switchable("cdn", "/bascule-health").await;
        let origin = FakeUpstream::switchable("origin", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(&defaults("consecutive_failures = 0\nmin_requests = 0"))
            .upstream_at(
                "cdn",
                &cdn.address(),
                "host = \"www.example.com\"\n[upstreams.cdn.health]\npath = \"/bascule-health\"",
            )
            .upstream_at(
                "origin",
                &origin.address(),
                "[upstreams.origin.health]\nhost = \"origin.internal\"",
            )
            .route("www", &["*"], "/", r#"["cdn", "origin"]"#)
            .start()
            .await;
        proxy
            .wait_status(Duration::from_secs(3), "probed", |st| {
                st["upstreams"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|u| u["last_check"]["ok"] == true))
            })
            .await;
        let p = cdn.last_probe().expect("the cdn was probed");
        assert_eq!(p.method, http::Method::GET);
        assert_eq!(p.uri.path(), "/bascule-health");
        assert_eq!(p.header("host").as_deref(), Some("www.example.com"));
        let p = origin.last_probe().expect("the origin was probed");
        assert_eq!(p.uri.path(), "/healthz");
        assert_eq!(p.header("host").as_deref(), Some("origin.internal"));
        assert_eq!(cdn.hits() + origin.hits(), 0, "probes are not traffic");
    })
    .await;
}

#[tokio::test]
async fn status_has_the_contract_fields_and_a_new_upstream_is_healthy_unverified() {
    bounded(LIMIT, async {
        // Probes far apart: the first one is sent at once, the next only after a minute.
        let cdn = FakeUpstream::switchable("cdn", "/healthz").await;
        cdn.set(Mode::Hang).await;
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults("[defaults.health]\ninterval = \"60s\"\ntimeout = \"2s\"\n")
            .upstream_at("cdn", &cdn.address(), "")
            .upstream("origin", &origin)
            .route("www", &["www.example.com"], "/", r#"["cdn", ["origin"]]"#)
            .start()
            .await;
        // The hanging cdn's first probe is still out: healthy, never checked.
        let st = proxy.status().await;
        let cdn_st = &st["upstreams"][0];
        assert_eq!(cdn_st["name"], "cdn");
        assert_eq!(cdn_st["state"], "healthy");
        assert!(cdn_st["last_check"].is_null(), "{cdn_st}");
        assert_eq!(cdn_st["address"], format!("http://{}", cdn.addr));
        assert_eq!(cdn_st["in_flight"], 0);
        let c = &st["config"];
        assert_eq!(c["generation"], 1);
        assert!(c["last_error"].is_null());
        assert!(c["path"].as_str().unwrap_or("").ends_with("bascule.toml"));
        assert!(c["loaded_at"].as_str().unwrap_or("").ends_with('Z'));
        let r = &st["routes"][0];
        assert_eq!(r["name"], "www");
        assert_eq!(r["hosts"], serde_json::json!(["www.example.com"]));
        assert_eq!(r["path_prefix"], "/");
        assert_eq!(r["tiers"], serde_json::json!([["cdn"], ["origin"]]));
        assert_eq!(r["active_tier"], 0);
        assert!(r["pinned"].is_null());
        assert!(st["events"].is_array());
        // The origin's first probe passed at once.
        proxy
            .wait_status(Duration::from_secs(3), "origin probed", |st| {
                st["upstreams"][1]["last_check"]["ok"] == true
            })
            .await;
        let check = &proxy.status().await["upstreams"][1]["last_check"];
        assert_eq!(check["status"], 200);
        assert!(check["latency_ms"].as_f64().is_some_and(|l| l >= 0.0));
        // Shown to two decimals ("0.38", not "0.38042000000000004").
        let latency = check["latency_ms"].to_string();
        let decimals = latency.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 2, "latency_ms: {latency}");
        assert!(check["error"].is_null());
        assert!(check["at"].as_str().unwrap_or("").ends_with('Z'));
    })
    .await;
}
