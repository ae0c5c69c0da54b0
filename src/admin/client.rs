//! The client side of the admin API: `bascule status` (fetch `/status`, render it as terminal
//! tables) and `bascule health` (the container health check: does the bascule on this host
//! answer its admin API?).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::{BodyExt, Empty};
use serde_json::Value;

/// How long `bascule status` waits for the admin API.
const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `base` + `path` (`base` like `http://127.0.0.1:9901`) with an optional bearer token;
/// the body, or why not.
pub async fn get(base: &str, path: &str, token: Option<&str>) -> Result<Bytes, String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = Request::get(&url);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let exchange = async {
        let resp = send_once(req).await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        match status.as_u16() {
            200 => Ok(body),
            401 => Err(format!(
                "{url}: 401: the admin API needs its token (--token or BASCULE_ADMIN_TOKEN)"
            )),
            code => Err(format!("{url}: {code}: {}", String::from_utf8_lossy(&body))),
        }
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {}s", TIMEOUT.as_secs()))?
}

/// Sends `req` (an absolute `http://host:port/…` URI) on a new HTTP/1.1 connection.
async fn send_once<B>(mut req: Request<B>) -> Result<http::Response<hyper::body::Incoming>, String>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let uri = req.uri().clone();
    let authority = uri
        .authority()
        .ok_or_else(|| "the admin URL needs host:port".to_owned())?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((authority.host().trim_matches(['[', ']']), port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = path.parse::<Uri>().map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        header::HOST,
        http::HeaderValue::from_str(authority.as_str()).map_err(|e| e.to_string())?,
    );
    send.send_request(req)
        .await
        .map_err(|e| crate::client::error_chain(&e))
}

/// Where and how to reach the admin API of the bascule running on `config`: its `[admin]`
/// listen address (an unspecified IP is reached on loopback) and token, read leniently — a
/// config mid-edit must not make a serving container look unhealthy. Defaults when the file
/// or the table is missing: 127.0.0.1:9901, the token from `$BASCULE_ADMIN_TOKEN`.
pub fn admin_of(config: &std::path::Path) -> (std::net::SocketAddr, Option<String>, bool) {
    let default: std::net::SocketAddr = std::net::SocketAddr::from(([127, 0, 0, 1], 9901));
    let env = |name: &str| std::env::var(name).ok();
    let table = std::fs::read_to_string(config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("admin").and_then(|a| a.as_table()).cloned())
        .unwrap_or_default();
    let expand = |v: &toml::Value| {
        v.as_str()
            .and_then(|s| crate::config::units::expand_env(s, env).ok())
    };
    let enabled = table
        .get("enabled")
        .and_then(toml::Value::as_bool)
        .unwrap_or(true);
    let mut addr = table
        .get("listen")
        .and_then(expand)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let token = table
        .get("token")
        .and_then(expand)
        .or_else(|| env("BASCULE_ADMIN_TOKEN"));
    (addr, token, enabled)
}

/// The first plain-HTTP listener of `config` (loopback for an unspecified IP), read leniently;
/// what `bascule health` checks when the admin API is off.
pub fn first_listener(config: &std::path::Path) -> Option<std::net::SocketAddr> {
    let table = std::fs::read_to_string(config)
        .ok()?
        .parse::<toml::Table>()
        .ok()?;
    let listen = table.get("listen")?.as_table()?;
    let first = listen
        .get("http")
        .or_else(|| listen.get("https"))?
        .as_array()?
        .first()?
        .as_str()?;
    let mut addr: std::net::SocketAddr = first.parse().ok()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Some(addr)
}

/// One `GET /status` to `addr` over a direct TCP connection (no name resolution): Ok when it
/// answers 200 within `limit`.
pub async fn probe(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    limit: Duration,
) -> Result<(), String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
        tokio::spawn(conn);
        let mut req = Request::get("/status").header(header::HOST, addr.to_string());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("{e}"))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            code => Err(format!("{addr}/status answered {code}")),
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("{addr}: no answer within {limit:?}"))?
}

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
        "ROUTE", "HOSTS", "PREFIX", "TIERS", "ACTIVE", "PINNED",
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
        ]));
    }
    out.push_str(&table(&routes));
    out.push('\n');
    let mut ups = vec![row(&[
        "UPSTREAM",
        "STATE",
        "IN-FLIGHT",
        "LAST PROBE",
        "ADDRESS",
    ])];
    for u in array(&status["upstreams"]) {
        ups.push(row(&[
            &text(&u["name"]),
            &text(&u["state"]),
            &u["in_flight"].to_string(),
            &last_probe(&u["last_check"], now),
            &text(&u["address"]),
        ]));
    }
    out.push_str(&table(&ups));
    out
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
        format!("FAILED: {}{age}", text(&check["error"]))
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
                {"name": "cdn", "address": "https://cdn.example:443", "state": "unhealthy",
                 "in_flight": 0, "last_check": {"at": "2026-11-27T10:00:08.000Z", "ok": false,
                 "status": null, "latency_ms": 0.4, "error": "connect: refused"}},
                {"name": "origin", "address": "http://10.0.0.5:80", "state": "healthy",
                 "in_flight": 2, "last_check": null}],
            "routes": [{"name": "www", "hosts": ["www.example.com"], "path_prefix": "/",
                        "tiers": [["cdn"], ["origin", "origin-b"]], "active_tier": 1,
                        "pinned": null}],
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
                "www    www.example.com  /       cdn > [origin, origin-b]  1 (origin, origin-b)  -"
            ),
            "{out}"
        );
        assert!(
            out.contains("cdn       unhealthy  0          FAILED: connect: refused, 2s ago"),
            "{out}"
        );
        assert!(
            out.contains("origin    healthy    2          not yet"),
            "{out}"
        );
    }
}
