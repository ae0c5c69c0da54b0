//! `bascule demo` (DESIGN §2) and `bascule status`: the demo serves through its primary CDN,
//! fails over when the primary is broken from the admin API, fails back when healed; the status
//! CLI shows it as a table and as JSON.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::bascule::{free_port, BIN};
use support::{bounded, get};

/// The demo process, killed (by its own handle) when dropped.
struct DemoProcess(Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _gone = self.0.kill();
        let _reaped = self.0.wait();
    }
}

async fn served_by(addr: std::net::SocketAddr) -> (u16, String) {
    let r = get(addr, "demo.example", "/").await;
    (r.status.as_u16(), r.header("x-bascule-upstream").to_owned())
}

async fn status(admin: std::net::SocketAddr, json: bool) -> String {
    let url = format!("http://{admin}");
    let out = tokio::task::spawn_blocking(move || {
        let mut c = Command::new(BIN);
        c.args(["status", "--admin", &url])
            .env_remove("BASCULE_ADMIN_TOKEN");
        if json {
            c.arg("--json");
        }
        c.output()
    })
    .await
    .expect("status task")
    .expect("run bascule status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until `upstream` answers (every answer must be a 200); returns how long it took.
async fn until_served_by(addr: std::net::SocketAddr, upstream: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (code, by) = served_by(addr).await;
        assert_eq!(code, 200, "no request may fail during the demo's failover");
        if by == upstream {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not served by {upstream} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_demo_fails_over_when_its_primary_breaks_and_back_when_healed() {
    bounded(Duration::from_secs(40), async {
        let (listen, admin) = (free_port(), free_port());
        let child = Command::new(BIN)
            .args([
                "demo",
                "--listen",
                &listen.to_string(),
                "--admin",
                &admin.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the demo");
        let _demo = DemoProcess(child);
        let start = Instant::now();
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the demo did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(served_by(listen).await, (200, "primary-cdn".to_owned()));
        let table = status(admin, false).await;
        assert!(
            table.contains("primary-cdn > secondary-cdn > origin"),
            "{table}"
        );
        assert!(table.contains("0 (primary-cdn)"), "{table}");

        // The dashboard's demo panel and the README's command use this endpoint.
        let r = support::admin_request(
            admin,
            http::Method::POST,
            "/demo/primary-cdn/refuse",
            &[("content-type", "application/json")],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        until_served_by(listen, "secondary-cdn", Duration::from_secs(5)).await;
        let start = Instant::now();
        while !status(admin, false).await.contains("1 (secondary-cdn)") {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "active tier never moved"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let table = status(admin, false).await;
        assert!(table.contains("unhealthy"), "{table}");
        let json: serde_json::Value =
            serde_json::from_str(&status(admin, true).await).expect("--json prints /status");
        assert_eq!(json["routes"][0]["active_tier"], 1);

        let r = support::admin_request(
            admin,
            http::Method::POST,
            "/demo/primary-cdn/ok",
            &[("content-type", "application/json")],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
        // Back after rise × interval (1 s) + failback_delay (5 s).
        let took = until_served_by(listen, "primary-cdn", Duration::from_secs(15)).await;
        assert!(
            took >= Duration::from_secs(4),
            "failed back after {took:?}, before failback_delay"
        );
        let r = support::admin_request(
            admin,
            http::Method::POST,
            "/demo/nope/refuse",
            &[("content-type", "application/json")],
            "",
        )
        .await;
        assert_eq!(r.status, 422);
    })
    .await;
}

#[tokio::test]
async fn status_explains_an_unreachable_admin_api() {
    let out = Command::new(BIN)
        .args(["status", "--admin", &format!("http://{}", free_port())])
        .output()
        .expect("run bascule status");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bascule status:") && err.contains("onnect"),
        "{err}"
    );
}
