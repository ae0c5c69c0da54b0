//! The request path: one routing-snapshot load per request, head checks, path normalization,
//! route match, header rewrite, then the forwarder walks the attempt plan. Holds no locks.

pub mod body;
pub mod error;
pub mod forward;
pub mod head;
pub mod headers;
pub mod host;
pub mod path;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{header, HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tracing::info;

use crate::metrics::Metrics;
use crate::routing::RoutingTable;
use body::ProxyBody;

static X_BASCULE_UPSTREAM: HeaderName = HeaderName::from_static("x-bascule-upstream");
static X_BASCULE_ATTEMPTS: HeaderName = HeaderName::from_static("x-bascule-attempts");

/// The proxy: shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    table: Arc<ArcSwap<RoutingTable>>,
    metrics: Arc<Metrics>,
    /// Longest request target (path and query) forwarded; longer is 414.
    max_target: usize,
}

impl Proxy {
    /// A proxy serving whatever table `table` holds at each request, counting into `metrics`;
    /// its request-target limit follows `max_header_bytes` (fixed until restart, like it).
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        metrics: Arc<Metrics>,
        max_header_bytes: usize,
    ) -> Proxy {
        Proxy {
            table,
            metrics,
            max_target: head::max_target(max_header_bytes),
        }
    }

    /// Handles one client request from `client`.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: &headers::Peer,
    ) -> Response<ProxyBody> {
        let peer = client.addr;
        let start = Instant::now();
        // One snapshot for the whole request: a reload meanwhile does not affect it.
        let table = self.table.load_full();
        let (mut parts, body) = req.into_parts();
        if let Err(rejection) = head::check(&parts, self.max_target) {
            return self.unrouted(rejection.response(), &table, &parts, start, peer);
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
                return self.unrouted(resp, &table, &parts, start, peer);
            }
        };
        let Some(route) = table.route(host, &path) else {
            return self.unrouted(error::no_route(), &table, &parts, start, peer);
        };
        // Forwarded as routed: the target is rebuilt only when normalization changed it.
        let normalized = match path {
            Cow::Borrowed(_) => None,
            Cow::Owned(p) => match path::with_path(&parts.uri, &p) {
                Ok(uri) => Some(uri),
                Err(_) => return self.unrouted(error::bad_request(), &table, &parts, start, peer),
            },
        };
        let trusted = table
            .rewrite
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        let version = parts.version;
        // Kept for the access line only.
        let logged = table
            .config
            .log
            .access
            .then(|| (parts.method.clone(), parts.uri.clone()));
        if let Some(uri) = normalized {
            parts.uri = uri;
        }
        headers::rewrite_request(
            &mut parts.headers,
            client,
            trusted,
            received_host.as_ref(),
            None,
        );
        let (mut resp, report) = forward::forward(route, parts, body, received_host.clone()).await;
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
                h.insert(X_BASCULE_UPSTREAM.clone(), u.name_header.clone());
            }
            h.insert(
                X_BASCULE_ATTEMPTS.clone(),
                HeaderValue::from(report.attempts),
            );
        }
        if let Some((method, uri)) = logged {
            info!(
                target: "access",
                route = %route.spec.name,
                upstream,
                attempts = report.attempts,
                method = %method,
                host,
                path = %uri.path(),
                status = resp.status().as_u16(),
                ms = start.elapsed().as_secs_f64() * 1000.0,
                peer = %peer,
            );
        }
        resp
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
        access_log(table, parts, status, "-", "-", 0, start, peer);
        resp
    }
}

#[allow(clippy::too_many_arguments)]
fn access_log(
    table: &RoutingTable,
    parts: &http::request::Parts,
    status: u16,
    route: &str,
    upstream: &str,
    attempts: usize,
    start: Instant,
    peer: SocketAddr,
) {
    if !table.config.log.access {
        return;
    }
    info!(
        target: "access",
        route,
        upstream,
        attempts,
        method = %parts.method,
        path = %parts.uri.path(),
        status,
        ms = start.elapsed().as_secs_f64() * 1000.0,
        peer = %peer,
    );
}
