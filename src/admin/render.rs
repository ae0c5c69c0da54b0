//! `bascule status`'s terminal view of `/status`: the config line, a routes table (tiers,
//! active tier, pin and its reason, whether its origin is failing, the next failback's delay,
//! the warm standby's share) and an upstreams table
//! (role, state — with the operator's reason while drained —, in-flight count, last probe
//! and whose fault a failed one was, address).

use std::time::SystemTime;

use serde_json::Value;

/// `/status` rendered for a terminal: the config line, a routes table, an upstreams table.
pub fn render(status: &Value, now: SystemTime) -> String {
    let c = &status["config"];
    let mut out = format!(
        "config {}  generation {}  loaded {}\n",
        text(&c["path"]),
        c["generation"],
        text(&c["loaded_at"])
    );
    if let Some(e) = c["last_error"].as_str() {
        out.push_str(&format!(
            "LAST RELOAD FAILED (the running config is kept):\n  {}\n",
            e.replace('\n', "\n  ")
        ));
    }
    out.push('\n');
    let mut routes = vec![row(&[
        "ROUTE", "HOSTS", "PREFIX", "TIERS", "ACTIVE", "PINNED", "ORIGIN", "FAILBACK", "STANDBY",
    ])];
    for r in array(&status["routes"]) {
        let tiers: Vec<Vec<String>> = array(&r["tiers"])
            .iter()
            .map(|t| array(t).iter().map(text).collect())
            .collect();
        let chain: Vec<String> = tiers
            .iter()
            .map(|t| match t.as_slice() {
                [one] => one.clone(),
                group => format!("[{}]", group.join(", ")),
            })
            .collect();
        let active = match r["active_tier"].as_u64() {
            Some(i) => format!(
                "{i} ({})",
                tiers
                    .get(usize::try_from(i).unwrap_or(usize::MAX))
                    .map(|t| t.join(", "))
                    .unwrap_or_default()
            ),
            None => "none usable".to_owned(),
        };
        let pinned = match &r["pinned"] {
            Value::Null => "-".to_owned(),
            p => format!("tier {} ({})", p["tier"], text(&p["reason"])),
        };
        let hosts: Vec<String> = array(&r["hosts"]).iter().map(text).collect();
        routes.push(row(&[
            &text(&r["name"]),
            &hosts.join(","),
            &text(&r["path_prefix"]),
            &chain.join(" > "),
            &active,
            &pinned,
            if r["origin_failing"] == true {
                "FAILING"
            } else {
                "ok"
            },
            &duration_ms(&r["failback_delay_ms"]),
            &percent(&r["standby_share"]),
        ]));
    }
    out.push_str(&table(&routes));
    out.push('\n');
    if let Some(line) = cache_line(&status["cache"]) {
        out.push_str(&line);
        out.push_str("\n\n");
    }
    let mut ups = vec![row(&[
        "UPSTREAM",
        "ROLE",
        "STATE",
        "IN-FLIGHT",
        "LAST PROBE",
        "ADDRESS",
    ])];
    for u in array(&status["upstreams"]) {
        let state = match u["drain_reason"].as_str() {
            Some(r) => format!("{} ({r})", text(&u["state"])),
            None => text(&u["state"]),
        };
        ups.push(row(&[
            &text(&u["name"]),
            &text(&u["role"]),
            &state,
            &u["in_flight"].to_string(),
            &last_probe(&u["last_check"], now),
            &text(&u["address"]),
        ]));
    }
    out.push_str(&table(&ups));
    out
}

/// `cache 1.5 MiB of 256 MiB, 120 entries, hit ratio 93.0% (hit 90, stale 1, …)`; None
/// when the status has no cache.
fn cache_line(c: &Value) -> Option<String> {
    let c = c.as_object()?;
    let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / 1_048_576.0;
    let ratio = c
        .get("hit_ratio")
        .and_then(Value::as_f64)
        .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    let results: Vec<String> = ["hit", "stale", "coalesced", "miss", "bypass"]
        .iter()
        .map(|k| format!("{k} {}", c["requests"][*k].as_u64().unwrap_or(0)))
        .collect();
    Some(format!(
        "cache {:.1} MiB of {:.1} MiB, {} entries, hit ratio {ratio} ({})",
        mib(&c["bytes"]),
        mib(&c["max_size"]),
        c["entries"].as_u64().unwrap_or(0),
        results.join(", ")
    ))
}

fn last_probe(check: &Value, now: SystemTime) -> String {
    if check.is_null() {
        return "not yet".to_owned();
    }
    let age = check["at"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| format!(", {}s ago", d.as_secs()))
        .unwrap_or_default();
    let latency = check["latency_ms"].as_f64().unwrap_or(0.0);
    if check["ok"] == true {
        format!("ok {} in {latency:.1} ms{age}", check["status"])
    } else {
        let whose = match check["fault"].as_str() {
            Some("origin") => " (the origin's fault)",
            _ => "",
        };
        format!("FAILED: {}{whose}{age}", text(&check["error"]))
    }
}

/// A delay in ms as `250ms`, `10s`, `2.5s` (one decimal at most); `-` when absent.
fn duration_ms(ms: &Value) -> String {
    match ms.as_f64() {
        None => "-".to_owned(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0}ms"),
        Some(ms) => format!("{}s", trimmed(ms / 1000.0, 1)),
    }
}

/// A share in [0, 1) as a percentage (`2%`, `0.5%`, two decimals at most); `-` when 0 or
/// absent.
fn percent(share: &Value) -> String {
    match share.as_f64() {
        Some(s) if s > 0.0 => format!("{}%", trimmed(s * 100.0, 2)),
        _ => "-".to_owned(),
    }
}

/// `x` with at most `decimals` decimals and no trailing zeros: `2.50` → `2.5`, `10.0` → `10`.
fn trimmed(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn array(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_renders_as_aligned_tables() {
        let status = serde_json::json!({
            "config": {"path": "config/bascule.toml", "loaded_at": "2026-11-27T10:00:00.000Z",
                       "generation": 3, "last_error": null},
            "upstreams": [
                {"name": "cdn", "role": "cdn", "address": "https://cdn.example:443",
                 "state": "unhealthy", "in_flight": 0,
                 "last_check": {"at": "2026-11-27T10:00:08.000Z", "ok": false,
                 "status": null, "latency_ms": 0.4, "error": "connect: refused",
                 "fault": "cdn"}},
                {"name": "origin", "role": "origin", "address": "http://10.0.0.5:80",
                 "state": "healthy", "in_flight": 2, "last_check": null}],
            "routes": [{"name": "www", "hosts": ["www.example.com"], "path_prefix": "/",
                        "tiers": [["cdn"], ["origin", "origin-b"]], "active_tier": 1,
                        "pinned": null, "origin_failing": false,
                        "failback_delay_ms": 10000, "standby_share": 0.0}],
            "events": []
        });
        let now = humantime::parse_rfc3339("2026-11-27T10:00:10Z").expect("time");
        let out = render(&status, now);
        assert!(
            out.starts_with("config config/bascule.toml  generation 3"),
            "{out}"
        );
        assert!(
            out.contains(
                "www    www.example.com  /       cdn > [origin, origin-b]  1 (origin, origin-b)  -       ok      10s       -"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "cdn       cdn     unhealthy  0          FAILED: connect: refused, 2s ago"
            ),
            "{out}"
        );
        assert!(
            out.contains("origin    origin  healthy    2          not yet"),
            "{out}"
        );
    }

    #[test]
    fn drain_and_pin_reasons_are_shown() {
        let status = serde_json::json!({
            "config": {"path": "b.toml", "loaded_at": "-", "generation": 1, "last_error": null},
            "upstreams": [{"name": "cdn", "address": "https://cdn.example:443",
                           "state": "drained", "drain_reason": "CDN maintenance",
                           "in_flight": 0, "last_check": null}],
            "routes": [{"name": "www", "hosts": ["*"], "path_prefix": "/",
                        "tiers": [["cdn"], ["origin"]], "active_tier": 1,
                        "pinned": {"tier": 1, "reason": "planned change", "at": "-"}}],
            "events": []
        });
        let out = render(&status, SystemTime::UNIX_EPOCH);
        assert!(
            out.contains("cdn       -     drained (CDN maintenance)  0"),
            "{out}"
        );
        assert!(out.contains("tier 1 (planned change)"), "{out}");
    }

    #[test]
    fn an_origin_outage_does_not_read_as_a_cdn_outage() {
        let status = serde_json::json!({
            "config": {"path": "b.toml", "loaded_at": "-", "generation": 1, "last_error": null},
            "upstreams": [{"name": "cdn", "role": "cdn", "address": "https://cdn.example:443",
                           "state": "healthy", "in_flight": 0,
                           "last_check": {"at": "-", "ok": false, "status": 503,
                                          "latency_ms": 3.0, "error": "status 503",
                                          "fault": "origin"}}],
            "routes": [{"name": "www", "hosts": ["*"], "path_prefix": "/",
                        "tiers": [["cdn"], ["origin"]], "active_tier": 0,
                        "pinned": null, "origin_failing": true,
                        "failback_delay_ms": 40000, "standby_share": 0.02}],
            "events": []
        });
        let out = render(&status, SystemTime::UNIX_EPOCH);
        assert!(
            out.contains("0 (cdn)  -       FAILING  40s       2%"),
            "{out}"
        );
        assert!(
            out.contains(
                "cdn       cdn   healthy  0          FAILED: status 503 (the origin's fault)"
            ),
            "{out}"
        );
    }

    #[test]
    fn failback_delays_and_standby_shares_read_as_people_write_them() {
        use serde_json::json;
        for (ms, want) in [
            (json!(250), "250ms"),
            (json!(10000), "10s"),
            (json!(2500), "2.5s"),
            (json!(40000), "40s"),
            (json!(160000), "160s"),
            (Value::Null, "-"),
        ] {
            assert_eq!(duration_ms(&ms), want, "{ms}");
        }
        for (share, want) in [
            (json!(0.0), "-"),
            (json!(0.02), "2%"),
            (json!(0.005), "0.5%"),
            (json!(0.125), "12.5%"),
            (Value::Null, "-"),
        ] {
            assert_eq!(percent(&share), want, "{share}");
        }
    }

    #[test]
    fn the_cache_line_shows_size_entries_and_hit_ratio() {
        let c = serde_json::json!({"max_size": 268435456u64, "bytes": 1572864, "entries": 120,
            "requests": {"hit": 90, "stale": 1, "coalesced": 2, "miss": 5, "bypass": 2},
            "hit_ratio": 0.93});
        assert_eq!(
            cache_line(&c).as_deref(),
            Some("cache 1.5 MiB of 256.0 MiB, 120 entries, hit ratio 93.0% (hit 90, stale 1, coalesced 2, miss 5, bypass 2)")
        );
        assert_eq!(cache_line(&serde_json::Value::Null), None);
    }
}
