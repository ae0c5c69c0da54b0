//! The admin API on `[admin] listen` (DESIGN §5): `/status`, `/ready`, `/metrics` (in the
//! format the scraper's `Accept` asks for), `/history` (the last ten minutes of rates,
//! `history`), `/reload`, drain/undrain and pin/unpin, behind the rules of `guard` (browsers it
//! did not serve, DESIGN §7.6) and the bearer-token rule; and the read-only metrics listener on
//! `[admin] metrics_listen` (`GET /metrics` only, no token). Plain HTTP/1.1, JSON answers;
//! never on the request path of proxied traffic.

pub mod client;
pub mod command;
pub mod dashboard;
pub mod guard;
pub mod history;
mod operator;
pub mod ready;
pub mod render;
pub mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::demo::{DemoControl, Mode};
use crate::events::EventLog;
use crate::metrics::{Format, Metrics};
use crate::routing::RoutingTable;
use history::History;
use operator::{by, PinBody, Purge, Reason};
use ready::Readiness;
use status::Status;

/// Largest admin request body read.
const BODY_LIMIT: usize = 64 << 10;

/// The mode a `/demo/NAME/MODE` segment asks for: `ok` (or `heal`), `refuse`, `hang`, `503`.
fn demo_mode(segment: &str) -> Option<Mode> {
    match segment {
        "ok" | "heal" => Some(Mode::Ok),
        "refuse" => Some(Mode::Refuse),
        "hang" => Some(Mode::Hang),
        "503" => Some(Mode::Status(503)),
        _ => None,
    }
}

/// Reloads the config now (blocking): the new generation, or why the file was refused.
pub type ReloadFn = Arc<dyn Fn() -> Result<u64, String> + Send + Sync>;

/// Everything the admin API reads and acts on.
#[derive(Clone)]
pub struct AdminApi {
    /// The serving routing table.
    pub table: Arc<ArcSwap<RoutingTable>>,
    /// Recent events.
    pub events: EventLog,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The last failed reload's message, until the next good one.
    pub last_error: Arc<Mutex<Option<String>>>,
    /// Reloads the config file (blocking; run on the blocking pool).
    pub reload: ReloadFn,
    /// Bearer token every request but the dashboard page must carry, when set.
    pub token: Option<String>,
    /// `[admin] hosts`: names accepted in `Host` besides `localhost` and IP addresses.
    pub hosts: Vec<String>,
    /// `bascule demo`'s simulated upstreams (`/demo`); None outside the demo.
    pub demo: Option<Arc<dyn DemoControl>>,
    /// Whether the process takes new connections (`/ready`).
    pub readiness: Readiness,
    /// The last ten minutes of rates, filled by `History::sample`.
    pub history: Arc<History>,
}

/// What a listener of the admin API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `[admin] listen`: every endpoint, behind the token.
    Full,
    /// `[admin] metrics_listen`: `GET /metrics` only, without a token.
    MetricsOnly,
}

type Answer = Response<Full<Bytes>>;

impl AdminApi {
    /// Serves connections from `listener` with the endpoints of `scope` until `shutdown` is
    /// cancelled.
    pub async fn serve(self, listener: TcpListener, scope: Scope, shutdown: CancellationToken) {
        let api = Arc::new(self);
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(api.handle(req, peer, scope).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    debug!(error = %e, %peer, "admin connection ended with an error");
                }
            });
        }
    }

    /// Answers one admin request on a listener of `scope`.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr, scope: Scope) -> Answer {
        let (parts, body) = req.into_parts();
        if let Err(refusal) = guard::check(&parts, &self.hosts) {
            debug!(method = %parts.method, path = %parts.uri.path(), %refusal, %peer, "admin request refused");
            return json_answer(refusal.status(), &json!({ "error": refusal.to_string() }));
        }
        if scope == Scope::MetricsOnly {
            // Read-only and token-free: nothing here may change state or show more than /metrics.
            return match (&parts.method, parts.uri.path()) {
                (&Method::GET | &Method::HEAD, "/metrics") => self.metrics(&parts.headers),
                (_, "/metrics") => json_answer(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({"error": "method not allowed"}),
                ),
                _ => json_answer(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "this listener serves only GET /metrics"}),
                ),
            };
        }
        // The dashboard's page holds no data: it asks for the token when the API says 401.
        if guard::is_dashboard_page(&parts.method, parts.uri.path()) {
            return dashboard::answer();
        }
        if !guard::authorized(&parts.headers, self.token.as_deref()) {
            let mut r = json_answer(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "missing or wrong bearer token"}),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
        let segments: Vec<&str> = parts.uri.path().trim_matches('/').split('/').collect();
        let answer = match (&parts.method, segments.as_slice()) {
            (&Method::GET, ["status"]) => self.status(),
            (&Method::GET, ["ready"]) => self.ready(),
            (&Method::GET, ["metrics"]) => self.metrics(&parts.headers),
            (&Method::GET, ["history"]) => self.history(parts.uri.query()),
            (&Method::POST, ["reload"]) => self.reload().await,
            (&Method::POST, ["upstreams", name, action @ ("drain" | "undrain")]) => {
                match read_json::<Reason>(body).await {
                    Ok(r) => self.drain(name, action == &"drain", &r.reason_or(peer)),
                    Err(e) => e,
                }
            }
            (&Method::POST, ["routes", name, "pin"]) => match read_json::<PinBody>(body).await {
                Ok(p) => self.pin(name, p.tier, &p.reason.unwrap_or_else(|| by(peer))),
                Err(e) => e,
            },
            (&Method::POST, ["routes", name, "unpin"]) => match read_json::<Reason>(body).await {
                Ok(r) => self.unpin(name, &r.reason_or(peer)),
                Err(e) => e,
            },
            (&Method::POST, ["cache", "purge"]) => match read_json::<Purge>(body).await {
                Ok(p) => self.purge(&p),
                Err(e) => e,
            },
            (&Method::GET, ["demo"]) => self.demo_modes(),
            (&Method::POST, ["demo", name, mode]) => self.demo_set(name, mode),
            (_, ["status"] | ["ready"] | ["reload"] | ["metrics"] | ["history"])
            | (_, ["upstreams", _, "drain" | "undrain"])
            | (_, ["routes", _, "pin" | "unpin"])
            | (_, ["cache", "purge"]) => json_answer(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method not allowed"}),
            ),
            _ => json_answer(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
        };
        debug!(method = %parts.method, path = %parts.uri.path(), status = answer.status().as_u16(), %peer, "admin request");
        answer
    }

    fn status(&self) -> Answer {
        let table = self.table.load_full();
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let status = Status::of(&table, self.events.snapshot(), last_error);
        json_answer(StatusCode::OK, &status)
    }

    /// `GET /history[?after=N]`: the samples after reading number N (all when absent).
    fn history(&self, query: Option<&str>) -> Answer {
        let mut after = 0;
        for (key, value) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match (key, value.parse::<u64>()) {
                ("after", Ok(n)) => after = n,
                ("after", Err(_)) => {
                    let e = format!("after={value:?}: give the `last` of a previous answer");
                    return json_answer(StatusCode::BAD_REQUEST, &json!({ "error": e }));
                }
                _ => {}
            }
        }
        self.history
            .with_answer(after, |a| json_answer(StatusCode::OK, a))
    }

    /// 200 while serving; 503 before the listeners are bound and from SIGTERM on.
    fn ready(&self) -> Answer {
        let phase = self.readiness.phase();
        match phase.not_ready_because() {
            None => json_answer(
                StatusCode::OK,
                &json!({"ready": true, "phase": phase.as_str()}),
            ),
            Some(why) => json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "phase": phase.as_str(), "reason": why}),
            ),
        }
    }

    /// `POST /cache/purge` (DESIGN §7.3): `{"host": "…", "path": "…"}`, a path ending in `*`
    /// purging every path with that prefix.
    fn purge(&self, p: &Purge) -> Answer {
        if p.host.is_empty() || !(p.path.starts_with('/') || p.path == "*") {
            return json_answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({"error": "give host and a path starting with '/' (a trailing '*' purges a prefix)"}),
            );
        }
        let table = self.table.load();
        let Some(store) = table.cache.as_ref() else {
            return json_answer(StatusCode::OK, &json!({"purged": 0}));
        };
        let purged = store.purge(&p.host, &p.path);
        tracing::info!(host = %p.host, path = %p.path, purged, "cache purge");
        json_answer(StatusCode::OK, &json!({ "purged": purged }))
    }

    fn demo_modes(&self) -> Answer {
        let Some(demo) = &self.demo else {
            return json_answer(StatusCode::NOT_FOUND, &json!({"error": "not a demo"}));
        };
        let ups: Vec<_> = demo
            .modes()
            .into_iter()
            .map(|(name, mode)| json!({"name": name, "mode": mode.to_string()}))
            .collect();
        json_answer(StatusCode::OK, &json!({ "upstreams": ups }))
    }

    fn demo_set(&self, name: &str, mode: &str) -> Answer {
        let Some(demo) = &self.demo else {
            return json_answer(StatusCode::NOT_FOUND, &json!({"error": "not a demo"}));
        };
        let Some(m) = demo_mode(mode) else {
            let e = format!("mode {mode:?}: use ok, refuse, hang or 503");
            return json_answer(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": e }));
        };
        match demo.set(name, m) {
            Ok(()) => json_answer(StatusCode::OK, &json!({"upstream": name, "mode": mode})),
            Err(e) => json_answer(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": e })),
        }
    }

    /// The exposition in the format the scraper's `Accept` asks for ([`Format::negotiate`]).
    fn metrics(&self, headers: &http::HeaderMap) -> Answer {
        let table = self.table.load_full();
        self.metrics.set_state(
            table
                .upstreams
                .iter()
                .map(|u| (u.name(), u.live.health.is_available())),
            table
                .routes
                .iter()
                .map(|r| (r.spec.name.as_str(), r.state.active())),
        );
        self.metrics.set_cache_state(
            table.cache.as_ref().map_or(0, |c| c.bytes()),
            table
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name(), u.gate.as_ref()?.queue_depth()))),
        );
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let mut r = Response::new(Full::new(Bytes::from(self.metrics.encode(format))));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        r.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept"));
        r.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        r
    }

    async fn reload(&self) -> Answer {
        let reload = self.reload.clone();
        match tokio::task::spawn_blocking(move || reload()).await {
            Ok(Ok(generation)) => json_answer(StatusCode::OK, &json!({ "generation": generation })),
            Ok(Err(e)) => json_answer(StatusCode::UNPROCESSABLE_ENTITY, &json!({ "error": e })),
            Err(e) => json_answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": format!("reload task failed: {e}") }),
            ),
        }
    }
}

/// Reads an optional JSON body (empty means the default), or answers 400/413.
async fn read_json<T: for<'de> Deserialize<'de> + Default>(body: Incoming) -> Result<T, Answer> {
    let bytes = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(json_answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "body too large or unreadable"}),
            ))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        json_answer(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("invalid JSON body: {e}") }),
        )
    })
}

fn not_found(what: &str, name: &str) -> Answer {
    json_answer(
        StatusCode::NOT_FOUND,
        &json!({ "error": format!("no {what} named {name:?}") }),
    )
}

/// A JSON answer with `status`.
pub fn json_answer<T: serde::Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!("{{\"error\":\"cannot serialize the answer: {e}\"}}").into_bytes()
    });
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}
