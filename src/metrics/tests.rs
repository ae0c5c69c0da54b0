//! The Prometheus registry as scraped: reloads, requests by route/upstream/code, both
//! exposition formats' counter names, state gauges.

use super::*;
use std::time::Duration;

#[test]
fn reloads_are_counted_by_result() {
    let m = Metrics::new();
    m.reloaded(true, 2);
    m.reloaded(false, 2);
    m.reloaded(false, 2);
    let text = m.encode(Format::Text);
    assert!(
        text.contains("bascule_config_reloads_total{result=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("bascule_config_reloads_total{result=\"error\"} 2"),
        "{text}"
    );
    assert!(text.contains("bascule_config_generation 2"), "{text}");
}

#[test]
fn requests_are_counted_by_route_upstream_and_code() {
    let m = Arc::new(Metrics::new());
    let r = m.route("www", vec!["cdn".into(), "origin".into()]);
    r.request(Some(1), 200, Duration::from_millis(3));
    r.request(Some(1), 200, Duration::from_millis(30));
    r.request(None, 502, Duration::from_secs(40));
    r.request(None, 451, Duration::from_millis(1));
    let text = m.encode(Format::Text);
    assert!(
        text.contains(r#"bascule_requests_total{route="www",upstream="origin",code="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_requests_total{route="www",upstream="-",code="502"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_request_duration_seconds_bucket{le="0.005",route="www"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_request_duration_seconds_count{route="www"} 4"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_requests_total{route="www",upstream="-",code="451"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"le="+Inf""#), "{text}");
}

#[test]
fn both_formats_name_counter_families_as_they_require() {
    let m = Arc::new(Metrics::new());
    let route = m.route("www", vec!["cdn".into()]);
    route.request(Some(0), 200, Duration::from_millis(3));
    m.upstream("cdn").attempt(Outcome::Ok);
    m.failover("www", "0", "1");
    m.set_state([("cdn", true)], [("www", Some(0))]);
    let om = m.encode(Format::OpenMetrics);
    assert!(
        om.contains("# TYPE bascule_config_reloads counter\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let text = m.encode(Format::Text);
    assert!(
        text.contains("# TYPE bascule_config_reloads_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
    // The crate writes HELP unescaped: no text may need escaping in either format.
    let helps: Vec<&str> = om.lines().filter(|l| l.starts_with("# HELP")).collect();
    assert_eq!(helps.len(), 13, "{om}");
    assert!(helps.iter().all(|l| !l.contains(['"', '\\'])), "{om}");
}

#[test]
fn state_gauges_follow_the_table() {
    let m = Metrics::new();
    m.set_state([("cdn", false), ("origin", true)], [("www", None)]);
    let text = m.encode(Format::Text);
    assert!(
        text.contains(r#"bascule_upstream_up{upstream="cdn"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_upstream_up{upstream="origin"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"bascule_route_active_tier{route="www"} -1"#),
        "{text}"
    );
    m.set_state([("origin", true)], [("www", Some(1))]);
    let text = m.encode(Format::Text);
    assert!(!text.contains(r#"upstream="cdn""#), "{text}");
    assert!(
        text.contains(r#"bascule_route_active_tier{route="www"} 1"#),
        "{text}"
    );
}
