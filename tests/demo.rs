//! `bascule demo` (DESIGN §2) and `bascule status`: the demo serves through its primary CDN,
//! fails over when the primary is broken from the admin API, fails back when healed; the status
//! CLI shows it as a table and as JSON. Ctrl-C stops the demo and removes its config directory;
//! a busy port fails before the banner, saying which flag to pass.

mod support;

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::bascule::BIN;
use support::listening::wait_for;
use support::{bounded, served_by, until_served_by, FakeUpstream, TempDir};

/// The demo process: interrupted (SIGINT, by its PID, as Ctrl-C does) when dropped, so that
/// it removes its config directory, and killed if it has not exited within 5 s.
struct DemoProcess(Child);

impl DemoProcess {
    /// Sends SIGINT and waits (at most 5 s) for the exit status.
    fn interrupt(&mut self) -> Option<std::process::ExitStatus> {
        let _sent = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) && self.interrupt().is_none() {
            let _gone = self.0.kill();
            let _reaped = self.0.wait();
        }
    }
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

/// Starts `bascule demo` with its proxy and admin API on 127.0.0.1:0, and reads where they
/// listen from its log (stdout, into a file in `dir`).
async fn start_demo(dir: &TempDir) -> (DemoProcess, SocketAddr, SocketAddr) {
    let log = dir.path().join("stdout.log");
    let child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("BASCULE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(File::create(&log).expect("demo log file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let demo = DemoProcess(child);
    let found = wait_for(
        &log,
        Duration::from_secs(10),
        || false,
        |l| l.has(1, 0, true),
    )
    .await
    .expect("the demo did not start");
    let admin = found.admin.expect("the admin API listens");
    (demo, found.http[0], admin)
}

#[tokio::test]
async fn the_demo_fails_over_when_its_primary_breaks_and_back_when_healed() {
    bounded(Duration::from_secs(40), async {
        let dir = TempDir::new();
        let (mut demo, listen, admin) = start_demo(&dir).await;
        let config_dir = std::env::temp_dir().join(format!("bascule-demo-{}", demo.0.id()));
        assert!(config_dir.join("bascule.toml").is_file());
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
        let polled = until_served_by(listen, "secondary-cdn", Duration::from_secs(5)).await;
        assert_eq!(
            polled.failed, 0,
            "no request may fail during the demo's failover"
        );
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
        let polled = until_served_by(listen, "primary-cdn", Duration::from_secs(15)).await;
        assert_eq!(
            polled.failed, 0,
            "no request may fail during the demo's failback"
        );
        let took = polled.took;
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

        // Ctrl-C: a clean exit, and the config directory is gone.
        let status = demo.interrupt().expect("the demo exits on SIGINT");
        assert_eq!(status.code(), Some(0));
        assert!(!config_dir.exists(), "{} left behind", config_dir.display());
    })
    .await;
}

#[tokio::test]
async fn a_busy_port_fails_before_the_banner_saying_which_flag_to_pass() {
    bounded(Duration::from_secs(20), async {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let busy = held.local_addr().expect("addr").to_string();
        for (flag, other) in [("--listen", "--admin"), ("--admin", "--listen")] {
            let args = ["demo", flag, &busy, other, "127.0.0.1:0"].map(str::to_owned);
            let out = tokio::task::spawn_blocking(move || {
                Command::new(BIN).args(args).stdin(Stdio::null()).output()
            })
            .await
            .expect("demo task")
            .expect("run the demo");
            assert_eq!(out.status.code(), Some(1));
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(!stdout.contains("Ctrl-C"), "banner printed: {stdout}");
            assert!(
                stderr.contains("address in use")
                    && stderr
                        .trim_end()
                        .ends_with(&format!("pass {flag} 127.0.0.1:PORT")),
                "{stderr}"
            );
        }
        drop(held);
    })
    .await;
}

#[tokio::test]
async fn status_explains_an_unreachable_admin_api() {
    // A port kept bound without listening: connecting is refused, and nobody else can take it.
    let nothing = FakeUpstream::refuse("nothing").await;
    let out = Command::new(BIN)
        .args(["status", "--admin", &nothing.address()])
        .output()
        .expect("run bascule status");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bascule status:") && err.contains("onnect"),
        "{err}"
    );
}
