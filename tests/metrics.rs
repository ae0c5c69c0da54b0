//! `GET /metrics` (DESIGN §5, the names are a contract) in both formats it speaks, chosen by
//! `Accept`: read by a strict parser (`support::exposition`), with every metric present and
//! the counters moving after traffic, a failover and reloads; and read by Prometheus's own
//! `promtool` when it is installed (`check metrics` lints the 0.0.4 text; `tsdb
//! create-blocks-from openmetrics` ingests the OpenMetrics answer with Prometheus's parser).

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use http::Method;
use support::exposition::{self, Format, Samples};
use support::{bounded, get, tools, Bascule, FakeUpstream, Mode, ProxyConfig, TempDir};

/// The `Accept` of a Prometheus scrape (its default protocols, OpenMetrics first).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

/// `GET /metrics` as Prometheus asks (`Format::OpenMetrics`) or as curl does (`Format::Text`):
/// the body, after checking the content type that says which format it is.
async fn fetch(proxy: &Bascule, format: Format) -> String {
    let (accept, content_type) = match format {
        Format::OpenMetrics => (
            PROMETHEUS_ACCEPT,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        Format::Text => ("*/*", "text/plain; version=0.0.4; charset=utf-8"),
    };
    let headers = [("accept", accept)];
    let r = support::admin_request(proxy.admin, Method::GET, "/metrics", &headers, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), content_type, "{:?}", r.headers);
    assert_eq!(r.header("vary"), "accept");
    r.text()
}

/// Both formats, parsed strictly; they must hold the same series. Returns the 0.0.4 samples.
async fn scrape(proxy: &Bascule) -> Samples {
    let text = fetch(proxy, Format::Text).await;
    let samples = exposition::parse(&text, Format::Text)
        .unwrap_or_else(|e| panic!("the 0.0.4 text is invalid: {e}\n{text}"));
    let om = fetch(proxy, Format::OpenMetrics).await;
    let om_samples = exposition::parse(&om, Format::OpenMetrics)
        .unwrap_or_else(|e| panic!("the OpenMetrics text is invalid: {e}\n{om}"));
    let mut a: Vec<_> = samples.keys().collect();
    let mut b: Vec<_> = om_samples.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the two formats hold different series");
    samples
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
                 [defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n",
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

#[tokio::test]
async fn the_format_follows_the_accept_header() {
    bounded(support::TEST_LIMIT, async {
        let origin = FakeUpstream::ok("origin").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .one_route("www", &[&origin], "")
            .start()
            .await;
        let ask = |accept: &'static str| {
            let headers: Vec<(&str, &str)> = match accept {
                "" => vec![],
                a => vec![("accept", a)],
            };
            let addr = proxy.admin;
            async move { support::admin_request(addr, Method::GET, "/metrics", &headers, "").await }
        };
        let text = "text/plain; version=0.0.4; charset=utf-8";
        let om = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        for (accept, content_type, eof) in [
            ("", text, false),
            ("text/plain", text, false),
            ("*/*", text, false),
            (PROMETHEUS_ACCEPT, om, true),
            ("application/openmetrics-text", om, true),
            (
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5",
                text,
                false,
            ),
        ] {
            let r = ask(accept).await;
            assert_eq!(r.header("content-type"), content_type, "Accept: {accept}");
            assert_eq!(r.text().ends_with("# EOF\n"), eof, "Accept: {accept}");
        }
    })
    .await;
}

#[tokio::test]
async fn promtool_accepts_both_formats_after_traffic() {
    if !tools::require("promtool", "prometheus") {
        return;
    }
    bounded(Duration::from_secs(40), async {
        let origin = FakeUpstream::ok("origin").await;
        let cdn = FakeUpstream::refuse("cdn").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .upstream("cdn", &cdn)
            .upstream("origin", &origin)
            .route("www", &["www.example.com"], "/", r#"["cdn", "origin"]"#)
            .route("dead", &["dead.example.com"], "/", r#"["cdn"]"#)
            .start()
            .await;
        for _ in 0..5 {
            assert_eq!(get(proxy.addr, "www.example.com", "/").await.status, 200);
        }
        assert_eq!(get(proxy.addr, "dead.example.com", "/").await.status, 502);
        assert_eq!(get(proxy.addr, "nowhere.example", "/").await.status, 404);
        let dir = TempDir::new();

        let text = fetch(&proxy, Format::Text).await;
        let (ok, out) = promtool(&["check", "metrics"], Some(&text)).await;
        assert!(
            ok,
            "promtool check metrics rejects the 0.0.4 text:\n{out}\n{text}"
        );
        assert_eq!(out.trim(), "", "promtool check metrics complains:\n{text}");

        // Backfilling needs a timestamp on every sample: the scrape's, in seconds.
        let om = fetch(&proxy, Format::OpenMetrics).await;
        let series = exposition::parse(&om, Format::OpenMetrics)
            .unwrap_or_else(|e| panic!("{e}\n{om}"))
            .len();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let stamped: String = om
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    format!("{l}\n")
                } else {
                    format!("{l} {now}\n")
                }
            })
            .collect();
        let file = dir.path().join("metrics.om");
        std::fs::write(&file, stamped).expect("write the exposition");
        let blocks = dir.path().join("blocks");
        let args = ["tsdb", "create-blocks-from", "openmetrics"];
        let paths = [file.display().to_string(), blocks.display().to_string()];
        let args: Vec<&str> = args
            .into_iter()
            .chain(paths.iter().map(String::as_str))
            .collect();
        let (ok, out) = promtool(&args, None).await;
        assert!(
            ok,
            "Prometheus's OpenMetrics parser rejects the answer:\n{out}\n{om}"
        );
        // The block's row: ULID, min time, max time, duration, samples, chunks, series, size.
        let row = out.lines().last().unwrap_or("").split_whitespace().nth(6);
        assert_eq!(row, Some(series.to_string().as_str()), "{out}");
    })
    .await;
}

/// Runs `promtool args` (with `stdin`) off the test's runtime: whether it succeeded, and its
/// stdout and stderr.
async fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new("promtool")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .expect("feed promtool");
        drop(pipe);
        let out = child.wait_with_output().expect("promtool's output");
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text.into_owned())
    })
    .await
    .expect("promtool task")
}

#[test]
fn the_parser_rejects_what_prometheus_would_misread() {
    use exposition::parse;
    let ok_text = "# HELP c_total C.\n# TYPE c_total counter\nc_total{a=\"x\"} 1\n";
    assert!(parse(ok_text, Format::Text).is_ok());
    let ok_om = "# HELP c C.\n# TYPE c counter\nc_total{a=\"x\"} 1\n# EOF\n";
    assert!(parse(ok_om, Format::OpenMetrics).is_ok());
    let histogram = |buckets: &str, count: u32| {
        format!("# HELP h H.\n# TYPE h histogram\n{buckets}h_sum 1.5\nh_count {count}\n")
    };
    let good = histogram("h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n", 2);
    assert!(parse(&good, Format::Text).is_ok(), "{good}");
    let bad = [
        // The bug this replaced: OpenMetrics served as 0.0.4.
        (ok_om, Format::Text),
        (ok_text, Format::OpenMetrics),
        ("# TYPE c_total counter\nc_total 1\n", Format::Text),
        ("# HELP c_total C.\nc_total 1\n", Format::Text),
        ("c_total 1\n", Format::Text),
        (
            "# HELP g G.\n# TYPE g gauge\ng{a=\"\\q\"} 1\n",
            Format::Text,
        ),
        (
            "# HELP g G.\n# TYPE g gauge\ng{__a=\"x\"} 1\n",
            Format::Text,
        ),
        (
            "# HELP g G.\n# TYPE g gauge\ng{a=\"x\",a=\"y\"} 1\n",
            Format::Text,
        ),
        ("# HELP g G.\n# TYPE g gauge\ng 1\ng 2\n", Format::Text),
        (
            "# HELP g G.\n# TYPE g gauge\n# UNIT g seconds\ng 1\n",
            Format::Text,
        ),
        (
            "# HELP g a \"quote\".\n# TYPE g gauge\ng 1\n# EOF\n",
            Format::OpenMetrics,
        ),
        ("# HELP 1g G.\n# TYPE 1g gauge\n1g 1\n", Format::Text),
        ("# HELP g G.\n# TYPE g gauge\ng one\n", Format::Text),
        (
            "# HELP c_total C.\n# TYPE c_total counter\nc_total -1\n",
            Format::Text,
        ),
    ];
    for (text, format) in bad {
        assert!(
            parse(text, format).is_err(),
            "accepted as {format:?}:\n{text}"
        );
    }
    for buckets in [
        "h_bucket{le=\"+Inf\"} 2\nh_bucket{le=\"0.1\"} 1\n",
        "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"1\"} 2\n",
        "h_bucket{le=\"0.1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",
    ] {
        let text = histogram(buckets, 2);
        assert!(parse(&text, Format::Text).is_err(), "{text}");
    }
    let miscounted = histogram("h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n", 3);
    assert!(parse(&miscounted, Format::Text).is_err());
}
