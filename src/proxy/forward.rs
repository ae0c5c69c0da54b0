//! Walks a request's attempt plan: builds each attempt, sends it with the upstream's response
//! deadline, classifies failures, and decides whether the next attempt is allowed (replay
//! safety). Once response headers are passed to the client nothing is retried.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Uri};
use http::{header, HeaderValue, Method, Request, Response, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::debug;

use super::body::{ProxyBody, Stream, UpstreamBody};
use super::error::{self, Failure};
use super::headers;
use crate::routing::{Route, Upstream};
use crate::select;

/// What the forwarder did, for the access log and debug headers.
#[derive(Debug, Default)]
pub struct Report {
    /// The upstream whose response was returned, if any.
    pub upstream: Option<Arc<Upstream>>,
    /// Where that upstream is in the route's tiers.
    pub pick: Option<select::Pick>,
    /// Attempts made.
    pub attempts: usize,
}

/// The client's request body as the forwarder holds it.
enum ClientBody {
    /// None at all.
    Empty,
    /// Wholly buffered: replayable.
    Full(Bytes),
    /// Streamed; `None` once an attempt consumed it.
    Stream(Option<Stream>),
}

/// Reads up to `limit` bytes of `body`, so that small bodies can be replayed.
async fn prepare(mut body: Incoming, limit: usize) -> Result<ClientBody, hyper::Error> {
    if body.is_end_stream() {
        return Ok(ClientBody::Empty);
    }
    if body.size_hint().lower() > limit as u64 {
        return Ok(ClientBody::Stream(Some(Stream {
            prefix: VecDeque::new(),
            rest: body,
        })));
    }
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        total += data.len();
        chunks.push_back(data);
        if total > limit {
            return Ok(ClientBody::Stream(Some(Stream {
                prefix: chunks,
                rest: body,
            })));
        }
    }
    Ok(match chunks.len() {
        0 => ClientBody::Empty,
        1 => ClientBody::Full(chunks.pop_front().unwrap_or_default()),
        _ => {
            let mut all = BytesMut::with_capacity(total);
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            ClientBody::Full(all.freeze())
        }
    })
}

/// Methods that must not be replayed once sent (DESIGN §4).
fn idempotent(m: &Method) -> bool {
    !(m == Method::POST || m == Method::PATCH || m == Method::CONNECT)
}

/// Forwards one request over `route`'s plan. `parts.headers` are already rewritten except Host;
/// `received_host` is the client's Host as received.
pub async fn forward(
    route: &Route,
    mut parts: Parts,
    body: Incoming,
    received_host: Option<HeaderValue>,
) -> (Response<ProxyBody>, Report) {
    let retry = &route.spec.retry;
    let mut report = Report::default();
    let mut body = match prepare(body, retry.buffer_body).await {
        Ok(b) => b,
        Err(e) => {
            debug!(error = %e, "client body could not be read");
            return (error::bad_request(), report);
        }
    };
    let replayable_method = idempotent(&parts.method);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Parsed on first need: an upstream with its own `host` never uses it.
    let mut client_authority: Option<Option<Authority>> = None;
    parts.version = Version::HTTP_11;

    let plan = select::plan(
        &route.tiers,
        route.state.active(),
        retry.attempts,
        route.next_rr(),
        |u| u.health.is_available(),
    );
    let picks = plan.picks();
    let mut last_failure: Option<Failure> = None;
    let mut held: Option<Response<ProxyBody>> = None;

    for (i, pick) in picks.iter().enumerate() {
        let upstream = &route.tiers[usize::from(pick.tier)][usize::from(pick.member)];
        let last_try = i + 1 == picks.len();
        let (attempt_body, mut back) = match &mut body {
            ClientBody::Empty => (UpstreamBody::Empty, None),
            ClientBody::Full(b) => (UpstreamBody::Full(Some(b.clone())), None),
            ClientBody::Stream(slot) => match slot.take() {
                Some(s) => {
                    let (b, rx) = UpstreamBody::returnable(s);
                    (b, Some(rx))
                }
                None => break,
            },
        };
        let replayable = replayable_method && !matches!(body, ClientBody::Stream(_));
        let authority = upstream
            .host_authority
            .clone()
            .or_else(|| {
                client_authority
                    .get_or_insert_with(|| {
                        received_host
                            .as_ref()
                            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                    })
                    .clone()
            })
            .unwrap_or_else(|| {
                Authority::from_maybe_shared(Bytes::from(upstream.spec.address.authority()))
                    .unwrap_or_else(|_| Authority::from_static("invalid"))
            });
        let uri = Uri::builder()
            .scheme(upstream.scheme.clone())
            .authority(authority)
            .path_and_query(path.clone())
            .build();
        let Ok(uri) = uri else {
            return (error::bad_request(), report);
        };
        let mut req = Request::new(attempt_body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        // The last planned attempt takes the headers; earlier ones need a copy for retries.
        *req.headers_mut() = if last_try {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        // HTTP/1.1 requires a Host: the upstream's, else the client's, else the address's.
        let host = match upstream.host_header.as_ref().or(received_host.as_ref()) {
            Some(h) => Some(h.clone()),
            None => HeaderValue::from_str(&upstream.spec.address.authority_for_host()).ok(),
        };
        if let Some(h) = host {
            req.headers_mut().insert(header::HOST, h);
        }

        report.attempts += 1;
        let in_flight = upstream.health.start_request();
        let sent =
            tokio::time::timeout(upstream.spec.response_timeout, upstream.client.request(req))
                .await;
        let failure = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let response = into_client_response(resp, in_flight);
                report.upstream = Some(Arc::clone(upstream));
                report.pick = Some(*pick);
                if !retry.on_status.contains(status) {
                    upstream.health.attempt_succeeded();
                    upstream.metrics.attempt("ok");
                    return (response, report);
                }
                debug!(upstream = upstream.name(), status, "retryable status");
                held = Some(response);
                upstream
                    .health
                    .attempt_failed(|| format!("status {status}"));
                Failure::Status
            }
            Ok(Err(e)) => {
                let f = Failure::of(&e);
                let cause = || crate::client::error_chain(&e);
                debug!(upstream = upstream.name(), error = %cause(), failure = f.outcome(), "attempt failed");
                upstream.health.attempt_failed(cause);
                f
            }
            Err(_elapsed) => {
                debug!(upstream = upstream.name(), "response timeout");
                upstream
                    .health
                    .attempt_failed(|| "no response headers within response_timeout".to_owned());
                Failure::ResponseTimeout
            }
        };
        upstream.metrics.attempt(failure.outcome());
        last_failure = Some(failure);
        if last_try {
            break;
        }
        // Get an unread streamed body back for the next attempt.
        if let (ClientBody::Stream(slot), Some(rx)) = (&mut body, back.as_mut()) {
            *slot = rx.try_recv().ok();
        }
        let body_available = match &body {
            ClientBody::Stream(slot) => slot.is_some(),
            ClientBody::Empty | ClientBody::Full(_) => true,
        };
        let may_retry = body_available && (failure.nothing_sent() || replayable);
        if !may_retry {
            break;
        }
        if failure != Failure::Status {
            held = None;
        }
    }
    match held {
        Some(r) if last_failure == Some(Failure::Status) => (r, report),
        _ => {
            report.upstream = None;
            report.pick = None;
            (error::exhausted(last_failure), report)
        }
    }
}

fn into_client_response(
    resp: Response<Incoming>,
    in_flight: crate::health::InFlight,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::rewrite_response(&mut parts.headers);
    Response::from_parts(parts, ProxyBody::upstream(body, in_flight))
}
