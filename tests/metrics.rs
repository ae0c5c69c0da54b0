//! `GET /metrics` (DESIGN §5, the names are a contract): parsed by the Prometheus project's
//! own Python parser (`prometheus_client`, installed by `.ci/run`), with every metric present
//! and the counters moving after traffic, a failover and reloads.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use support::{bounded, get, Bascule, FakeUpstream, Mode, ProxyConfig};

/// One sample: metric name with labels (`name{k="v",...}`, labels sorted) → value.
type Samples = HashMap<String, f64>;

/// Parses the exposition with `prometheus_client.parser` and returns every sample; panics with
/// the parser's complaint when Prometheus would reject the text.
async fn scrape(proxy: &Bascule) -> Samples {
    let r = support::admin_get(proxy.admin, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").starts_with("text/plain"),
        "{:?}",
        r.headers
    );
    let text = r.text();
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("feed the parser");
        child.wait_with_output().expect("parser output")
    })
    .await
    .expect("parser task");
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics (pip install prometheus-client, or run .ci/run): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn value(s: &Samples, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_move_with_traffic_failover_and_reload() {
    bounded(Duration::from_secs(40), async {
        let primary = FakeUpstream::switchable("primary", "/healthz").await;
        let secondary = FakeUpstream::switchable("secondary", "/healthz").await;
        let config = ProxyConfig::new()
            .admin("")
            .defaults(
                "[defaults.health]\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
                 [defaults.passive]\nconsecutive_failures = 0\n",
            )
            .upstream_at("primary", &primary.address(), "")
            .upstream_at("secondary", &secondary.address(), "")
            .route(
                "www",
                &["www.example.com"],
                "/",
                r#"["primary", "secondary"]"#,
            );
        let proxy = config.clone().start().await;
        let before = scrape(&proxy).await;
        for name in [
            "bascule_config_generation{}",
            "bascule_config_reloads_total{result=\"success\"}",
            "bascule_config_reloads_total{result=\"error\"}",
            "bascule_upstream_up{upstream=\"primary\"}",
            "bascule_route_active_tier{route=\"www\"}",
        ] {
            assert!(before.contains_key(name), "{name} missing: {before:#?}");
        }
        assert_eq!(
            value(&before, "bascule_upstream_up{upstream=\"primary\"}"),
            1.0
        );
        assert_eq!(
            value(&before, "bascule_route_active_tier{route=\"www\"}"),
            0.0
        );

        for _ in 0..5 {
            assert_eq!(get(proxy.addr, "www.example.com", "/").await.status, 200);
        }
        assert_eq!(get(proxy.addr, "nowhere.example", "/").await.status, 404);
        let s = scrape(&proxy).await;
        let ok = "bascule_requests_total{code=\"200\",route=\"www\",upstream=\"primary\"}";
        assert_eq!(value(&s, ok), 5.0, "{s:#?}");
        assert_eq!(
            value(
                &s,
                "bascule_requests_total{code=\"404\",route=\"-\",upstream=\"-\"}"
            ),
            1.0
        );
        assert_eq!(
            value(
                &s,
                "bascule_upstream_attempts_total{outcome=\"ok\",upstream=\"primary\"}"
            ),
            5.0
        );
        assert_eq!(
            value(&s, "bascule_request_duration_seconds_count{route=\"www\"}"),
            5.0
        );
        assert_eq!(
            value(
                &s,
                "bascule_request_duration_seconds_bucket{le=\"+Inf\",route=\"www\"}"
            ),
            5.0
        );

        // Failover: the primary refuses; the request is replayed on the secondary.
        primary.set(Mode::Refuse).await;
        assert_eq!(get(proxy.addr, "www.example.com", "/").await.status, 200);
        proxy
            .wait_status(Duration::from_secs(3), "failed over", |st| {
                st["routes"][0]["active_tier"] == 1
            })
            .await;
        let s = scrape(&proxy).await;
        assert!(
            value(
                &s,
                "bascule_upstream_attempts_total{outcome=\"connect_error\",upstream=\"primary\"}"
            ) >= 1.0,
            "{s:#?}"
        );
        assert_eq!(value(&s, "bascule_upstream_up{upstream=\"primary\"}"), 0.0);
        assert_eq!(value(&s, "bascule_route_active_tier{route=\"www\"}"), 1.0);
        assert_eq!(
            value(
                &s,
                "bascule_failovers_total{from=\"0\",route=\"www\",to=\"1\"}"
            ),
            1.0
        );
        assert!(
            value(
                &s,
                "bascule_requests_total{code=\"200\",route=\"www\",upstream=\"secondary\"}"
            ) >= 1.0
        );

        // Reloads: one good, one bad.
        proxy.hup();
        proxy
            .wait_status(Duration::from_secs(3), "reloaded", |st| {
                st["config"]["generation"] == 2
            })
            .await;
        proxy.replace(&config.clone().route("bad", &["x"], "/", r#"["nope"]"#));
        proxy
            .wait_status(Duration::from_secs(3), "bad reload", |st| {
                !st["config"]["last_error"].is_null()
            })
            .await;
        let s = scrape(&proxy).await;
        assert_eq!(value(&s, "bascule_config_generation{}"), 2.0);
        assert_eq!(
            value(&s, "bascule_config_reloads_total{result=\"success\"}"),
            1.0
        );
        assert_eq!(
            value(&s, "bascule_config_reloads_total{result=\"error\"}"),
            1.0
        );
        // Counters survive a reload (the same series keeps counting).
        assert_eq!(value(&s, ok), 5.0);
    })
    .await;
}
