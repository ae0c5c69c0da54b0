//! The command line (DESIGN §2, §4 "Details"): `bascule check` prints the compiled routes,
//! config errors are `FILE:LINE:COL: message` with exit 1 for `check` and `run` alike, a
//! usage error exits 2, and each command's help shows the usage the README's table documents.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::bascule::BIN;
use support::{bounded, TempDir, TEST_LIMIT};

/// Runs `bascule ARGS` in `dir`, killing it if it runs longer than 10 s.
async fn bascule(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("BASCULE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bascule");
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "bascule {args:?} still running after 10 s\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.wait_with_output().expect("output")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// 1-based (line, column) of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    position_at(text, text.find(needle).expect("needle in text"))
}

/// 1-based (line, column) of byte offset `at` in `text` (ASCII text).
fn position_at(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

const UPSTREAMS: &str = r#"
[upstreams.cloudflare]
address = "https://www.example.com.cdn.cloudflare.net"
host = "www.example.com"

[upstreams.fastly]
address = "https://www.example.com.global.prod.fastly.net"
host = "www.example.com"

[upstreams.origin-a]
address = "http://127.0.0.1:9"

[upstreams.origin-b]
address = "http://127.0.0.1:10"
"#;

#[tokio::test]
async fn check_prints_one_line_per_route_binds_nothing_and_exits_0() {
    bounded(TEST_LIMIT, async {
        // The listen address is held by this test: `check` must not try to bind it.
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let dir = TempDir::new();
        dir.write(
            "bascule.toml",
            &format!(
                "[listen]\nhttp = [\"{addr}\"]\n{UPSTREAMS}\n\
                 [[routes]]\nname = \"www\"\nhosts = [\"www.example.com\", \"example.com\"]\n\
                 tiers = [\"cloudflare\", \"fastly\", [\"origin-a\", \"origin-b\"]]\n\n\
                 [[routes]]\nname = \"api\"\nhosts = [\"*.example.com\"]\npath_prefix = \"/api/\"\n\
                 tiers = [\"origin-b\"]\n"
            ),
        );
        let out = bascule(dir.path(), &["check", "-c", "bascule.toml"]).await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            "route www hosts=www.example.com,example.com prefix=/ tiers: cloudflare > fastly > [origin-a, origin-b]\n\
             route api hosts=*.example.com prefix=/api/ tiers: origin-b\n"
        );
        drop(held);
    })
    .await;
}

/// A config with two reference errors: an undefined tier and a tier used twice.
fn bad_references() -> String {
    format!(
        "[listen]\nhttp = [\"127.0.0.1:1\"]\n{UPSTREAMS}\n\
         [[routes]]\nname = \"www\"\nhosts = [\"www.example.com\"]\n\
         tiers = [\"cloudflare\", \"akamai\", \"origin-a\"]\n\n\
         [[routes]]\nname = \"api\"\nhosts = [\"api.example.com\"]\n\
         tiers = [\"origin-b\", [\"origin-a\", \"origin-b\"]]\n"
    )
}

fn expected_reference_errors(file: &str, config: &str) -> String {
    let (l1, c1) = position(config, "\"akamai\"");
    // The second "origin-b" of route "api", inside its group.
    let (l2, c2) = position_at(config, config.rfind("\"origin-b\"]]").expect("group"));
    format!(
        "{file}:{l1}:{c1}: route \"www\": tier \"akamai\" is not a defined upstream\n\
         {file}:{l2}:{c2}: route \"api\": upstream \"origin-b\" appears in more than one place in tiers\n"
    )
}

#[tokio::test]
async fn check_reports_every_reference_error_as_file_line_col_and_exits_1() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join("conf")).expect("mkdir");
        let config = bad_references();
        dir.write("conf/bad.toml", &config);
        let out = bascule(dir.path(), &["check", "-c", "conf/bad.toml"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(out.stdout, b"", "nothing printed on stdout");
        assert_eq!(
            text(&out.stderr),
            expected_reference_errors("conf/bad.toml", &config)
        );
    })
    .await;
}

#[tokio::test]
async fn a_schema_error_is_reported_alone_with_its_position() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        // An unknown key, and an undefined tier that must not be reported with it.
        let config = format!(
            "[listen]\nhttp = [\"127.0.0.1:1\"]\n{UPSTREAMS}\n\
             [[routes]]\nname = \"www\"\nhosts = [\"*\"]\ntiers = [\"nowhere\"]\nretries = 3\n"
        );
        let path = dir.write("bascule.toml", &config);
        let path = path.to_str().expect("utf-8 path");
        let out = bascule(dir.path(), &["check", "-c", path]).await;
        assert_eq!(out.status.code(), Some(1));
        let stderr = text(&out.stderr);
        let (line, col) = position(&config, "retries");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("{path}:{line}:{col}: ")),
            "{stderr}"
        );
        assert!(stderr.contains("retries"), "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn run_on_an_invalid_config_exits_1_with_the_same_errors_as_check() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        let config = bad_references();
        dir.write("bad.toml", &config);
        let out = bascule(dir.path(), &["run", "-c", "bad.toml"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            expected_reference_errors("bad.toml", &config)
        );
    })
    .await;
}

#[tokio::test]
async fn a_usage_error_exits_2() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        for args in [
            &[][..],
            &["frobnicate"][..],
            &["check", "--no-such-flag"][..],
            &["run", "-c"][..],
        ] {
            let out = bascule(dir.path(), args).await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "bascule {args:?}: {}",
                text(&out.stderr)
            );
            assert!(!out.stderr.is_empty(), "bascule {args:?} explains itself");
        }
    })
    .await;
}

#[tokio::test]
async fn run_refuses_a_public_admin_address_without_a_token() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        let config = "[listen]\nhttp = [\"127.0.0.1:0\"]\n\n[admin]\nlisten = \"0.0.0.0:9901\"\n\n\
                      [upstreams.origin]\naddress = \"http://127.0.0.1:9\"\n\n\
                      [[routes]]\nname = \"all\"\nhosts = [\"*\"]\ntiers = [\"origin\"]\n";
        dir.write("bascule.toml", config);
        let out = bascule(dir.path(), &["run", "-c", "bascule.toml"]).await;
        assert_eq!(out.status.code(), Some(1));
        let (line, col) = position(config, "\"0.0.0.0:9901\"");
        assert_eq!(
            text(&out.stderr).trim(),
            format!(
                "bascule.toml:{line}:{col}: admin.listen: 0.0.0.0:9901 is not a loopback address, \
                 so admin.token is required"
            )
        );
    })
    .await;
}

#[tokio::test]
async fn status_sends_the_token_and_says_when_it_is_missing() {
    bounded(TEST_LIMIT, async {
        let origin = support::FakeUpstream::ok("origin").await;
        let proxy = support::ProxyConfig::new()
            .admin("token = \"s3cret\"")
            .upstream("origin", &origin)
            .route("all", &["*"], "/", r#"["origin"]"#)
            .start()
            .await;
        let url = format!("http://{}", proxy.admin);
        let dir = TempDir::new();
        let out = bascule(dir.path(), &["status", "--admin", &url]).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
        let out = bascule(
            dir.path(),
            &["status", "--admin", &url, "--token", "s3cret"],
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("all    *      /       origin"),
            "{}",
            text(&out.stdout)
        );
    })
    .await;
}

#[tokio::test]
async fn health_exits_0_while_the_admin_api_answers_and_1_when_it_does_not() {
    bounded(TEST_LIMIT, async {
        let origin = support::FakeUpstream::ok("origin").await;
        let mut proxy = support::ProxyConfig::new()
            .admin("token = \"s3cret\"")
            .upstream("origin", &origin)
            .route("all", &["*"], "/", r#"["origin"]"#)
            .start()
            .await;
        // Its config with the ports it got (it was started on 127.0.0.1:0).
        let config = proxy.bound_config().display().to_string();
        let dir = TempDir::new();
        let out = bascule(dir.path(), &["health", "-c", &config]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        proxy.terminate();
        proxy.wait_exit(Duration::from_secs(5)).await;
        let out = bascule(dir.path(), &["health", "-c", &config]).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).starts_with("bascule health: "),
            "{}",
            text(&out.stderr)
        );
    })
    .await;
}

#[tokio::test]
async fn each_commands_help_shows_the_usage_the_readme_documents() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        // The first column of the README's command table: | `bascule run [-c <FILE>] …` |
        let documented: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `bascule ")?.split_once('`'))
            .map(|(usage, _)| usage)
            .collect();
        assert!(documented.len() >= 4, "{documented:?}");
        for usage in documented {
            let command = usage.split(' ').next().unwrap_or("");
            let out = bascule(dir.path(), &[command, "--help"]).await;
            assert_eq!(out.status.code(), Some(0));
            let help = text(&out.stdout);
            assert!(
                help.contains(&format!("Usage: bascule {usage}\n")),
                "README: `bascule {usage}`\n{help}"
            );
        }
        // The config file's default is said once, in words.
        let help = text(&bascule(dir.path(), &["run", "--help"]).await.stdout);
        assert!(help.contains("-c, --config <FILE>"), "{help}");
        assert_eq!(help.matches("config/bascule.toml").count(), 1, "{help}");
        assert!(help.contains("$BASCULE_CONFIG"), "{help}");
    })
    .await;
}

#[tokio::test]
async fn a_busy_port_fails_at_once_naming_the_key_to_change() {
    bounded(TEST_LIMIT, async {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let dir = TempDir::new();
        dir.write(
            "bascule.toml",
            &format!(
                "[listen]\nhttp = [\"{addr}\"]\n[admin]\nenabled = false\n\
                 [upstreams.origin]\naddress = \"http://127.0.0.1:9\"\n\
                 [[routes]]\nname = \"all\"\nhosts = [\"*\"]\ntiers = [\"origin\"]\n"
            ),
        );
        let out = bascule(dir.path(), &["run", "-c", "bascule.toml"]).await;
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.starts_with(&format!(
                "bascule: cannot listen on {addr}: address in use — "
            )) && err.contains("change [listen] http in bascule.toml"),
            "{err}"
        );
        assert!(!text(&out.stdout).contains("bascule started"));
        drop(held);
    })
    .await;
}

#[tokio::test]
async fn sleep_waits_its_duration_and_a_bad_one_is_a_usage_error() {
    bounded(TEST_LIMIT, async {
        let dir = TempDir::new();
        let start = Instant::now();
        let out = bascule(dir.path(), &["sleep", "300ms"]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(start.elapsed() >= Duration::from_millis(300));
        let out = bascule(dir.path(), &["sleep", "5"]).await;
        assert_eq!(out.status.code(), Some(2), "a duration needs a unit");
    })
    .await;
}
