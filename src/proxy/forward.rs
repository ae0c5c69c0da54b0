//! Walks a request's attempt plan: reads (and, when small, buffers) the client's body, builds
//! each attempt, sends it with the upstream's response deadline, classifies failures, decides
//! whether the next attempt is allowed (replay safety, [`may_retry`]), and, once the request's
//! fate is known, charges each failed attempt to whoever caused it
//! ([`Failure::blames_upstream`]). Once response headers are passed to the client nothing is
//! retried.

use std::sync::Arc;

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{header, HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;
use tracing::debug;

use super::attempt::{send, Sent};
use super::blame;
use super::body::ProxyBody;
use super::client_body::{prepare, BodyLimits, ClientBody};
use super::error::{self, Failure};
use crate::client::body::{BodyError, Returned, UpstreamBody};
use crate::config::Role;
use crate::metrics::Outcome;
use crate::routing::{HostName, Route, Upstream};
use crate::select::{self, Pick};

/// What the forwarder did, for the access log and debug headers.
#[derive(Debug, Default)]
pub struct Report {
    /// The upstream whose response was returned, if any.
    pub upstream: Option<Arc<Upstream>>,
    /// Where that upstream is in the route's tiers.
    pub pick: Option<Pick>,
    /// Attempts made.
    pub attempts: usize,
    /// The last failure, when no upstream's answer was returned as a success.
    pub failure: Option<Failure>,
}

/// Whether the body allows another attempt (DESIGN §4 replay safety).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// No body, or one wholly buffered: it can be sent again.
    Replayable,
    /// A streamed body that the failed attempt never read: it can be sent once more.
    Unread,
    /// A streamed body that an attempt started to send: gone.
    Consumed,
}

/// Whether a request may be tried again after `failure` (DESIGN §4): never once its streamed
/// body is gone or the client's body failed; after a failure that proves nothing was sent,
/// always; otherwise only an idempotent method with a replayable body.
pub fn may_retry(failure: Failure, body: BodyState, idempotent: bool) -> bool {
    match (failure, body) {
        (Failure::ClientBody, _) | (_, BodyState::Consumed) => false,
        (f, _) if f.nothing_sent() => true,
        (_, BodyState::Replayable) => idempotent,
        (_, BodyState::Unread) => false,
    }
}

/// Methods that must not be replayed once sent (DESIGN §4).
fn idempotent(m: &Method) -> bool {
    !(m == Method::POST || m == Method::PATCH || m == Method::CONNECT)
}

/// The parts of the client's request every attempt shares.
struct Target {
    method: Method,
    path: PathAndQuery,
    /// The client's Host as received, when it is a valid authority.
    client_host: Option<HostName>,
}

impl Target {
    /// The Host (and URI authority) sent to `upstream`: its configured `host`, else the
    /// client's Host as received, else the upstream address's own.
    fn host_for<'a>(&'a self, upstream: &'a Upstream) -> &'a HostName {
        upstream
            .live
            .host
            .as_ref()
            .or(self.client_host.as_ref())
            .unwrap_or(&upstream.live.address_host)
    }

    /// The request for one attempt at `upstream`; `headers` are already rewritten.
    fn request(
        &self,
        upstream: &Upstream,
        headers: http::HeaderMap,
        body: UpstreamBody,
    ) -> Request<UpstreamBody> {
        let host = self.host_for(upstream);
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(upstream.live.scheme.clone());
        uri.authority = Some(host.authority.clone());
        uri.path_and_query = Some(self.path.clone());
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        // Scheme, authority and path are each valid already: the parts always make a URI.
        *req.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        req.headers_mut().insert(header::HOST, host.header.clone());
        req
    }
}

/// Forwards one request over `route`'s plan. `parts.headers` are already rewritten except Host;
/// `received_host` is the client's Host as received.
pub async fn forward(
    route: &Route,
    mut parts: Parts,
    body: Incoming,
    received_host: Option<HeaderValue>,
    limits: &BodyLimits<'_>,
) -> (Response<ProxyBody>, Report) {
    let retry = &route.spec.retry;
    let mut report = Report::default();
    let (mut body, _reserved) = match prepare(body, retry.buffer_body, limits).await {
        Ok(b) => b,
        Err(e) => {
            debug!(error = %e, "client body could not be read");
            report.failure = Some(Failure::ClientBody);
            return (client_body_answer(&e), report);
        }
    };
    let target = Target {
        path: parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
        client_host: received_host.as_ref().and_then(HostName::from_header),
        method: parts.method.clone(),
    };
    let replayable_method = idempotent(&parts.method);
    // Warm standby (DESIGN §7.2): a share of replay-safe GET/HEAD requests tries the next
    // usable tier first; not while the origins fail (every tier would pass the same error).
    let standby = (parts.method == Method::GET || parts.method == Method::HEAD)
        && !matches!(body, ClientBody::Stream(_))
        && !route.state.origin_failing()
        && route.next_standby();
    let plan = select::plan(
        &route.tiers,
        route.state.active(),
        retry.attempts,
        route.next_rr(),
        standby,
        |u: &Arc<Upstream>| u.live.health.is_available(),
    );
    let picks = plan.picks();
    // Failed attempts, charged once the request's fate is known (allocated only on failure).
    let mut failed: Vec<(Pick, Failure, String)> = Vec::new();
    let mut held: Option<Response<ProxyBody>> = None;

    for (i, pick) in picks.iter().enumerate() {
        let upstream = route.upstream(*pick);
        let last_try = i + 1 == picks.len();
        let Some((attempt_body, returned)) = body.for_attempt() else {
            break;
        };
        // The last planned attempt takes the headers; earlier ones need a copy for retries.
        let headers = if last_try {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        let req = target.request(upstream, headers, attempt_body);
        report.attempts += 1;
        let (back, body_sent) = returned.map(|r: Returned| (r.back, r.done)).unzip();
        let (failure, response, what) = match send(upstream, req, body_sent, &retry.on_status).await
        {
            Sent::Answer(resp) => {
                upstream.live.health.attempt_succeeded();
                upstream.live.metrics.attempt(Outcome::Ok);
                charge(route, &failed, true);
                report.upstream = Some(Arc::clone(upstream));
                report.pick = Some(*pick);
                return (resp, report);
            }
            Sent::Failed(f, resp, what) => (f, resp, what),
        };
        upstream.live.metrics.attempt(failure.outcome());
        if failure == Failure::Local {
            route.metrics.local_error();
        }
        failed.push((*pick, failure, what));
        // Passed through if it stays the last word (every attempt ended with on_status).
        if let Some(resp) = response {
            report.upstream = Some(Arc::clone(upstream));
            report.pick = Some(*pick);
            held = Some(resp);
        }
        if last_try {
            break;
        }
        // The route's origins are failing: every tier reaches the same failing origin, so an
        // answer is passed on from the first tier that gave it (no amplification).
        if failure.answered() && route.state.origin_failing() {
            break;
        }
        // Get an unread streamed body back for the next attempt.
        let state = match (&mut body, back) {
            (ClientBody::Stream(slot), Some(mut back)) => {
                *slot = back.try_recv().ok();
                if slot.is_some() {
                    BodyState::Unread
                } else {
                    BodyState::Consumed
                }
            }
            _ => BodyState::Replayable,
        };
        if !may_retry(failure, state, replayable_method) {
            break;
        }
    }
    charge(route, &failed, false);
    let last = failed.last().map(|(_, f, _)| *f);
    report.failure = last;
    match (held, last) {
        (Some(r), Some(f)) if f.answered() => (r, report),
        (_, Some(Failure::ClientBody)) => (error::body_timeout(), report),
        _ => {
            report.upstream = None;
            report.pick = None;
            (error::exhausted(last), report)
        }
    }
}

/// Charges each failed attempt (`blame::charge`): counted by fault, and toward passive
/// ejection when the rule says so; `answered`: some upstream answered this request.
fn charge(route: &Route, failed: &[(Pick, Failure, String)], answered: bool) {
    if failed.is_empty() {
        return;
    }
    // The origins fail by their checks, or this request failed on one of them too.
    let origins_failing = route.state.origin_failing()
        || failed.iter().any(|(pick, f, _)| {
            route.upstream(*pick).spec.role == Role::Origin && f.is_upstream_side()
        });
    for (pick, failure, what) in failed {
        let upstream = route.upstream(*pick);
        let c = blame::charge(upstream.spec.role, *failure, answered, origins_failing);
        if let Some(fault) = c.fault {
            upstream.live.metrics.failure(fault);
        }
        if c.ejects {
            upstream.live.health.attempt_failed(|| what.clone());
        }
    }
}

/// The answer to a client whose body could not be read: 408 when it stalled, else 400.
fn client_body_answer(e: &BodyError) -> Response<ProxyBody> {
    match e {
        BodyError::Timeout => error::body_timeout(),
        BodyError::Client(_) => error::bad_request(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_safety_table_of_design_section_4() {
        use BodyState::{Consumed, Replayable, Unread};
        use Failure::*;
        // (failure, body, idempotent method) -> may retry
        let table = [
            (Connect, Replayable, false, true),
            (ConnectTimeout, Unread, false, true),
            (Local, Replayable, true, true),
            (Connect, Consumed, true, false),
            (ResponseTimeout, Replayable, true, true),
            (ResponseTimeout, Replayable, false, false),
            (Status, Replayable, true, true),
            (Status, Unread, true, false),
            (Status, Consumed, true, false),
            (Other, Replayable, false, false),
            (ClientBody, Replayable, true, false),
            (ClientBody, Unread, true, false),
        ];
        for (failure, body, idem, want) in table {
            assert_eq!(
                may_retry(failure, body, idem),
                want,
                "{failure:?} {body:?} idempotent={idem}"
            );
        }
    }

    #[test]
    fn a_request_dependent_failure_is_the_upstreams_only_when_another_answered() {
        use Failure::*;
        let table = [
            (Connect, false, true),
            (ConnectTimeout, false, true),
            (Status, false, false),
            (Status, true, true),
            (ResponseTimeout, false, false),
            (ResponseTimeout, true, true),
            (Other, true, true),
            (ClientBody, true, false),
            (Local, true, false),
            (Local, false, false),
        ];
        for (failure, answered, want) in table {
            assert_eq!(
                failure.blames_upstream(answered),
                want,
                "{failure:?} answered elsewhere={answered}"
            );
        }
    }

    #[test]
    fn only_post_patch_and_connect_are_not_idempotent() {
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert!(idempotent(&m), "{m}");
        }
        for m in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!idempotent(&m), "{m}");
        }
    }
}
