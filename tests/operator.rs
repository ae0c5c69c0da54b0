//! Operator overrides through the admin API (DESIGN §5): drain/undrain an upstream, pin/unpin a
//! route to a tier, with reasons kept in events; 404 for unknown names, 422 for a tier that does
//! not exist; the bearer-token rule; and overrides that survive a reload while their upstream
//! or route exists.

mod support;

use std::time::Duration;

use support::{bounded, served_by, Bascule, FakeUpstream, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(30);

fn config(cdn: &FakeUpstream, backup: &FakeUpstream, origin: &FakeUpstream) -> ProxyConfig {
    ProxyConfig::new()
        .admin("")
        .defaults(
            "[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n",
        )
        .one_route("www", &[cdn, backup, origin], "")
}

/// The three healthy upstreams `config` routes to: cdn, backup, origin.
async fn three_upstreams() -> (FakeUpstream, FakeUpstream, FakeUpstream) {
    (
        FakeUpstream::ok("cdn").await,
        FakeUpstream::ok("backup").await,
        FakeUpstream::ok("origin").await,
    )
}

async fn active(proxy: &Bascule) -> serde_json::Value {
    proxy.route_status("www").await["active_tier"].clone()
}

#[tokio::test]
async fn drain_and_undrain_act_at_once_and_keep_the_reason() {
    bounded(LIMIT, async {
        let (cdn, backup, origin) = three_upstreams().await;
        let proxy = config(&cdn, &backup, &origin).start().await;
        assert_eq!(served_by(proxy.addr).await, (200, "cdn".into()));
        let (code, body) = proxy
            .admin_post("/upstreams/cdn/drain", r#"{"reason": "CDN maintenance"}"#)
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["state"], "drained");
        proxy
            .wait_status(Duration::from_secs(2), "failed over", |s| {
                s["routes"][0]["active_tier"] == 1
            })
            .await;
        assert_eq!(served_by(proxy.addr).await, (200, "backup".into()));
        assert_eq!(proxy.upstream_status("cdn").await["state"], "drained");
        let (code, _) = proxy.admin_post("/upstreams/cdn/undrain", "").await;
        assert_eq!(code, 200);
        // Undrain acts at once: the tier is not held back by failback_delay (10 s here).
        proxy
            .wait_status(Duration::from_secs(2), "undrained", |s| {
                s["upstreams"][1]["state"] == "healthy" && s["routes"][0]["active_tier"] == 0
            })
            .await;
        assert_eq!(served_by(proxy.addr).await, (200, "cdn".into()));
        let s = proxy.status().await;
        let ops: Vec<_> = s["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["kind"] == "operator")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(ops.len(), 2, "{ops:?}");
        assert_eq!(ops[0]["subject"], "cdn");
        assert_eq!(ops[0]["reason"], "CDN maintenance");
        assert_eq!(ops[0]["to"], "drained");
        assert_eq!(ops[1]["to"], "undrained");
    })
    .await;
}

#[tokio::test]
async fn a_pin_moves_the_route_at_once_and_unpin_brings_it_back_at_once() {
    bounded(LIMIT, async {
        let (cdn, backup, origin) = three_upstreams().await;
        let proxy = config(&cdn, &backup, &origin).start().await;
        let (code, body) = proxy
            .admin_post(
                "/routes/www/pin",
                r#"{"tier": 2, "reason": "CDN contract ends"}"#,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        proxy
            .wait_status(Duration::from_secs(2), "pinned", |s| {
                s["routes"][0]["active_tier"] == 2
            })
            .await;
        assert_eq!(served_by(proxy.addr).await, (200, "origin".into()));
        let r = proxy.route_status("www").await;
        assert_eq!(r["pinned"]["tier"], 2);
        assert_eq!(r["pinned"]["reason"], "CDN contract ends");
        let (code, _) = proxy.admin_post("/routes/www/unpin", "{}").await;
        assert_eq!(code, 200);
        proxy
            .wait_status(Duration::from_secs(2), "unpinned", |s| {
                s["routes"][0]["active_tier"] == 0
            })
            .await;
        assert!(proxy.route_status("www").await["pinned"].is_null());
        assert_eq!(served_by(proxy.addr).await, (200, "cdn".into()));
    })
    .await;
}

#[tokio::test]
async fn a_pinned_tier_with_nothing_usable_is_ignored() {
    bounded(LIMIT, async {
        let (cdn, backup, origin) = three_upstreams().await;
        let proxy = config(&cdn, &backup, &origin).start().await;
        proxy.admin_post("/routes/www/pin", r#"{"tier": 1}"#).await;
        proxy.admin_post("/upstreams/backup/drain", "").await;
        proxy
            .wait_status(Duration::from_secs(2), "pin ignored", |s| {
                s["routes"][0]["active_tier"] == 0
            })
            .await;
        assert_eq!(served_by(proxy.addr).await, (200, "cdn".into()));
        assert_eq!(proxy.route_status("www").await["pinned"]["tier"], 1, "kept");
    })
    .await;
}

#[tokio::test]
async fn unknown_names_are_404_and_a_missing_tier_is_422() {
    bounded(LIMIT, async {
        let (cdn, backup, origin) = three_upstreams().await;
        let proxy = config(&cdn, &backup, &origin).start().await;
        assert_eq!(proxy.admin_post("/upstreams/nope/drain", "").await.0, 404);
        assert_eq!(
            proxy
                .admin_post("/routes/nope/pin", r#"{"tier": 0}"#)
                .await
                .0,
            404
        );
        assert_eq!(proxy.admin_post("/routes/nope/unpin", "").await.0, 404);
        let (code, body) = proxy.admin_post("/routes/www/pin", r#"{"tier": 3}"#).await;
        assert_eq!(code, 422, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or("")
                .contains("tiers 0 to 2"),
            "{body}"
        );
        assert_eq!(
            proxy
                .admin_post("/routes/www/pin", r#"{"tier": -1}"#)
                .await
                .0,
            422
        );
        assert_eq!(proxy.admin_post("/routes/www/pin", "").await.0, 422);
        assert_eq!(proxy.admin_post("/routes/www/pin", "not json").await.0, 400);
        assert_eq!(proxy.admin_post("/nothing/here", "").await.0, 404);
        assert!(proxy.route_status("www").await["pinned"].is_null());
    })
    .await;
}

#[tokio::test]
async fn with_a_token_every_admin_request_must_carry_it() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("token = \"s3cret\"")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        let r = support::admin_get(proxy.admin, "/status").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), "Bearer");
        assert_eq!(proxy.admin_post("/upstreams/origin/drain", "").await.0, 401);
        let r = support::admin_request(
            proxy.admin,
            http::Method::GET,
            "/status",
            &[("authorization", "Bearer wrong")],
            "",
        )
        .await;
        assert_eq!(r.status, 401);
        let r = support::admin_request(
            proxy.admin,
            http::Method::GET,
            "/status",
            &[("authorization", "Bearer s3cret")],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            proxy.upstream_status_with_token("origin", "s3cret").await["state"],
            "healthy"
        );
        // Every endpoint but the dashboard's page.
        assert_eq!(
            support::admin_get(proxy.admin, "/metrics").await.status,
            401
        );
        assert_eq!(proxy.admin_post("/reload", "").await.0, 401);
        assert_eq!(
            proxy
                .admin_post("/routes/all/pin", r#"{"tier": 0}"#)
                .await
                .0,
            401
        );
        assert_eq!(support::admin_get(proxy.admin, "/").await.status, 200);
        for (method, path) in [
            (http::Method::GET, "/metrics"),
            (http::Method::POST, "/reload"),
        ] {
            let r = support::admin_request(
                proxy.admin,
                method,
                path,
                &[
                    ("authorization", "Bearer s3cret"),
                    ("content-type", "application/json"),
                ],
                "",
            )
            .await;
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
    })
    .await;
}

#[tokio::test]
async fn overrides_survive_a_reload_while_their_upstream_or_route_exists() {
    bounded(LIMIT, async {
        let (cdn, backup, origin) = three_upstreams().await;
        let base = config(&cdn, &backup, &origin);
        let proxy = base.clone().start().await;
        proxy.admin_post("/upstreams/backup/drain", r#"{"reason": "r1"}"#).await;
        proxy.admin_post("/routes/www/pin", r#"{"tier": 2, "reason": "r2"}"#).await;
        // An unrelated change (a new route), then one that changes the drained upstream itself.
        let other = FakeUpstream::ok("other").await;
        let cdn2 = FakeUpstream::ok("cdn2").await;
        let changed = ProxyConfig::new()
            .admin("")
            .defaults("[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n")
            .upstream("cdn", &cdn2)
            .upstream_with("backup", &backup, "host = \"backup.example\"")
            .upstream("origin", &origin)
            .upstream("other", &other)
            .route("www", &["*"], "/", r#"["cdn", "backup", "origin"]"#)
            .route("api", &["api.example.com"], "/", r#"["other"]"#);
        // The in-place write and SIGHUP may each reload (SIGHUP always applies): wait for
        // either, not for one generation number.
        proxy.rewrite(&changed);
        proxy.hup();
        proxy
            .wait_status(Duration::from_secs(3), "reloaded", |s| {
                s["config"]["generation"].as_u64() >= Some(2)
            })
            .await;
        let s = proxy.status().await;
        let generation = s["config"]["generation"].as_u64().unwrap_or(0);
        let backup_st = s["upstreams"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["name"] == "backup"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(backup_st["state"], "drained", "{s:#}");
        assert_eq!(s["routes"][0]["pinned"]["tier"], 2);
        assert_eq!(s["routes"][0]["pinned"]["reason"], "r2");
        assert_eq!(served_by(proxy.addr).await, (200, "origin".into()));
        // A route that disappears takes its pin with it.
        proxy.rewrite(&base);
        proxy.hup();
        proxy
            .wait_status(Duration::from_secs(3), "reloaded again", |s| {
                s["config"]["generation"].as_u64() > Some(generation)
            })
            .await;
        assert_eq!(active(&proxy).await, 2, "www keeps its pin");
        assert_eq!(cdn.hits(), 0);
    })
    .await;
}
