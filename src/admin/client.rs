//! The client side of the admin API: the exchange `bascule status`, `drain`, `undrain`, `pin`
//! and `unpin` make (see `command` for what they send and print), and `bascule health` (the
//! container health check: does the bascule on this host answer its admin API, and with
//! `--ready`, does it take new connections?).

use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use serde_json::Value;

/// How long the commands wait for the admin API.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One request to the admin API at `base` (like `http://127.0.0.1:9901`): `method` `path`,
/// with the bearer token if any and, when `json` is given, that JSON body (`Content-Type:
/// application/json`, which the admin API requires of every POST). The status and the body,
/// or why no answer came.
pub async fn exchange(
    method: Method,
    base: &str,
    path: &str,
    token: Option<&str>,
    json: Option<&Value>,
) -> Result<(StatusCode, Bytes), String> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = Request::builder().method(method).uri(&url);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match json {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("{url}: {e}"))?;
    let exchange = async {
        let resp = send_once(req).await.map_err(|e| {
            format!("{url}: {e} (is bascule running with its admin API there? --admin URL)")
        })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        Ok((status, body))
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

/// GETs `base` + `path` with an optional bearer token: the body of a 200, or why not.
pub async fn get(base: &str, path: &str, token: Option<&str>) -> Result<Bytes, String> {
    let (status, body) = exchange(Method::GET, base, path, token, None).await?;
    if status == StatusCode::OK {
        Ok(body)
    } else {
        Err(refusal(base, path, status, &body, token.is_some()))
    }
}

/// Says why the admin API did not answer 200: its `{"error": …}` message, and for a 401 what
/// to do about the token.
pub fn refusal(base: &str, path: &str, status: StatusCode, body: &[u8], had_token: bool) -> String {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let code = status.as_u16();
    if status == StatusCode::UNAUTHORIZED {
        return if had_token {
            format!("{url}: 401: the admin API refused this token")
        } else {
            format!("{url}: 401: the admin API needs its token (--token or BASCULE_ADMIN_TOKEN)")
        };
    }
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    format!("{url}: {code}: {message}")
}

/// `bascule health [--ready]`: Ok when the bascule running on `config` answers `GET /status`
/// (or, `ready`, `GET /ready`) within 3 s; with its admin API off, when its first listener
/// accepts a connection.
pub async fn health(config: &std::path::Path, ready: bool) -> Result<(), String> {
    let limit = Duration::from_secs(3);
    let (admin, token, enabled) = admin_of(config);
    if enabled {
        let path = if ready { "/ready" } else { "/status" };
        return probe(admin, path, token.as_deref(), limit).await;
    }
    let addr = first_listener(config)
        .ok_or_else(|| format!("{}: no listener to check", config.display()))?;
    tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("{addr}: no answer within {limit:?}"))?
        .map(drop)
        .map_err(|e| format!("{addr}: {e}"))
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

/// One `GET path` (`/status`, or `/ready`) to `addr` over a direct TCP connection (no name
/// resolution): Ok when it answers 200 within `limit`.
pub async fn probe(
    addr: std::net::SocketAddr,
    path: &str,
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
        let mut req = Request::get(path).header(header::HOST, addr.to_string());
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
            code => Err(format!("{addr}{path} answered {code}")),
        }
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("{addr}: no answer within {limit:?}"))?
}
