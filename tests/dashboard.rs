//! The dashboard (DESIGN §5 `GET /`): the real page, loaded by a real browser (Debian's
//! `chromium`, headless) from a real bascule, must show what `/status` says — the active tier
//! after a failover, upstream states, events — and what `/history` says: traffic moving from
//! one upstream to the next with the tier change marked; and the page itself must need no token
//! while the API does. The browser's DOM is dumped after a virtual-time budget (the page polls
//! every 2 s) and screenshots are left in `$CARGO_TARGET_TMPDIR` for humans; the failover
//! test's is the README's `docs/dashboard.png` when `BASCULE_UPDATE_SCREENSHOT=1`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::browser::{attr, has_class, route_part, start_tag, upstream_state, Browser};
use support::{bounded, get, FakeUpstream, Mode, ProxyConfig, TempDir};

const LIMIT: Duration = Duration::from_secs(90);

/// Fast active checks (as in tests/health.rs), passive ejection off.
const FAST_HEALTH: &str = "connect_timeout = \"500ms\"\nresponse_timeout = \"600ms\"\n\
     [defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
     rise = 2\nfall = 2\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n";

#[tokio::test]
async fn the_dashboard_shows_a_failover_a_drain_and_the_events_in_a_real_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let primary = FakeUpstream::switchable("primary", "/healthz").await;
        let secondary = FakeUpstream::switchable("secondary", "/healthz").await;
        let origin = FakeUpstream::switchable("origin", "/healthz").await;
        // A second route whose only upstream answers 503 to everything: nothing usable, 5xx.
        let broken = FakeUpstream::switchable("broken", "/healthz").await;
        broken.set(Mode::Status(503)).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(FAST_HEALTH)
            .upstream_at("primary", &primary.address(), "")
            .upstream_at("secondary", &secondary.address(), "")
            .upstream_at("origin", &origin.address(), "")
            .upstream_at("broken", &broken.address(), "")
            .route(
                "www",
                &["www.example.com"],
                "/",
                r#"["primary", "secondary", "origin"]"#,
            )
            .route("api", &["api.example.com"], "/", r#"["broken"]"#)
            .start()
            .await;
        for _ in 0..10 {
            assert_eq!(get(proxy.addr, "www.example.com", "/").await.status, 200);
        }
        primary.set(Mode::Refuse).await;
        proxy
            .wait_status(Duration::from_secs(5), "www on tier 1, api on none", |s| {
                s["routes"][0]["active_tier"] == 1 && s["routes"][1]["active_tier"].is_null()
            })
            .await;
        let (code, body) = proxy
            .admin_post("/upstreams/origin/drain", r#"{"reason":"test"}"#)
            .await;
        assert_eq!(code, 200, "{body}");
        let demo_status = support::admin_get(proxy.admin, "/demo").await.status;

        // A little traffic while the browser watches, for the rate charts (api: all 5xx).
        let addr = proxy.addr;
        let traffic = tokio::spawn(async move {
            for i in 0usize.. {
                let host = if i % 4 == 3 {
                    "api.example.com"
                } else {
                    "www.example.com"
                };
                let _answer = get(addr, host, "/page").await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let dir = TempDir::new();
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-drain.png");
        let _stale = std::fs::remove_file(&shot);
        let dom = browser
            .load(format!("http://{}/", proxy.admin), dir.path(), &shot)
            .await;
        traffic.abort();
        let dom = dom.as_str();

        let (_, body_tag) = start_tag(dom, "<body").expect("a body");
        assert_eq!(
            attr(body_tag, "data-ready"),
            Some("1"),
            "never rendered /status:\n{dom}"
        );
        let www = route_part(dom, "www");
        let (_, route_tag) = start_tag(www, "data-route=\"www\"").expect("route tag");
        assert_eq!(attr(route_tag, "data-active-tier"), Some("1"), "{www}");
        let tier = |i: usize| {
            start_tag(www, &format!("data-tier=\"{i}\""))
                .unwrap_or_else(|| panic!("no tier {i} box:\n{www}"))
                .1
        };
        assert!(
            has_class(tier(1), "active"),
            "tier 1 not marked active:\n{www}"
        );
        assert!(
            !has_class(tier(0), "active"),
            "tier 0 marked active:\n{www}"
        );
        assert!(
            !has_class(tier(2), "active"),
            "tier 2 marked active:\n{www}"
        );
        let api = route_part(dom, "api");
        let (_, route_tag) = start_tag(api, "data-route=\"api\"").expect("route tag");
        assert_eq!(attr(route_tag, "data-active-tier"), Some("none"), "{api}");
        assert!(api.contains("none usable"), "{api}");
        assert_eq!(upstream_state(dom, "origin"), "drained");
        assert!(
            matches!(upstream_state(dom, "primary"), "unhealthy" | "ejected"),
            "{dom}"
        );
        assert_eq!(upstream_state(dom, "secondary"), "healthy");
        let (events_at, _) = start_tag(dom, "id=\"events\"").expect("the events list");
        assert!(
            start_tag(&dom[events_at..], "data-kind=\"active_tier\"").is_some(),
            "no active_tier event shown:\n{dom}"
        );
        let (_, last_error) = start_tag(dom, "id=\"last-error\"").expect("the last-error element");
        assert!(
            last_error.contains(" hidden"),
            "a reload error shown: {last_error}"
        );
        if demo_status != 200 {
            let (_, demo) = start_tag(dom, "id=\"demo\"").expect("the demo panel");
            assert!(
                demo.contains(" hidden"),
                "demo panel shown without /demo: {demo}"
            );
        }

        let png = std::fs::metadata(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(png.len() > 0, "empty screenshot {}", shot.display());
    })
    .await;
}

/// Where the failover test's screenshot goes: the README's `docs/dashboard.png` when
/// `BASCULE_UPDATE_SCREENSHOT=1`, else `$CARGO_TARGET_TMPDIR` (a tracked file is not rewritten
/// by every run).
fn failover_screenshot() -> PathBuf {
    if std::env::var_os("BASCULE_UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png")
    }
}

/// The `data-total` (requests in the chart's window) of series `key` within `part`.
fn series_total(part: &str, key: &str) -> f64 {
    start_tag(part, &format!("data-series=\"{key}\""))
        .and_then(|(_, tag)| attr(tag, "data-total"))
        .unwrap_or_else(|| panic!("no series {key}:\n{part}"))
        .parse()
        .expect("a number")
}

/// The part of the DOM from the element with `id` to the end of the document.
fn from_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let (at, _) = start_tag(dom, &format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
    &dom[at..]
}

#[tokio::test]
async fn the_dashboard_shows_traffic_moving_to_the_next_tier_with_the_change_marked() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let primary = FakeUpstream::switchable("primary-cdn", "/healthz").await;
        let secondary = FakeUpstream::switchable("secondary-cdn", "/healthz").await;
        let origin = FakeUpstream::switchable("origin", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(FAST_HEALTH)
            .upstream_at("primary-cdn", &primary.address(), "")
            .upstream_at("secondary-cdn", &secondary.address(), "")
            .upstream_at("origin", &origin.address(), "")
            .route(
                "www",
                &["www.example.com"],
                "/",
                r#"["primary-cdn", "secondary-cdn", "origin"]"#,
            )
            .start()
            .await;
        // Steady traffic from start to end: about 60 requests a second.
        let addr = proxy.addr;
        let traffic = tokio::spawn(async move {
            loop {
                let _answer = get(addr, "www.example.com", "/page").await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        primary.set(Mode::Refuse).await;
        proxy
            .wait_status(Duration::from_secs(5), "www on tier 1", |s| {
                s["routes"][0]["active_tier"] == 1
            })
            .await;
        tokio::time::sleep(Duration::from_secs(8)).await;
        let dir = TempDir::new();
        let shot = failover_screenshot();
        let _stale = std::fs::remove_file(&shot);
        let dom = browser
            .load(format!("http://{}/", proxy.admin), dir.path(), &shot)
            .await;
        traffic.abort();
        let dom = dom.as_str();

        let (_, body_tag) = start_tag(dom, "<body").expect("a body");
        assert_eq!(
            attr(body_tag, "data-ready"),
            Some("1"),
            "never rendered:\n{dom}"
        );
        let www = route_part(dom, "www");
        let (_, route_tag) = start_tag(www, "data-route=\"www\"").expect("route tag");
        assert_eq!(attr(route_tag, "data-active-tier"), Some("1"), "{www}");

        // Every upstream's traffic: the primary answered, then failed, then the secondary took
        // over; the change of tier is marked on the chart.
        let answered = from_id(dom, "chart-ok");
        let failed = from_id(dom, "chart-failed");
        assert!(
            series_total(answered, "ok:primary-cdn") > 100.0,
            "{answered}"
        );
        assert!(
            series_total(answered, "ok:secondary-cdn") > 100.0,
            "{answered}"
        );
        assert!(series_total(failed, "failed:primary-cdn") > 0.0, "{failed}");
        assert_eq!(series_total(answered, "ok:origin"), 0.0, "{answered}");
        let (_, marker) = start_tag(answered, "class=\"marker\"")
            .unwrap_or_else(|| panic!("no marker:\n{answered}"));
        assert_eq!(attr(marker, "data-subject"), Some("www"), "{marker}");
        assert_eq!(
            (attr(marker, "data-from"), attr(marker, "data-to")),
            (Some("0"), Some("1")),
            "{marker}"
        );
        assert!(answered[..answered.find("</svg>").unwrap_or(0)].contains("www → tier 1"));
        // The route's own chart: its requests by the upstream that answered, and the marker.
        assert!(series_total(www, "answered:secondary-cdn") > 100.0, "{www}");
        assert!(start_tag(www, "class=\"marker\"").is_some(), "{www}");

        // The upstreams in tier order, with their role, rates and latency.
        let row = |name: &str| {
            start_tag(dom, &format!("data-upstream=\"{name}\""))
                .unwrap_or_else(|| panic!("no row {name}:\n{dom}"))
                .0
        };
        assert!(row("primary-cdn") < row("secondary-cdn") && row("secondary-cdn") < row("origin"));
        let upstreams = from_id(dom, "upstreams");
        for role in ["tier 0 · primary", "tier 1 · secondary", "tier 2 · origin"] {
            assert!(upstreams.contains(role), "no {role:?}:\n{upstreams}");
        }
        let secondary_row = &dom[row("secondary-cdn")..row("origin")];
        let (_, p50) = start_tag(secondary_row, "data-col=\"p50\"").expect("a p50 cell");
        let p50_text = &secondary_row[secondary_row.find(p50).unwrap_or(0) + p50.len()..];
        assert!(
            p50_text
                .split('<')
                .next()
                .is_some_and(|t| t.ends_with(" ms")),
            "{secondary_row}"
        );
        assert_eq!(upstream_state(dom, "secondary-cdn"), "healthy");
        assert_eq!(upstream_state(dom, "origin"), "healthy");

        let png = std::fs::metadata(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
        assert!(png.len() > 0, "empty screenshot {}", shot.display());
    })
    .await;
}

#[tokio::test]
async fn the_page_needs_no_token_but_the_api_does_and_the_page_asks_for_it() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("token = \"s3cret\"")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        let page = support::admin_get(proxy.admin, "/").await;
        assert_eq!(page.status, 200);
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{:?}",
            page.headers
        );
        assert!(
            page.header("content-security-policy")
                .contains("default-src 'none'"),
            "{:?}",
            page.headers
        );
        assert!(page.text().contains("id=\"events\""));
        assert_eq!(support::admin_get(proxy.admin, "/status").await.status, 401);

        // In a browser, the page asks for the token instead of showing data.
        let dir = TempDir::new();
        let shot = dir.path().join("login.png");
        let dom = browser
            .load(format!("http://{}/", proxy.admin), dir.path(), &shot)
            .await;
        let (_, login) = start_tag(&dom, "id=\"login-panel\"").expect("the token form");
        assert!(!login.contains(" hidden"), "token form hidden:\n{dom}");
        let (_, body_tag) = start_tag(&dom, "<body").expect("a body");
        assert_eq!(attr(body_tag, "data-ready"), None, "{dom}");
    })
    .await;
}

#[tokio::test]
async fn a_page_from_elsewhere_cannot_drive_the_admin_api_through_the_browser() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        // A page from outside (here a local file: `Origin: null`) auto-submitting a text/plain
        // form whose body reads as JSON (`{"reason": "pwned="}`), the classic way to forge a
        // JSON POST without CORS.
        let dir = TempDir::new();
        let attack = dir.write(
            "attack.html",
            &format!(
                "<!doctype html><html><body>\
                 <form method=\"POST\" enctype=\"text/plain\" \
                 action=\"http://{}/upstreams/origin/drain\">\
                 <input name='{{\"reason\": \"pwned' value='\"}}'></form>\
                 <script>document.forms[0].submit()</script></body></html>",
                proxy.admin
            ),
        );
        let dom = browser
            .load(
                format!("file://{}", attack.display()),
                dir.path(),
                &dir.path().join("attack.png"),
            )
            .await;
        assert!(dom.contains("cross-origin request refused"), "{dom}");
        assert_eq!(proxy.upstream_status("origin").await["state"], "healthy");
    })
    .await;
}

#[tokio::test]
async fn a_rebound_name_gets_no_dashboard_and_no_data() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        // DNS rebinding: the attacker's name now resolves to the admin API's address, which
        // makes its page same-origin with whatever answers there.
        let dir = TempDir::new();
        let dom = browser
            .load_with(
                format!("http://rebound.example:{}/", proxy.admin.port()),
                dir.path(),
                &dir.path().join("rebound.png"),
                &["--host-resolver-rules=MAP rebound.example 127.0.0.1"],
            )
            .await;
        assert!(dom.contains("is not a name of this admin API"), "{dom}");
        assert!(!dom.contains("id=\"events\""), "{dom}");
    })
    .await;
}

#[tokio::test]
async fn an_origin_failing_behind_healthy_cdns_is_shown_as_the_origins_outage() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let cdn = FakeUpstream::switchable("cdn", "/healthz").await;
        let origin = FakeUpstream::switchable("origin", "/healthz").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(FAST_HEALTH)
            .upstream_at("cdn", &cdn.address(), "role = \"cdn\"")
            .upstream_at("origin", &origin.address(), "")
            .route("www", &["www.example.com"], "/", r#"["cdn", "origin"]"#)
            .start()
            .await;
        // The origin fails; the CDN passes its 503 on, health page included.
        origin.set(Mode::Status(503)).await;
        cdn.set(Mode::Status(503)).await;
        proxy
            .wait_status(Duration::from_secs(5), "origin failing", |s| {
                s["routes"][0]["origin_failing"] == true
            })
            .await;
        let dir = TempDir::new();
        let shot = dir.path().join("origin-failing.png");
        let dom = browser
            .load(format!("http://{}/", proxy.admin), dir.path(), &shot)
            .await;
        let www = route_part(&dom, "www");
        assert!(www.contains("data-origin=\"failing\""), "{www}");
        let (_, route_tag) = start_tag(www, "data-route=\"www\"").expect("route tag");
        assert_eq!(attr(route_tag, "data-active-tier"), Some("0"), "{www}");
        assert_eq!(
            upstream_state(&dom, "cdn"),
            "healthy",
            "the CDN is not blamed"
        );
    })
    .await;
}

#[tokio::test]
async fn each_route_shows_its_warm_standby_share_and_the_next_failback_delay() {
    let Some(browser) = Browser::find() else {
        return;
    };
    bounded(LIMIT, async {
        let primary = FakeUpstream::ok("primary").await;
        let secondary = FakeUpstream::ok("secondary").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults(FAST_HEALTH)
            .upstream_at("primary", &primary.address(), "role = \"cdn\"")
            .upstream_at("secondary", &secondary.address(), "role = \"cdn\"")
            .route_with(
                "www",
                &["www.example.com"],
                "/",
                r#"["primary", "secondary"]"#,
                "standby_share = 0.02\nfailback_delay = \"2s\"",
            )
            .route("api", &["api.example.com"], "/", r#"["primary"]"#)
            .start()
            .await;
        let dir = TempDir::new();
        let shot = dir.path().join("standby.png");
        let dom = browser
            .load(format!("http://{}/", proxy.admin), dir.path(), &shot)
            .await;
        let www = route_part(&dom, "www");
        assert!(www.contains("data-standby=\"0.02\""), "{www}");
        assert!(www.contains("STANDBY 2 %"), "{www}");
        assert!(www.contains("data-failback-delay-ms=\"2000\""), "{www}");
        assert!(www.contains("next failback waits 2 s"), "{www}");
        let api = route_part(&dom, "api");
        assert!(api.contains("no warm standby"), "{api}");
    })
    .await;
}
