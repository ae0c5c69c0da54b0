//! The request path: one routing-snapshot load per request, head checks, path normalization,
//! route match, header rewrite, then the origin shield (`shield`: the cache) and the forwarder
//! behind it, which walks the attempt plan. Holds no locks outside the cache store's shards
//! (and, on a miss of a cacheable request, the map of requests in flight).

mod attempt;
mod attempts;
pub mod blame;
pub mod body;
mod client_body;
pub mod error;
pub mod forward;
pub mod head;
pub mod headers;
pub mod host;
pub mod path;
pub mod shield;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{header, HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tokio::sync::Semaphore;
use tracing::info;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use body::ProxyBody;
use error::Failure;

static X_BASCULE_UPSTREAM: HeaderName = HeaderName::from_static("x-bascule-upstream");
static X_BASCULE_ATTEMPTS: HeaderName = HeaderName::from_static("x-bascule-attempts");
static X_BASCULE_CACHE: HeaderName = HeaderName::from_static("x-bascule-cache");

/// The proxy: shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    table: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    /// `limits.body_timeout`.
    body_timeout: Duration,
    /// `limits.body_buffer_per_connection`.
    body_buffer: usize,
    /// `limits.max_in_flight_per_connection`.
    max_in_flight: usize,
    /// Longest request target (path and query) forwarded; longer is 414.
    max_target: usize,
}

/// One client connection as the request path sees it: the peer, and the connection's share of
/// bascule's resources — how many of its requests may be in flight upstream at once (HTTP/2
/// multiplexes; an HTTP/1.1 connection has one request at a time anyway) and how many bytes of
/// request bodies it holds buffered.
#[derive(Debug)]
pub struct ClientConn {
    /// The peer, for the forwarded headers.
    pub peer: headers::Peer,
    slots: Arc<Semaphore>,
    buffered: AtomicUsize,
}

/// An HTTP/2 stream to reset rather than answer (its body stalled past `body_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("request body stalled: stream reset")]
pub struct Reset;

impl Proxy {
    /// A proxy serving whatever table `table` holds at each request, counting into `metrics`,
    /// with the per-connection limits of `limits` (fixed until restart).
    pub fn new(table: Arc<ArcSwap<RoutingTable>>, metrics: Arc<Metrics>, limits: &Limits) -> Proxy {
        Proxy {
            table,
            metrics,
            body_timeout: limits.body_timeout,
            body_buffer: limits.body_buffer_per_connection,
            max_in_flight: limits.max_in_flight_per_connection,
            max_target: head::max_target(limits.max_header_bytes),
        }
    }

    /// The metrics the proxy counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The request path's state of a new client connection from `addr`.
    pub fn connection(&self, addr: SocketAddr, https: bool) -> ClientConn {
        ClientConn {
            peer: headers::Peer::new(addr, https),
            slots: Arc::new(Semaphore::new(self.max_in_flight)),
            buffered: AtomicUsize::new(0),
        }
    }

    /// Handles one client request on `conn`; `Err` resets an HTTP/2 stream whose body stalled.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ClientConn,
    ) -> Result<Response<ProxyBody>, Reset> {
        let client = &conn.peer;
        let peer = client.addr;
        let start = Instant::now();
        // One snapshot for the whole request: a reload meanwhile does not affect it.
        let table = self.table.load_full();
        let (mut parts, body) = req.into_parts();
        if let Err(rejection) = head::check(&parts, self.max_target) {
            return Ok(self.unrouted(rejection.response(), &table, &parts, start, peer));
        }
        // HTTP/2 carries the host in :authority; absolute-form HTTP/1 targets too.
        let received_host = match parts.uri.authority() {
            Some(a) => HeaderValue::from_str(a.as_str()).ok(),
            None => parts.headers.get(header::HOST).cloned(),
        };
        let host = received_host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        // `OPTIONS *` is the one target that is not a path; it is routed as it is.
        let path = if parts.method == Method::OPTIONS && parts.uri.path() == "*" {
            Ok(Cow::Borrowed("*"))
        } else {
            path::normalize_path(parts.uri.path())
        };
        let path = match path {
            Ok(p) => p,
            Err(e) => {
                let resp = head::Rejection::Path(e).response();
                return Ok(self.unrouted(resp, &table, &parts, start, peer));
            }
        };
        let Some(route) = table.route(host, &path) else {
            return Ok(self.unrouted(error::no_route(), &table, &parts, start, peer));
        };
        // Forwarded as routed: the target is rebuilt only when normalization changed it.
        let normalized = match path {
            Cow::Borrowed(_) => None,
            Cow::Owned(p) => match path::with_path(&parts.uri, &p) {
                Ok(uri) => Some(uri),
                Err(_) => {
                    return Ok(self.unrouted(error::bad_request(), &table, &parts, start, peer))
                }
            },
        };
        let trusted = table
            .rewrite
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        let version = parts.version;
        // Kept for the access line only (as the client sent it).
        let logged = table
            .config
            .log
            .access
            .then(|| (parts.method.clone(), parts.uri.clone(), host.to_owned()));
        if let Some(uri) = normalized {
            parts.uri = uri;
        }
        headers::rewrite_request(&mut parts.headers, client, trusted, received_host.as_ref());
        // An HTTP/2 connection's requests share its upstream slots; waiting for one holds no
        // upstream resource (HTTP/1.1 has one request at a time: no slot needed).
        let slot = match version {
            http::Version::HTTP_2 => conn.slots.clone().acquire_owned().await.ok(),
            _ => None,
        };
        let limits = client_body::BodyLimits {
            timeout: self.body_timeout,
            buffered: &conn.buffered,
            cap: self.body_buffer,
        };
        let (mut resp, report, cached) = shield::serve(
            route,
            parts,
            body,
            received_host.clone(),
            &limits,
            table.cache.as_ref(),
            &table.config.cache,
            host,
            start,
        )
        .await;
        if let Some(result) = cached {
            route.metrics.cache(result);
        }
        if let Some(slot) = slot {
            resp.body_mut().hold(slot);
        }
        let reset = version == http::Version::HTTP_2 && report.failure == Some(Failure::ClientBody);
        // The client's protocol version, whatever the upstream spoke.
        *resp.version_mut() = version;
        let answered = report.pick.map(|p| route.index(p));
        route
            .metrics
            .request(answered, resp.status().as_u16(), start.elapsed());
        let upstream = report.upstream.as_ref().map_or("-", |u| u.name());
        if table.rewrite.debug_headers {
            let h = resp.headers_mut();
            if let Some(u) = &report.upstream {
                h.insert(X_BASCULE_UPSTREAM.clone(), u.live.name_header.clone());
            }
            h.insert(
                X_BASCULE_ATTEMPTS.clone(),
                HeaderValue::from(report.attempts),
            );
            if let Some(result) = cached {
                h.insert(
                    X_BASCULE_CACHE.clone(),
                    HeaderValue::from_static(result.as_str()),
                );
            }
        }
        if let Some((method, uri, host)) = &logged {
            access_log(&Access {
                route: &route.spec.name,
                upstream,
                attempts: report.attempts,
                method,
                host,
                path: uri.path(),
                status: resp.status().as_u16(),
                start,
                peer,
            });
        }
        if reset {
            return Err(Reset);
        }
        Ok(resp)
    }

    /// Counts and logs a local answer given before a route was chosen, and returns it.
    fn unrouted(
        &self,
        resp: Response<ProxyBody>,
        table: &RoutingTable,
        parts: &http::request::Parts,
        start: Instant,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let status = resp.status().as_u16();
        self.metrics
            .unrouted()
            .request(None, status, start.elapsed());
        if table.config.log.access {
            let host = parts
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| {
                    parts
                        .headers
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                })
                .unwrap_or("-");
            access_log(&Access {
                route: "-",
                upstream: "-",
                attempts: 0,
                method: &parts.method,
                host,
                path: parts.uri.path(),
                status,
                start,
                peer,
            });
        }
        resp
    }
}

/// One access-log line: what every way a request can end reports.
struct Access<'a> {
    route: &'a str,
    upstream: &'a str,
    attempts: usize,
    method: &'a Method,
    host: &'a str,
    path: &'a str,
    status: u16,
    start: Instant,
    peer: SocketAddr,
}

/// Writes the access line of `a` (target `access`), the time in milliseconds to two decimals.
fn access_log(a: &Access<'_>) {
    let ms = crate::events::millis(a.start.elapsed());
    info!(
        target: "access",
        route = a.route,
        upstream = a.upstream,
        attempts = a.attempts,
        method = %a.method,
        host = a.host,
        path = a.path,
        status = a.status,
        ms,
        peer = %a.peer,
    );
}
