//! The dashboard (DESIGN §5 `GET /`): the real page, loaded by a real browser (Debian's
//! `chromium`, headless) from a real bascule, must show what `/status` says — the active tier
//! after a failover, upstream states, events — and the page itself must need no token while the
//! API does. The browser's DOM is dumped after a virtual-time budget (the page polls every
//! 2 s) and a screenshot is left at `$CARGO_TARGET_TMPDIR/dashboard.png` for humans.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{bounded, get, tools, FakeUpstream, Mode, ProxyConfig, TempDir};

const LIMIT: Duration = Duration::from_secs(90);
/// How long one headless chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// Fast active checks (as in tests/health.rs), passive ejection off.
const FAST_HEALTH: &str = "connect_timeout = \"500ms\"\nresponse_timeout = \"600ms\"\n\
     [defaults.health]\npath = \"/healthz\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
     rise = 2\nfall = 2\n[defaults.passive]\nconsecutive_failures = 0\n";

/// Headless chromium: `$CHROMIUM`, else `chromium` on `PATH` (Debian's package).
struct Browser(PathBuf);

impl Browser {
    /// The browser; None (the test skips, or fails under `BASCULE_REQUIRE_TOOLS=1`) when it
    /// is missing.
    fn find() -> Option<Browser> {
        let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        if !tools::require(&name, "chromium") {
            return None;
        }
        tools::find(&name).map(Browser)
    }

    /// Loads `url` with a fresh profile under `dir`, lets the page run for 8 s of virtual
    /// time, writes a 1280×1000 screenshot to `screenshot` and returns the DOM as it is then.
    /// Runs on the blocking pool, so the runtime keeps serving the fake upstreams meanwhile.
    async fn load(&self, url: String, dir: &Path, screenshot: &Path) -> String {
        self.load_with(url, dir, screenshot, &[]).await
    }

    /// `load` with extra chromium flags.
    async fn load_with(
        &self,
        url: String,
        dir: &Path,
        screenshot: &Path,
        flags: &[&str],
    ) -> String {
        let (exe, dir, shot) = (self.0.clone(), dir.to_owned(), screenshot.to_owned());
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        tokio::task::spawn_blocking(move || run_chromium(&exe, &url, &dir, &shot, &flags))
            .await
            .expect("browser task")
    }
}

/// One headless chromium run (blocking); killed, by its PID, if it overruns `BROWSER_LIMIT`.
fn run_chromium(exe: &Path, url: &str, dir: &Path, screenshot: &Path, flags: &[String]) -> String {
    let dom_file = dir.join("dom.html");
    let log_file = dir.join("chromium.log");
    let mut child = Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1280,1000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .args(flags)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&dom_file).expect("dom file"))
        .stderr(File::create(&log_file).expect("log file"))
        .spawn()
        .expect("spawn chromium");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if start.elapsed() > BROWSER_LIMIT {
            let _already_gone = child.kill();
            let _reaped = child.wait();
            panic!(
                "chromium did not finish within {BROWSER_LIMIT:?}:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed ({status}):\n{}", log());
    let dom = std::fs::read_to_string(&dom_file).expect("read the dumped DOM");
    assert!(dom.contains("</html>"), "no DOM dumped:\n{dom}\n{}", log());
    dom
}

/// The start tag of the first element in `html` carrying `attr` (e.g. `data-route="www"`),
/// with its offset.
fn start_tag<'a>(html: &'a str, attr: &str) -> Option<(usize, &'a str)> {
    let at = html.find(attr)?;
    let open = html[..at].rfind('<')?;
    let close = at + html[at..].find('>')?;
    Some((open, &html[open..=close]))
}

/// The value of attribute `name` in a start tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

fn has_class(tag: &str, class: &str) -> bool {
    attr(tag, "class").is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

/// The part of the DOM holding route `name`'s container (up to the next route).
fn route_part<'a>(dom: &'a str, name: &str) -> &'a str {
    let (at, tag) = start_tag(dom, &format!("data-route=\"{name}\""))
        .unwrap_or_else(|| panic!("no route {name} in the page:\n{dom}"));
    let rest = &dom[at + tag.len()..];
    let end = rest.find("data-route=\"").unwrap_or(rest.len());
    &dom[at..at + tag.len() + end]
}

fn upstream_state<'a>(dom: &'a str, name: &str) -> &'a str {
    start_tag(dom, &format!("data-upstream=\"{name}\""))
        .and_then(|(_, tag)| attr(tag, "data-state"))
        .unwrap_or_else(|| panic!("no upstream row {name} in the page:\n{dom}"))
}

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
        let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
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
