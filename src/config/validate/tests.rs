use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret".into()),
        "ORIGIN" => Some("http://127.0.0.1:9000".into()),
        _ => None,
    }
}

/// `text` validated as `conf/b.toml`, its errors as `FILE:LINE:COL: message` lines.
pub(super) fn load(text: &str) -> Result<Config, Vec<String>> {
    parse(Path::new("conf/b.toml"), text, &env).map_err(|e| match e {
        ConfigError::Invalid(d) => d.iter().map(ToString::to_string).collect(),
        ConfigError::Read { .. } => vec!["read".into()],
    })
}

/// A small valid config: one listener, a CDN and an origin (from `${ORIGIN}`), one route.
pub(super) const MINIMAL: &str = r#"
[listen]
http = ["127.0.0.1:8080"]

[upstreams.cdn]
address = "https://edge.cdn.example.net"
host = "www.example.com"

[upstreams.origin-a]
address = "${ORIGIN}"

[[routes]]
name = "www"
hosts = ["www.example.com", "*.example.com"]
tiers = ["cdn", ["origin-a"]]
"#;

#[test]
fn a_minimal_file_gets_every_default() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.listen.http, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert!(c.admin.enabled);
    assert_eq!(c.admin.listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(c.limits.max_header_bytes, 65536);
    assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
    assert_eq!(c.limits.max_connections, 10_000);
    assert_eq!(
        c.log,
        Log {
            format: LogFormat::Text,
            access: true
        }
    );
    let cdn = &c.upstreams[0];
    assert_eq!(cdn.name, "cdn");
    assert_eq!(cdn.sni.as_deref(), Some("www.example.com"));
    assert_eq!(cdn.health.host, "www.example.com");
    assert_eq!(cdn.health.path, "/healthz");
    assert_eq!((cdn.health.rise, cdn.health.fall), (2, 2));
    assert_eq!(cdn.passive.consecutive_failures, 3);
    assert_eq!(cdn.passive.failure_rate, 0.5);
    assert_eq!(cdn.passive.min_requests, 20);
    assert_eq!(cdn.passive.window, Duration::from_secs(10));
    let origin = &c.upstreams[1];
    assert_eq!(origin.address.port, 9000);
    assert_eq!(origin.sni, None);
    assert_eq!(origin.health.host, "127.0.0.1:9000");
    let r = &c.routes[0];
    assert_eq!(r.path_prefix, "/");
    assert_eq!(r.retry.attempts, 3);
    assert!(r.retry.on_status.contains(503) && r.retry.on_status.contains(525));
    assert!(!r.retry.on_status.contains(500));
    assert_eq!(r.retry.buffer_body, 65536);
    assert_eq!(r.retry.hedge_after, HedgeAfter::Auto);
    assert_eq!((r.retry.budget, r.retry.budget_min_per_sec), (0.2, 10));
    assert_eq!(r.failback_delay, Duration::from_secs(10));
    assert_eq!(r.standby_share, 0.0);
    assert_eq!(
        r.summary(),
        "route www hosts=www.example.com,*.example.com prefix=/ tiers: cdn > origin-a"
    );
}

#[test]
fn the_shipped_example_config_is_valid() {
    let text = include_str!("../../../config/bascule.example.toml");
    let env = |k: &str| (k == "BASCULE_ADMIN_TOKEN").then(|| "t".to_owned());
    let r = parse(Path::new("config/bascule.example.toml"), text, &env);
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn an_undefined_tier_points_at_its_name() {
    let text = MINIMAL.replace(
        r#"tiers = ["cdn", ["origin-a"]]"#,
        r#"tiers = ["cdn", ["origin-a", "fastly"]]"#,
    );
    let errs = load(&text).unwrap_err();
    assert_eq!(
        errs,
        vec![r#"conf/b.toml:15:30: route "www": tier "fastly" is not a defined upstream"#]
    );
}

#[test]
fn an_unknown_key_is_reported_alone_at_the_key() {
    let text = MINIMAL.replace(
        "host = \"www.example.com\"",
        "hots = \"www.example.com\"\nconnect_timeout = \"x\"",
    );
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("conf/b.toml:7:1: unknown field `hots`"),
        "{errs:?}"
    );
}

#[test]
fn every_value_error_of_a_file_is_reported_together() {
    let text = r#"
[listen]
http = ["nope"]
[limits]
header_timeout = "10"
[upstreams.a]
address = "ftp://x"
[[routes]]
name = "r"
hosts = ["a:80"]
tiers = ["b"]
[routes.retry]
on_status = [700, "520-530"]
"#;
    let errs = load(text).unwrap_err();
    assert_eq!(errs.len(), 6, "{errs:#?}");
    assert!(
        errs[0].starts_with("conf/b.toml:3:9: listen.http: invalid address"),
        "{errs:#?}"
    );
    assert!(errs[1]
        .starts_with("conf/b.toml:5:18: limits.header_timeout: duration \"10\" needs a unit"));
    assert!(errs[2].starts_with("conf/b.toml:7:11: upstreams.a.address:"));
    assert!(errs[3].starts_with("conf/b.toml:10:10: route \"r\": host: invalid host pattern"));
    assert!(
        errs[4].starts_with("conf/b.toml:11:10: route \"r\": tier \"b\" is not a defined upstream")
    );
    assert!(errs[5].starts_with(
        "conf/b.toml:13:14: route \"r\": retry.on_status: status 700 is outside 100-599"
    ));
}

#[test]
fn an_unset_variable_points_at_its_string() {
    let text = format!("{MINIMAL}\n[admin]\ntoken = \"${{NOPE}}\"\n");
    let errs = load(&text).unwrap_err();
    assert_eq!(
        errs,
        vec!["conf/b.toml:18:9: admin.token: environment variable NOPE is not set"]
    );
}

#[test]
fn a_public_admin_address_needs_a_token() {
    let text = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9901\"\n");
    let errs = load(&text).unwrap_err();
    assert!(errs[0].contains("admin.token is required"), "{errs:?}");
    let ok = format!("{MINIMAL}\n[admin]\nlisten = \"0.0.0.0:9901\"\ntoken = \"${{TOKEN}}\"\n");
    assert_eq!(load(&ok).unwrap().admin.token.as_deref(), Some("s3cret"));
}

#[test]
fn admin_hosts_are_names_without_ports_reported_at_the_value() {
    let text = format!("{MINIMAL}\n[admin]\nhosts = [\"Admin.Internal.\", \"admin:9901\"]\n");
    let errs = load(&text).unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("conf/b.toml:18:29: admin.hosts: invalid host name \"admin:9901\""),
        "{errs:?}"
    );
    let ok = format!("{MINIMAL}\n[admin]\nhosts = [\"Admin.Internal.\"]\n");
    assert_eq!(load(&ok).unwrap().admin.hosts, vec!["admin.internal"]);
    assert!(load(MINIMAL).unwrap().admin.hosts.is_empty());
}

#[test]
fn the_metrics_listener_needs_no_token_but_a_port_of_its_own() {
    let ok = format!("{MINIMAL}\n[admin]\nmetrics_listen = \"0.0.0.0:9902\"\n");
    let c = load(&ok).unwrap();
    assert_eq!(
        c.admin.metrics_listen,
        Some("0.0.0.0:9902".parse().unwrap())
    );
    assert_eq!(c.admin.token, None);
    assert_eq!(load(MINIMAL).unwrap().admin.metrics_listen, None);
    let same = format!("{MINIMAL}\n[admin]\nmetrics_listen = \"127.0.0.1:9901\"\n");
    let errs = load(&same).unwrap_err();
    assert_eq!(
        errs,
        vec!["conf/b.toml:18:18: admin.metrics_listen: 127.0.0.1:9901 is also admin.listen; give it a port of its own"]
    );
}

#[test]
fn syntax_errors_carry_a_position() {
    let errs = load("[listen\nhttp = 1").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("conf/b.toml:1:"), "{errs:?}");
}

#[test]
fn missing_required_keys_are_named() {
    let errs = load("[upstreams.a]\naddress = \"http://x\"\n").unwrap_err();
    assert!(errs[0].contains("listen"), "{errs:?}");
    let errs = load("[listen]\nhttp=[\"127.0.0.1:1\"]\n[upstreams.a]\nhost = \"x\"\n").unwrap_err();
    assert!(errs[0].contains("address"), "{errs:?}");
}

#[test]
fn duplicate_routes_and_repeated_upstreams_are_refused() {
    let text = format!("{MINIMAL}\n[[routes]]\nname = \"www\"\nhosts = [\"www.example.com\"]\ntiers = [\"cdn\", \"cdn\"]\n");
    let errs = load(&text).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("duplicate route name")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("already routed by route")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("more than one place")),
        "{errs:#?}"
    );
}

#[test]
fn sni_follows_sni_then_host_then_address_and_never_an_ip() {
    let text = r#"
[listen]
http = ["127.0.0.1:1"]
[upstreams.a]
address = "https://edge.example.net:8443"
[upstreams.b]
address = "https://10.0.0.1"
host = "www.example.com:8443"
[upstreams.c]
address = "https://10.0.0.1"
sni = "origin.example.com"
[upstreams.d]
address = "https://[::1]"
"#;
    let c = load(text).unwrap();
    let sni: Vec<Option<&str>> = c.upstreams.iter().map(|u| u.sni.as_deref()).collect();
    assert_eq!(
        sni,
        vec![
            Some("edge.example.net"),
            Some("www.example.com"),
            Some("origin.example.com"),
            None
        ]
    );
    assert_eq!(c.upstreams[0].health.host, "edge.example.net:8443");
    assert_eq!(c.upstreams[3].health.host, "[::1]");
}

#[test]
fn strip_port_handles_names_and_ipv6() {
    assert_eq!(strip_port("Example.com:8080"), "Example.com");
    assert_eq!(strip_port("example.com"), "example.com");
    assert_eq!(strip_port("[::1]:80"), "::1");
    assert_eq!(strip_port("::1"), "::1");
}
