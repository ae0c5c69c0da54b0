//! Reload identity (DESIGN §7.5): a reload that only retunes an upstream keeps its health,
//! ejection and pool and applies the new settings in place; `ca_file` is part of the config
//! like a certificate — checked by `bascule check`, fingerprinted and watched.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::tls::{HttpsUpstream, TestCa};
use support::{bounded, get, FakeUpstream, Mode, ProxyConfig, TempDir};

const LIMIT: Duration = Duration::from_secs(40);

fn cdn_config(
    cdn: &FakeUpstream,
    origin: &FakeUpstream,
    interval: &str,
    ejection: &str,
) -> ProxyConfig {
    ProxyConfig::new()
        .admin("")
        .defaults(&format!(
            "[defaults.health]\ninterval = \"{interval}\"\nfall = 1\nrise = 2\n\
             [defaults.passive]\nconsecutive_failures = 3\nejection = \"{ejection}\""
        ))
        .one_route("www", &[cdn, origin], "failback_delay = \"1s\"")
}

fn probe_times(status: &serde_json::Value) -> Option<String> {
    status["upstreams"][0]["last_check"]["at"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn an_unhealthy_upstream_stays_unhealthy_across_a_reload_that_retunes_it() {
    bounded(LIMIT, async {
        let cdn = FakeUpstream::switchable("cdn", "/healthz").await;
        let origin = FakeUpstream::ok("origin").await;
        cdn.set(Mode::Status(503)).await;
        let proxy = cdn_config(&cdn, &origin, "100ms", "10s").start().await;
        proxy
            .wait_status(Duration::from_secs(3), "cdn unhealthy", |s| {
                s["upstreams"][0]["state"] == "unhealthy" && s["routes"][0]["active_tier"] == 1
            })
            .await;
        // Mid-incident, the operator slows the probes and lengthens ejections.
        proxy.replace(&cdn_config(&cdn, &origin, "1500ms", "30s"));
        proxy
            .wait_status(Duration::from_secs(3), "reloaded", |s| {
                s["config"]["generation"] == 2
            })
            .await;
        let s = proxy.status().await;
        assert_eq!(s["upstreams"][0]["state"], "unhealthy", "{s:#}");
        assert_eq!(
            s["routes"][0]["active_tier"], 1,
            "readers stay off the failing CDN"
        );
        let reload = s["events"]
            .as_array()
            .and_then(|e| e.iter().rev().find(|e| e["kind"] == "reload"))
            .cloned()
            .unwrap_or_default();
        assert!(
            reload["reason"]
                .as_str()
                .unwrap_or("")
                .contains("retuned in place cdn"),
            "{reload}"
        );
        // The new interval is used from the next probe on: about 1.5 s apart, not 100 ms
        // (the probe already scheduled may still come at the old pace).
        let mut seen: Vec<(Option<String>, Instant)> = Vec::new();
        let start = Instant::now();
        while seen.len() < 4 && start.elapsed() < Duration::from_secs(8) {
            let t = probe_times(&proxy.status().await);
            if seen.last().map(|(p, _)| p) != Some(&t) {
                seen.push((t, Instant::now()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen.len(), 4, "probes continue: {seen:?}");
        let gap = seen[3].1 - seen[2].1;
        assert!(
            gap >= Duration::from_millis(1200),
            "probes {gap:?} apart: the reloaded interval is not used"
        );
        let s = proxy.status().await;
        let events: Vec<_> = s["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["kind"] == "upstream_state" && e["to"] == "healthy")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        assert!(events.is_empty(), "never reset to healthy: {events:?}");
    })
    .await;
}

#[tokio::test]
async fn a_reload_that_changes_retry_keeps_a_held_back_tier_held_back() {
    bounded(LIMIT, async {
        let cdn = FakeUpstream::switchable("cdn", "/healthz").await;
        let origin = FakeUpstream::ok("origin").await;
        let config = |attempts: u32| {
            ProxyConfig::new()
                .admin("")
                .defaults("[defaults.health]\ninterval = \"100ms\"\nfall = 1\nrise = 1\n[defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0")
                .one_route(
                    "www",
                    &[&cdn, &origin],
                    &format!("failback_delay = \"3s\"\n[routes.retry]\nattempts = {attempts}"),
                )
        };
        let proxy = config(3).start().await;
        cdn.set(Mode::Status(503)).await;
        proxy
            .wait_status(Duration::from_secs(3), "failed over", |s| s["routes"][0]["active_tier"] == 1)
            .await;
        // The tier recovers after this moment: its failback comes at least 3 s later.
        let healed = Instant::now();
        cdn.set(Mode::Ok).await;
        proxy
            .wait_status(Duration::from_secs(3), "cdn healthy again", |s| s["upstreams"][0]["state"] == "healthy")
            .await;
        proxy.replace(&config(2));
        proxy
            .wait_status(Duration::from_secs(2), "reloaded", |s| s["config"]["generation"] == 2)
            .await;
        assert!(healed.elapsed() < Duration::from_secs(2), "slow machine: the test needs the delay still running");
        assert_eq!(proxy.route_status("www").await["active_tier"], 1, "still held back by failback_delay");
        proxy
            .wait_status(Duration::from_secs(5), "failed back", |s| s["routes"][0]["active_tier"] == 0)
            .await;
        assert!(healed.elapsed() >= Duration::from_millis(2950), "{:?}", healed.elapsed());
    })
    .await;
}

#[tokio::test]
async fn a_rotated_ca_file_is_picked_up_without_a_config_change() {
    bounded(LIMIT, async {
        let dir = TempDir::new();
        let (old_ca, new_ca) = (TestCa::new("old ca"), TestCa::new("new ca"));
        let ca_file = old_ca.write(dir.path(), "origin-ca.pem");
        // The origin already presents a certificate from the new CA.
        let origin = HttpsUpstream::start("origin", &new_ca.issue(&["origin.example.test"])).await;
        let keys = format!(
            "sni = \"origin.example.test\"\nca_file = {:?}",
            ca_file.display().to_string()
        );
        let proxy = ProxyConfig::new()
            .admin("")
            .upstream_at("origin", &origin.address(), &keys)
            .route("www", &["*"], "/", r#"["origin"]"#)
            .start()
            .await;
        assert_eq!(get(proxy.addr, "www.example.test", "/").await.status, 502);
        // Rotate the file in place (rename over it, as certbot or a Secret update does).
        let fresh = new_ca.write(dir.path(), "origin-ca.pem.new");
        std::fs::rename(&fresh, &ca_file).expect("rename over the CA file");
        let start = Instant::now();
        loop {
            let r = get(proxy.addr, "www.example.test", "/").await;
            if r.status == 200 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "CA not reloaded: {}",
                proxy.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = proxy.status().await;
        assert_eq!(
            s["config"]["generation"], 2,
            "one reload, from the file change"
        );
    })
    .await;
}

#[test]
fn check_reports_a_bad_ca_file_at_its_value() {
    let dir = TempDir::new();
    dir.write("not-a-ca.pem", "this is not PEM\n");
    let config = dir.write(
        "bascule.toml",
        "[listen]\nhttp = [\"127.0.0.1:8080\"]\n\n[upstreams.origin]\naddress = \"https://origin.example.test\"\nca_file = \"not-a-ca.pem\"\n\n[[routes]]\nname = \"www\"\nhosts = [\"*\"]\ntiers = [\"origin\"]\n",
    );
    let out = Command::new(support::bascule::BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("run bascule check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!("{}:6:11: upstreams.origin.ca_file:", config.display());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}
