//! Forwards a request over its attempt plan: reads (and, when small, buffers) the client's
//! body, builds each attempt (sent by `attempt::send`), judges how each ended and whether the next
//! attempt is allowed (replay safety, [`may_retry`]; free or paid from the retry budget), lets
//! `attempts::walk` run them (hedging a replay-safe request, DESIGN §7.4), and, once the
//! request's fate is known, charges each failed attempt to whoever caused it
//! ([`Failure::blames_upstream`]) and counts a hedge's loser as `cancelled`. Once response
//! headers are passed to the client nothing is retried.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{header, HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::debug;

use super::attempt::{send, Sent};
use super::attempts::{self, Next, Verdict};
use super::blame;
use super::body::ProxyBody;
use super::client_body::{prepare, BodyLimits, ClientBody};
use super::error::{self, Failure};
use crate::client::body::{BodyError, Returned, Stream, UpstreamBody};
use crate::config::{HedgeAfter, Role};
use crate::metrics::Outcome;
use crate::routing::{HostName, Route, Upstream};
use crate::select::{self, Pick, Plan};

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

/// The forwarder's side of the walk (`attempts::walk`): what each attempt is built from, and
/// what the finished ones left behind.
struct Walk<'r> {
    route: &'r Route,
    plan: Plan,
    target: Target,
    /// Rewritten request headers; the last planned attempt takes them, the others a copy.
    headers: http::HeaderMap,
    body: ClientBody,
    /// A streamed body's way back from the attempt in flight (never hedged: one at a time).
    back: Option<oneshot::Receiver<Stream>>,
    replayable_method: bool,
    /// Whether attempts may be hedged: `hedge_after` is on and the request is replay-safe.
    hedging: bool,
    now: Instant,
    /// Failed attempts, charged once the request's fate is known (allocated only on failure).
    failed: Vec<(Pick, Failure, String)>,
    /// The last failed attempt's response (an `on_status` code, a CDN's page), and its pick.
    held: Option<(Response<ProxyBody>, Pick)>,
    /// The winning answer.
    answer: Option<Response<ProxyBody>>,
}

impl Walk<'_> {
    /// The hedge delay for an attempt at `upstream`, if it may be hedged.
    fn hedge_delay(&self, upstream: &Upstream) -> Option<Duration> {
        if !self.hedging {
            return None;
        }
        match self.route.spec.retry.hedge_after {
            HedgeAfter::Off => None,
            HedgeAfter::After(d) => Some(d),
            HedgeAfter::Auto => Some(upstream.live.head_times.hedge_delay(self.now)),
        }
    }

    /// Judges a finished attempt `i`: counts it, keeps a failure's response, and says whether
    /// the next planned attempt may follow (replay safety, the origin rule, the budget).
    fn judge(&mut self, i: usize, sent: Sent) -> Verdict {
        let pick = self.plan.picks()[i];
        let upstream = self.route.upstream(pick);
        let (failure, response, what) = match sent {
            Sent::Answer(resp) => {
                upstream.live.health.attempt_succeeded();
                upstream.live.metrics.attempt(Outcome::Ok);
                self.answer = Some(resp);
                return Verdict::Answer;
            }
            Sent::Failed(f, resp, what) => (f, resp, what),
        };
        upstream.live.metrics.attempt(failure.outcome());
        if failure == Failure::Local {
            self.route.metrics.local_error();
        }
        self.failed.push((pick, failure, what));
        // Passed through if it stays the last word (every attempt ended with on_status).
        if let Some(resp) = response {
            self.held = Some((resp, pick));
        }
        // The route's origins are failing: every tier reaches the same failing origin, so an
        // answer is passed on from the first tier that gave it (no amplification).
        if failure.answered() && self.route.state.origin_failing() {
            return Verdict::Failed(Next::Stop);
        }
        // Get an unread streamed body back for the next attempt.
        let state = match (&mut self.body, self.back.take()) {
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
        Verdict::Failed(if !may_retry(failure, state, self.replayable_method) {
            Next::Stop
        } else if failure.nothing_sent() {
            Next::Free
        } else {
            Next::Paid
        })
    }
}

/// Forwards one request over `route`'s plan. `parts.headers` are already rewritten except Host;
/// `received_host` is the client's Host as received; `arrived`, when the request did.
pub async fn forward(
    route: &Route,
    mut parts: Parts,
    body: Incoming,
    received_host: Option<HeaderValue>,
    limits: &BodyLimits<'_>,
    arrived: std::time::Instant,
) -> (Response<ProxyBody>, Report) {
    let retry = &route.spec.retry;
    let mut report = Report::default();
    let (body, _reserved) = match prepare(body, retry.buffer_body, limits).await {
        Ok(b) => b,
        Err(e) => {
            debug!(error = %e, "client body could not be read");
            report.failure = Some(Failure::ClientBody);
            return (client_body_answer(&e), report);
        }
    };
    let now = Instant::from_std(arrived);
    route.state.budget.deposit(arrived, retry.budget);
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
    let hedging = retry.hedge_after != HedgeAfter::Off
        && replayable_method
        && !matches!(body, ClientBody::Stream(_))
        && !route.state.origin_failing();
    let mut w = Walk {
        route,
        plan,
        target,
        headers: std::mem::take(&mut parts.headers),
        body,
        back: None,
        replayable_method,
        hedging,
        now,
        failed: Vec::new(),
        held: None,
        answer: None,
    };
    let planned = plan.picks().len();
    let walked = attempts::walk(
        &mut w,
        planned,
        |w, i, mut slot| {
            let route: &Route = w.route;
            let upstream = route.upstream(w.plan.picks()[i]);
            let (attempt_body, returned) = w.body.for_attempt()?;
            let last = i + 1 == planned;
            let headers = if last {
                std::mem::take(&mut w.headers)
            } else {
                w.headers.clone()
            };
            let req = w.target.request(upstream, headers, attempt_body);
            let (back, body_sent) = returned.map(|r: Returned| (r.back, r.done)).unzip();
            w.back = back;
            let on_status = &route.spec.retry.on_status;
            slot.set(Some(send(upstream, req, body_sent, on_status)));
            // The last planned attempt has nothing to hedge with.
            Some(if last { None } else { w.hedge_delay(upstream) })
        },
        Walk::judge,
        || {
            let now = std::time::Instant::now();
            route.state.budget.try_spend(now, retry.budget_min_per_sec)
        },
    )
    .await;
    report.attempts = walked.started;
    if let Some((i, ran)) = walked.cancelled {
        // A loser: neither a success nor a failure, but it says the upstream took this long.
        let loser = route.upstream(plan.picks()[i]);
        loser.live.metrics.attempt(Outcome::Cancelled);
        loser.live.head_times.record(Instant::now(), ran);
        // A hedge beat it: its checker probes now rather than at its next interval, so that a
        // blackhole is found in about `fall` probe timeouts (a passing probe changes nothing).
        if walked.answered.is_some_and(|winner| winner > i) {
            loser.live.probe_now.notify_one();
        }
    }
    for _ in 0..walked.refused {
        route.metrics.budget_exhausted();
    }
    if walked.hedges > 0 {
        debug!(
            route = route.spec.name.as_str(),
            hedges = walked.hedges,
            "hedged"
        );
    }
    if let (Some(i), Some(resp)) = (walked.answered, w.answer.take()) {
        charge(route, &w.failed, true);
        let pick = plan.picks()[i];
        report.upstream = Some(Arc::clone(route.upstream(pick)));
        report.pick = Some(pick);
        return (resp, report);
    }
    charge(route, &w.failed, false);
    let last = w.failed.last().map(|(_, f, _)| *f);
    report.failure = last;
    match (w.held, last) {
        (Some((r, pick)), Some(f)) if f.answered() => {
            report.upstream = Some(Arc::clone(route.upstream(pick)));
            report.pick = Some(pick);
            (r, report)
        }
        (_, Some(Failure::ClientBody)) => (error::body_timeout(), report),
        _ => (error::exhausted(last), report),
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
#[path = "forward_tests.rs"]
mod tests;
