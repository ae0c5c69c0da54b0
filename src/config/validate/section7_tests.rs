//! The DESIGN §7 keys: the origin shield's `[cache]` and route `cache`, hedging and the
//! retry budget, passive failure-rate ejection and the warm standby's share — their
//! defaults, and each bad value reported at its position.

use super::tests::{load, MINIMAL};
use super::*;

#[test]
fn the_shield_keys_default_as_design_section_7_3_says() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(
        c.cache,
        CacheSpec {
            max_size: 256 << 20,
            max_object: 8 << 20,
            stale_if_error: Duration::from_secs(3600),
            lock_timeout: Duration::from_secs(5),
        }
    );
    assert_eq!(c.routes[0].cache, CacheMode::Direct);
    assert_eq!(c.upstreams[1].max_in_flight, 0);
    assert_eq!(c.upstreams[1].queue_timeout, Duration::from_secs(1));
    let text = MINIMAL
        .replace(
            "[upstreams.origin-a]",
            "[cache]\nmax_size = \"0\"\nstale_if_error = \"0s\"\n[upstreams.origin-a]\nmax_in_flight = 50\nqueue_timeout = \"250ms\"",
        )
        .replace("tiers = [\"cdn\"", "cache = \"always\"\ntiers = [\"cdn\"");
    let c = load(&text).unwrap();
    assert_eq!(
        (c.cache.max_size, c.cache.stale_if_error),
        (0, Duration::ZERO)
    );
    assert_eq!(c.routes[0].cache, CacheMode::Always);
    assert_eq!(c.upstreams[1].max_in_flight, 50);
    assert_eq!(c.upstreams[1].queue_timeout, Duration::from_millis(250));
}

#[test]
fn bad_shield_keys_are_reported_at_their_value() {
    let text = MINIMAL
        .replace(
            "[upstreams.origin-a]",
            "[cache]\nmax_size = \"1MiB\"\nmax_object = \"2MiB\"\nlock_timeout = \"0s\"\n[upstreams.origin-a]\nmax_in_flight = -1\nqueue_timeout = \"soon\"",
        )
        .replace("tiers = [\"cdn\"", "cache = \"sometimes\"\ntiers = [\"cdn\"");
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(
        errs[0].contains(":11:14: cache.max_object: 2097152 bytes is more than cache.max_size"),
        "{errs:#?}"
    );
    assert!(
        errs[1].contains(":12:16: cache.lock_timeout: must be greater than zero"),
        "{errs:#?}"
    );
    assert!(
        errs[2].contains(":14:17: upstreams.origin-a.max_in_flight: must be between 0 and 1000000"),
        "{errs:#?}"
    );
    assert!(
        errs[3].contains(":15:17: upstreams.origin-a.queue_timeout:"),
        "{errs:#?}"
    );
    assert!(
        errs[4].contains(
            "route \"www\": cache: \"sometimes\" is not \"direct\", \"always\" or \"off\""
        ),
        "{errs:#?}"
    );
}

#[test]
fn hedging_and_budget_keys_are_parsed_and_their_errors_placed() {
    let with = |retry: &str| load(&format!("{MINIMAL}[routes.retry]\n{retry}\n"));
    let r = |c: Config| c.routes[0].retry.clone();
    let fixed = r(with("hedge_after = \"250ms\"\nbudget = 0\nbudget_min_per_sec = 0").unwrap());
    assert_eq!(
        fixed.hedge_after,
        HedgeAfter::After(Duration::from_millis(250))
    );
    assert_eq!((fixed.budget, fixed.budget_min_per_sec), (0.0, 0));
    assert_eq!(
        r(with("hedge_after = \"off\"").unwrap()).hedge_after,
        HedgeAfter::Off
    );
    let line = MINIMAL.lines().count() + 2;
    for (retry, col, message) in [
        (
            "hedge_after = \"soon\"",
            15,
            "retry.hedge_after: invalid duration \"soon\"",
        ),
        (
            "hedge_after = \"0s\"",
            15,
            "retry.hedge_after: must be greater than zero",
        ),
        (
            "budget = 1.5",
            10,
            "retry.budget: must be a share between 0 and 1, got 1.5",
        ),
        (
            "budget_min_per_sec = -1",
            22,
            "retry.budget_min_per_sec: must be between 0",
        ),
    ] {
        let errs = with(retry).unwrap_err();
        let want = format!("conf/b.toml:{line}:{col}: route \"www\": {message}");
        assert!(
            errs.len() == 1 && errs[0].starts_with(&want),
            "{retry}: {errs:#?}"
        );
    }
}

#[test]
fn failure_rate_keys_default_per_upstream_and_are_checked_at_their_values() {
    let text = r#"
[listen]
http = ["127.0.0.1:8080"]
[defaults.passive]
failure_rate = 0.25
window = "5s"
[upstreams.a]
address = "http://127.0.0.1:1"
passive = { min_requests = 0, failure_rate = 1 }
[upstreams.b]
address = "http://127.0.0.1:2"
[[routes]]
name = "r"
hosts = ["*"]
tiers = ["a", "b"]
standby_share = 0.02
"#;
    let c = load(text).unwrap();
    let (a, b) = (&c.upstreams[0].passive, &c.upstreams[1].passive);
    assert_eq!(
        (a.failure_rate, a.min_requests, a.window.as_secs()),
        (1.0, 0, 5)
    );
    assert_eq!(
        (b.failure_rate, b.min_requests, b.window.as_secs()),
        (0.25, 20, 5)
    );
    assert_eq!(c.routes[0].standby_share, 0.02);

    let bad = r#"
[listen]
http = ["127.0.0.1:8080"]
[defaults.passive]
min_requests = -1
[upstreams.a]
address = "http://127.0.0.1:1"
passive = { window = "1500ms", failure_rate = 0.0 }
[upstreams.b]
address = "http://127.0.0.1:2"
passive = { window = "2m", failure_rate = 1.5 }
[[routes]]
name = "r"
hosts = ["*"]
tiers = ["a"]
standby_share = 1.0
"#;
    let errs = load(bad).unwrap_err();
    // A default's error is reported for each upstream it applies to, at the default.
    let want = [
        "conf/b.toml:5:16: upstreams.a.passive.min_requests: must be between 0 and 1000000, got -1",
        "conf/b.toml:5:16: upstreams.b.passive.min_requests: must be between 0 and 1000000, got -1",
        "conf/b.toml:8:22: upstreams.a.passive.window: must be whole seconds, 1s to 60s",
        "conf/b.toml:8:47: upstreams.a.passive.failure_rate: must be above 0 and at most 1, got 0",
        "conf/b.toml:11:22: upstreams.b.passive.window: must be whole seconds, 1s to 60s",
        "conf/b.toml:11:43: upstreams.b.passive.failure_rate: must be above 0 and at most 1, got 1.5",
        "conf/b.toml:16:17: route \"r\": standby_share: must be at least 0 and below 1, got 1",
    ];
    assert_eq!(errs, want, "{errs:#?}");
}
