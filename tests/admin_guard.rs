//! The admin API refuses browsers it did not serve (DESIGN §7.6): state-changing requests
//! only as `application/json` (415), no foreign `Origin` or cross-site `Sec-Fetch-Site`
//! (403), no `Host` naming a domain other than `localhost` or one in `[admin] hosts` (421,
//! DNS rebinding), and a dashboard page that cannot be framed. Scripts and curl, which send
//! no `Origin`, keep working with `Content-Type: application/json`.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use http::Method;
use support::bascule::BIN;
use support::{
    admin_get, admin_request, bounded, request, Bascule, FakeUpstream, ProxyConfig, TempDir,
    TEST_LIMIT,
};

const JSON: (&str, &str) = ("content-type", "application/json");

/// A bascule with its admin API (no token, as on loopback by default) and `[admin]` `lines`,
/// in front of one healthy upstream `origin`, which it has seen healthy.
async fn start(origin: &FakeUpstream, lines: &str) -> Bascule {
    let proxy = ProxyConfig::new()
        .admin(lines)
        .one_route("www", &[origin], "")
        .start()
        .await;
    proxy
        .wait_status(Duration::from_secs(5), "origin healthy", |s| {
            s["upstreams"][0]["state"] == "healthy"
        })
        .await;
    proxy
}

/// `POST /upstreams/origin/drain` with `headers` and `body`: the status and the error text.
async fn drain(proxy: &Bascule, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let r = admin_request(
        proxy.admin,
        Method::POST,
        "/upstreams/origin/drain",
        headers,
        body.to_owned(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    (
        r.status.as_u16(),
        v["error"].as_str().unwrap_or("").to_owned(),
    )
}

async fn origin_state(proxy: &Bascule) -> String {
    proxy.upstream_status("origin").await["state"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// `GET /status` with `Host: host`: the status.
async fn status_under(addr: SocketAddr, host: &str) -> u16 {
    request(addr, Method::GET, host, "/status", &[], "")
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn a_form_post_is_refused_and_the_upstream_stays_healthy() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        for form in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            let (code, error) = drain(&proxy, &[("content-type", form)], "").await;
            assert_eq!(code, 415, "{form}: {error}");
            assert!(
                error.contains("Content-Type: application/json"),
                "{form}: {error}"
            );
        }
        let (code, _) = drain(&proxy, &[], "").await;
        assert_eq!(code, 415, "no content type");
        assert_eq!(origin_state(&proxy).await, "healthy");
    })
    .await;
}

#[tokio::test]
async fn a_text_plain_post_carrying_json_is_refused() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        let forged = r#"{"reason": "a page on another site"}"#;
        let (code, _) = drain(&proxy, &[("content-type", "text/plain")], forged).await;
        assert_eq!(code, 415);
        let r = admin_request(
            proxy.admin,
            Method::POST,
            "/reload",
            &[("content-type", "text/plain;charset=UTF-8")],
            "{}",
        )
        .await;
        assert_eq!(r.status, 415);
        assert_eq!(proxy.status().await["config"]["generation"], 1);
        assert_eq!(origin_state(&proxy).await, "healthy");
    })
    .await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_as_json_and_the_own_origin_is_not() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        for foreign in ["http://evil.example", "null", "https://127.0.0.1"] {
            let (code, error) = drain(&proxy, &[JSON, ("origin", foreign)], "{}").await;
            assert_eq!(code, 403, "Origin: {foreign}: {error}");
        }
        assert_eq!(origin_state(&proxy).await, "healthy");
        // The dashboard's own POSTs: Origin is the admin API's address, as the browser sees it.
        let own = format!("http://{}", proxy.admin);
        let (code, error) = drain(&proxy, &[JSON, ("origin", own.as_str())], "{}").await;
        assert_eq!(code, 200, "{error}");
        assert_eq!(origin_state(&proxy).await, "drained");
    })
    .await;
}

#[tokio::test]
async fn a_cross_site_fetch_is_refused() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        // An <img> or no-cors fetch from another site reads nothing but still sends this.
        let r = admin_request(
            proxy.admin,
            Method::GET,
            "/status",
            &[("sec-fetch-site", "cross-site")],
            "",
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text());
        for site in ["cross-site", "same-site"] {
            let (code, _) = drain(&proxy, &[JSON, ("sec-fetch-site", site)], "").await;
            assert_eq!(code, 403, "Sec-Fetch-Site: {site}");
        }
        assert_eq!(origin_state(&proxy).await, "healthy");
        let (code, error) = drain(&proxy, &[JSON, ("sec-fetch-site", "same-origin")], "").await;
        assert_eq!(code, 200, "{error}");
    })
    .await;
}

#[tokio::test]
async fn a_rebound_host_is_refused_while_ip_addresses_and_localhost_are_accepted() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        let (admin, port) = (proxy.admin, proxy.admin.port());
        for host in ["evil.example".to_owned(), format!("evil.example:{port}")] {
            let r = request(admin, Method::GET, &host, "/status", &[], "").await;
            assert_eq!(r.status, 421, "Host: {host}");
            assert!(r.text().contains("[admin] hosts"), "{}", r.text());
        }
        let page = request(admin, Method::GET, "evil.example", "/", &[], "").await;
        assert_eq!(page.status, 421, "the dashboard page too");
        for host in [
            format!("localhost:{port}"),
            format!("LocalHost.:{port}"),
            format!("127.0.0.1:{port}"),
        ] {
            assert_eq!(status_under(admin, &host).await, 200, "Host: {host}");
        }
        let r = support::raw_exchange(admin, b"GET /status HTTP/1.1\r\n\r\n").await;
        assert_eq!(r.status, 400, "HTTP/1.1 without Host");
    })
    .await;
}

#[tokio::test]
async fn a_name_listed_in_admin_hosts_is_accepted() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, r#"hosts = ["bascule-admin.internal"]"#).await;
        let port = proxy.admin.port();
        for host in [
            format!("bascule-admin.internal:{port}"),
            "BASCULE-Admin.Internal".to_owned(),
        ] {
            assert_eq!(status_under(proxy.admin, &host).await, 200, "Host: {host}");
        }
        assert_eq!(
            status_under(proxy.admin, &format!("other.internal:{port}")).await,
            421
        );
        // Its page POSTs from its own origin under that name.
        let host = format!("bascule-admin.internal:{port}");
        let own = format!("http://{host}");
        let r = request(
            proxy.admin,
            Method::POST,
            &host,
            "/upstreams/origin/drain",
            &[JSON, ("origin", own.as_str())],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    })
    .await;
}

#[tokio::test]
async fn the_dashboard_page_cannot_be_framed() {
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        let page = admin_get(proxy.admin, "/").await;
        assert_eq!(page.status, 200);
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert!(
            page.header("content-security-policy")
                .contains("frame-ancestors 'none'"),
            "{:?}",
            page.headers
        );
        // Opened from a link on another site: a navigation, not a request for data.
        let linked = admin_request(
            proxy.admin,
            Method::GET,
            "/",
            &[("sec-fetch-site", "cross-site")],
            "",
        )
        .await;
        assert_eq!(linked.status, 200);
        let status = admin_get(proxy.admin, "/status").await;
        assert_eq!(status.header("x-content-type-options"), "nosniff");
    })
    .await;
}

/// Runs curl off the test's runtime.
async fn curl(args: Vec<String>) -> String {
    let out = tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output())
        .await
        .expect("curl thread")
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_script_posting_json_works_and_curls_default_form_type_does_not() {
    if !support::tools::require("curl", "curl") {
        return;
    }
    bounded(TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = start(&origin, "").await;
        let url = format!("http://{}/upstreams/origin/drain", proxy.admin);
        let code = |extra: &[&str]| {
            let mut args: Vec<String> = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-XPOST"]
                .iter()
                .chain(extra)
                .map(|s| (*s).to_owned())
                .collect();
            args.push(url.clone());
            args.extend([
                "-d".to_owned(),
                r#"{"reason":"CDN maintenance"}"#.to_owned(),
            ]);
            curl(args)
        };
        // `curl -d` alone sends application/x-www-form-urlencoded, as a form would.
        assert_eq!(code(&[]).await, "415");
        assert_eq!(origin_state(&proxy).await, "healthy");
        assert_eq!(code(&["-H", "Content-Type: application/json"]).await, "200");
        assert_eq!(origin_state(&proxy).await, "drained");
        // An empty body is fine as JSON.
        let r = admin_request(
            proxy.admin,
            Method::POST,
            "/upstreams/origin/undrain",
            &[JSON],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(origin_state(&proxy).await, "healthy");
    })
    .await;
}

#[tokio::test]
async fn check_reports_an_invalid_admin_hosts_entry_at_its_position() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        let config = "[listen]\nhttp = [\"127.0.0.1:1\"]\n\n\
                      [admin]\nhosts = [\"admin.internal\", \"admin.internal:9901\"]\n\n\
                      [upstreams.origin]\naddress = \"http://127.0.0.1:9\"\n\n\
                      [[routes]]\nname = \"all\"\nhosts = [\"*\"]\ntiers = [\"origin\"]\n";
        let path = dir.write("bascule.toml", config);
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .arg("check")
                .arg("-c")
                .arg(&path)
                .env_remove("BASCULE_CONFIG")
                .output()
        })
        .await
        .expect("check thread")
        .expect("run bascule check");
        assert_eq!(out.status.code(), Some(1));
        let at = config.find("\"admin.internal:9901\"").expect("value");
        let before = &config[..at];
        let line = before.matches('\n').count() + 1;
        let col = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!(
            "{}:{line}:{col}: admin.hosts: invalid host name \"admin.internal:9901\"",
            dir.path().join("bascule.toml").display()
        );
        assert!(
            stderr.starts_with(&expected),
            "{stderr}\nwanted: {expected}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    })
    .await;
}
