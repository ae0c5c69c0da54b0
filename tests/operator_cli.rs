//! The operator commands (`bascule drain`, `undrain`, `pin`, `unpin`, `reload`, `status`)
//! against a real bascule's admin API with a token: each override acts and its reason shows in
//! `/status` and in `bascule status`; `reload` prints the new generation, or a refused file's
//! errors; a pin's tier is named by index or by an upstream in it; a missing or
//! wrong token, an unknown name and a tier the route lacks each exit 1 with a message saying
//! what to fix; a usage error exits 2.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::bascule::BIN;
use support::{bounded, served_by, until_served_by, Bascule, FakeUpstream, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "op-s3cret";

/// A proxy over cdn > backup > origin with its admin API behind `TOKEN`.
async fn proxy() -> (Bascule, [FakeUpstream; 3]) {
    let ups = [
        FakeUpstream::ok("cdn").await,
        FakeUpstream::ok("backup").await,
        FakeUpstream::ok("origin").await,
    ];
    let proxy = ProxyConfig::new()
        .admin(&format!("token = \"{TOKEN}\""))
        .defaults(
            "[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n",
        )
        .one_route("www", &[&ups[0], &ups[1], &ups[2]], "")
        .start()
        .await;
    (proxy, ups)
}

/// Runs `bascule ARGS --admin URL` with `$BASCULE_ADMIN_TOKEN` set to `env_token` (or unset).
async fn cli(proxy: &Bascule, args: &[&str], env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--admin")
        .arg(format!("http://{}", proxy.admin))
        .env_remove("BASCULE_ADMIN_TOKEN");
    if let Some(t) = env_token {
        cmd.env("BASCULE_ADMIN_TOKEN", t);
    }
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("cli task")
        .expect("run bascule")
}

/// Asserts `out` exited with `code` and returns (stdout, stderr).
fn exited(out: &Output, code: i32) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

impl Bascule {
    /// `/status` with the token.
    async fn status_with_token(&self) -> serde_json::Value {
        let auth = format!("Bearer {TOKEN}");
        let r = support::admin_request(
            self.admin,
            http::Method::GET,
            "/status",
            &[("authorization", auth.as_str())],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).expect("/status is JSON")
    }
}

#[tokio::test]
async fn drain_and_undrain_act_and_the_reason_shows_in_status() {
    bounded(LIMIT, async {
        let (proxy, _ups) = proxy().await;
        let out = cli(
            &proxy,
            &["drain", "cdn", "--reason", "CDN maintenance"],
            Some(TOKEN),
        )
        .await;
        let (stdout, _) = exited(&out, 0);
        assert_eq!(stdout, "upstream cdn: drained (CDN maintenance)\n");
        assert_eq!(served_by(proxy.addr).await, (200, "backup".into()));
        let up = proxy.upstream_status_with_token("cdn", TOKEN).await;
        assert_eq!(up["state"], "drained");
        assert_eq!(up["drain_reason"], "CDN maintenance");

        let (table, _) = exited(&cli(&proxy, &["status"], Some(TOKEN)).await, 0);
        assert!(table.contains("drained (CDN maintenance)"), "{table}");

        // The token from the flag works as well as from the environment.
        let out = cli(&proxy, &["undrain", "cdn", "--token", TOKEN], None).await;
        let (stdout, _) = exited(&out, 0);
        assert_eq!(stdout, "upstream cdn: healthy\n");
        let up = proxy.upstream_status_with_token("cdn", TOKEN).await;
        assert_eq!(up["state"], "healthy");
        assert_eq!(up["drain_reason"], serde_json::Value::Null);
        until_served_by(proxy.addr, "cdn", Duration::from_secs(2)).await;
        let s = proxy.status_with_token().await;
        let reasons: Vec<_> = s["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["kind"] == "operator")
                    .map(|e| e["reason"].clone())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(reasons[0], "CDN maintenance", "{reasons:?}");
    })
    .await;
}

#[tokio::test]
async fn a_pin_names_its_tier_by_index_or_by_upstream_and_unpin_undoes_it() {
    bounded(LIMIT, async {
        let (proxy, _ups) = proxy().await;
        let out = cli(
            &proxy,
            &["pin", "www", "backup", "--reason", "planned CDN change"],
            Some(TOKEN),
        )
        .await;
        let (stdout, _) = exited(&out, 0);
        assert_eq!(stdout, "route www: pinned to tier 1 (backup)\n");
        until_served_by(proxy.addr, "backup", Duration::from_secs(2)).await;
        let route = &proxy.status_with_token().await["routes"][0];
        assert_eq!(route["pinned"]["tier"], 1);
        assert_eq!(route["pinned"]["reason"], "planned CDN change");
        assert_eq!(route["active_tier"], 1);
        let (table, _) = exited(&cli(&proxy, &["status"], Some(TOKEN)).await, 0);
        assert!(table.contains("tier 1 (planned CDN change)"), "{table}");

        let (stdout, _) = exited(&cli(&proxy, &["pin", "www", "2"], Some(TOKEN)).await, 0);
        assert_eq!(stdout, "route www: pinned to tier 2 (origin)\n");
        let (stdout, _) = exited(&cli(&proxy, &["unpin", "www"], Some(TOKEN)).await, 0);
        assert_eq!(stdout, "route www: unpinned\n");
        until_served_by(proxy.addr, "cdn", Duration::from_secs(2)).await;
        let (stdout, _) = exited(&cli(&proxy, &["unpin", "www"], Some(TOKEN)).await, 0);
        assert_eq!(stdout, "route www: was not pinned\n");
    })
    .await;
}

#[tokio::test]
async fn errors_say_what_to_fix_and_exit_1_usage_errors_exit_2() {
    bounded(LIMIT, async {
        let (proxy, _ups) = proxy().await;
        let (_, err) = exited(&cli(&proxy, &["drain", "cdn"], None).await, 1);
        assert!(
            err.starts_with("bascule drain: ")
                && err.contains("401: the admin API needs its token (--token or BASCULE_ADMIN_TOKEN)"),
            "{err}"
        );
        let (_, err) = exited(&cli(&proxy, &["drain", "cdn"], Some("wrong")).await, 1);
        assert!(err.contains("401: the admin API refused this token"), "{err}");
        assert_eq!(
            proxy.upstream_status_with_token("cdn", TOKEN).await["state"],
            "healthy",
            "nothing changed"
        );

        let (_, err) = exited(&cli(&proxy, &["drain", "akamai"], Some(TOKEN)).await, 1);
        assert!(
            err.contains("404: no upstream named \"akamai\"; upstreams: backup, cdn, origin"),
            "{err}"
        );
        let (_, err) = exited(&cli(&proxy, &["unpin", "api"], Some(TOKEN)).await, 1);
        assert!(
            err.contains("404: no route named \"api\"; routes: www"),
            "{err}"
        );
        let (_, err) = exited(&cli(&proxy, &["pin", "www", "3"], Some(TOKEN)).await, 1);
        assert_eq!(
            err,
            "bascule pin: route \"www\" has no tier \"3\"; its tiers: 0 (cdn), 1 (backup), 2 (origin)\n"
        );
        let (_, err) = exited(&cli(&proxy, &["pin", "api", "0"], Some(TOKEN)).await, 1);
        assert_eq!(err, "bascule pin: no route named \"api\"; routes: www\n");

        // Usage errors (a missing TIER) are clap's: exit 2, nothing sent.
        let (_, err) = exited(&cli(&proxy, &["pin", "www"], Some(TOKEN)).await, 2);
        assert!(err.contains("<TIER>"), "{err}");
        assert_eq!(
            proxy.status_with_token().await["routes"][0]["pinned"],
            serde_json::Value::Null
        );
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_admin_api_is_said_so() {
    bounded(LIMIT, async {
        let nothing = FakeUpstream::refuse("nothing").await;
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["undrain", "cdn", "--admin", &nothing.address()])
                .env_remove("BASCULE_ADMIN_TOKEN")
                .output()
        })
        .await
        .expect("cli task")
        .expect("run bascule");
        let (_, err) = exited(&out, 1);
        assert!(
            err.starts_with("bascule undrain: ") && err.contains("is bascule running"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn reload_applies_a_good_file_and_prints_a_bad_one_s_errors() {
    bounded(LIMIT, async {
        let (proxy, _ups) = proxy().await;
        let (stdout, _) = exited(&cli(&proxy, &["reload"], Some(TOKEN)).await, 0);
        assert_eq!(stdout, "reloaded: generation 2\n");
        let good = std::fs::read_to_string(proxy.config_path()).expect("config");
        let bad = good.replace("tiers = [\"cdn\"", "tiers = [\"akamai\"");
        assert_ne!(good, bad);
        std::fs::write(proxy.config_path(), &bad).expect("write the bad config");
        let (_, err) = exited(&cli(&proxy, &["reload"], Some(TOKEN)).await, 1);
        assert!(
            err.starts_with(
                "bascule reload: the config file was refused; the running config is kept:\n"
            ) && err.contains("tier \"akamai\" is not a defined upstream"),
            "{err}"
        );
        let s = proxy.status_with_token().await;
        assert_eq!(s["config"]["generation"], 2);
        assert_eq!(served_by(proxy.addr).await, (200, "cdn".into()));
    })
    .await;
}
