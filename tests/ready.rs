//! Readiness and the read-only metrics listener, as a Kubernetes rollout uses them: `GET /ready`
//! (and `bascule health --ready`) answers 200 while serving and 503 from SIGTERM on, while
//! `GET /status` (liveness, `bascule health`) and the metrics keep answering through the grace
//! period; `[admin] metrics_listen` serves `GET /metrics` with no token and nothing else.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::Method;
use support::bascule::BIN;
use support::{admin_get, admin_request, bounded, get, Bascule, FakeUpstream, ProxyConfig};

const TOKEN: &str = "ready-s3cret";

/// A proxy over `up` with a token, a metrics listener and a 5 s grace period.
async fn proxy(up: &FakeUpstream) -> Bascule {
    ProxyConfig::new()
        .admin(&format!(
            "token = \"{TOKEN}\"\nmetrics_listen = \"127.0.0.1:0\""
        ))
        .limits(r#"shutdown_grace = "5s""#)
        .one_route("www", &[up], "")
        .start()
        .await
}

/// `GET path` on the admin API with the token: (status, JSON body).
async fn admin(proxy: &Bascule, path: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let r = admin_request(
        proxy.admin,
        Method::GET,
        path,
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status.as_u16(), v)
}

/// `bascule health [--ready] -c CONFIG`'s exit code.
async fn health(config: &Path, ready: bool) -> Option<i32> {
    let mut cmd = Command::new(BIN);
    cmd.arg("health").arg("-c").arg(config);
    if ready {
        cmd.arg("--ready");
    }
    cmd.env_remove("BASCULE_ADMIN_TOKEN");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("health task")
        .expect("run bascule health")
        .status
        .code()
}

#[tokio::test]
async fn readiness_fails_at_sigterm_while_liveness_and_metrics_keep_answering() {
    bounded(Duration::from_secs(30), async {
        let slow = FakeUpstream::slow("slow", Duration::from_millis(1500)).await;
        let mut proxy = proxy(&slow).await;
        let bound = proxy.bound_config();
        let metrics = proxy.metrics.expect("the metrics listener listens");
        assert_eq!(
            admin(&proxy, "/ready").await,
            (200, serde_json::json!({"ready": true, "phase": "serving"}))
        );
        // The token rule holds for /ready: probes run `bascule health --ready`, which has it.
        assert_eq!(admin_get(proxy.admin, "/ready").await.status, 401);
        assert_eq!(health(&bound, true).await, Some(0));

        let addr = proxy.addr;
        let in_flight = tokio::spawn(async move { get(addr, "www.example.com", "/slow").await });
        let waiting = Instant::now();
        while slow.hits() == 0 {
            assert!(waiting.elapsed() < Duration::from_secs(3), "never sent");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sigterm = Instant::now();
        proxy.terminate();
        let (code, body) = loop {
            let (code, body) = admin(&proxy, "/ready").await;
            if code != 200 {
                break (code, body);
            }
            assert!(
                sigterm.elapsed() < Duration::from_millis(800),
                "still ready after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["phase"], "stopping");
        assert!(!in_flight.is_finished(), "the grace period has begun");

        // Liveness and metrics answer through the grace period.
        assert_eq!(admin(&proxy, "/status").await.0, 200);
        assert_eq!(health(&bound, false).await, Some(0));
        assert_eq!(health(&bound, true).await, Some(1));
        let m = admin_get(metrics, "/metrics").await;
        assert_eq!(m.status, 200);
        assert!(
            m.text().contains("bascule_config_generation 1"),
            "{}",
            m.text()
        );

        let r = in_flight.await.expect("in-flight task");
        assert_eq!(r.status, 200, "{}", r.text());
        let status = proxy.wait_exit(Duration::from_secs(5)).await;
        assert_eq!(status.and_then(|s| s.code()), Some(0));
    })
    .await;
}

#[tokio::test]
async fn the_metrics_listener_serves_only_get_metrics_and_needs_no_token() {
    bounded(Duration::from_secs(20), async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = proxy(&origin).await;
        let metrics = proxy.metrics.expect("the metrics listener listens");
        let m = admin_get(metrics, "/metrics").await;
        assert_eq!(m.status, 200);
        assert!(m.header("content-type").starts_with("text/plain"));
        assert!(m
            .text()
            .contains("bascule_upstream_up{upstream=\"origin\"} 1"));
        // Nothing else there: no status, no reload, no drain, no dashboard.
        assert_eq!(admin_get(metrics, "/status").await.status, 404);
        assert_eq!(admin_get(metrics, "/").await.status, 404);
        for path in ["/reload", "/upstreams/origin/drain", "/metrics"] {
            let r = admin_request(
                metrics,
                Method::POST,
                path,
                &[("content-type", "application/json")],
                "",
            )
            .await;
            assert!(
                matches!(r.status.as_u16(), 404 | 405),
                "{path}: {}",
                r.status
            );
        }
        assert_eq!(
            proxy.upstream_status_with_token("origin", TOKEN).await["state"],
            "healthy"
        );
        // The full admin API still wants its token, /metrics included.
        assert_eq!(admin_get(proxy.admin, "/metrics").await.status, 401);
    })
    .await;
}
