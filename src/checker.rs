//! Active health checks: one checker task per live upstream object, probing `GET health.path`
//! every `interval` (with ±10 % jitter so that many upstreams do not probe in step) through
//! the upstream's own pooled client — the same address, TLS settings and SNI as traffic —
//! with the probe Host of `health.host`. A probe passes when a status in `expect_status`
//! arrives within `timeout`; the rise/fall counter turns probes into the `ActiveFailed` flag.
//! Probes of one upstream never overlap: the task awaits each before sleeping. The settings are
//! read afresh for every probe, so a reload that retunes them applies from the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::uri::{Authority, Uri};
use http::{header, HeaderValue, Request};
use http_body_util::BodyExt;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::client::body::UpstreamBody;
use arc_swap::ArcSwap;

use crate::config::{HealthSpec, Role};
use crate::health::counter::{Counter, Transition};
use crate::health::{Flag, ProbeResult};
use crate::metrics::Fault;
use crate::routing::{LiveUpstream, RoutingTable};

/// Most bytes of a probe's response body read (so the connection can be reused); the rest is
/// dropped with the connection.
const PROBE_BODY_LIMIT: usize = 64 << 10;

/// Sends one probe to `upstream` and judges it. A probe that failed because bascule itself is
/// out of file descriptors or memory says so in its error, and `local` is true: it says
/// nothing about the upstream.
pub async fn probe(upstream: &LiveUpstream, spec: &HealthSpec) -> (ProbeResult, bool) {
    let at = SystemTime::now();
    let start = Instant::now();
    let outcome = tokio::time::timeout(spec.timeout, exchange(upstream, spec)).await;
    let latency_ms = crate::events::millis(start.elapsed());
    let local = matches!(&outcome, Ok(Err(e)) if e.local);
    let (ok, status, error) = match outcome {
        Ok(Ok(status)) if spec.expect_status.contains(status) => (true, Some(status), None),
        Ok(Ok(status)) => (
            false,
            Some(status),
            Some(format!("status {status} is not in expect_status")),
        ),
        Ok(Err(e)) => (false, None, Some(e.message)),
        Err(_) => (
            false,
            None,
            Some(format!(
                "no response within {}",
                humantime::format_duration(spec.timeout)
            )),
        ),
    };
    let result = ProbeResult {
        at,
        ok,
        status,
        latency_ms,
        error,
        fault: None,
    };
    (result, local)
}

/// Why a probe exchange failed.
struct ProbeError {
    message: String,
    /// bascule's own resource exhaustion, not the upstream's failure.
    local: bool,
}

impl From<String> for ProbeError {
    fn from(message: String) -> ProbeError {
        ProbeError {
            message,
            local: false,
        }
    }
}

/// The probe exchange: request, status, body drained (bounded) so the connection is reused.
async fn exchange(upstream: &LiveUpstream, spec: &HealthSpec) -> Result<u16, ProbeError> {
    let authority = Authority::try_from(spec.host.as_str())
        .map_err(|e| format!("probe host {:?}: {e}", spec.host))?;
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(authority)
        .path_and_query(spec.path.as_str())
        .build()
        .map_err(|e| format!("probe uri: {e}"))?;
    let mut req = Request::new(UpstreamBody::Empty);
    *req.uri_mut() = uri;
    let host = HeaderValue::from_str(&spec.host).map_err(|e| format!("probe host: {e}"))?;
    req.headers_mut().insert(header::HOST, host);
    req.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_static("bascule-health-check"),
    );
    let resp = upstream.client.request(req).await.map_err(|e| ProbeError {
        local: e.is_local(),
        message: crate::client::error_chain(&e),
    })?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut read = 0usize;
    while read <= PROBE_BODY_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            Some(Err(_)) | None => break,
        }
    }
    Ok(status)
}

/// The origin-role upstreams that share a route with a CDN (what its probes reach through it).
type Origins = Arc<ArcSwap<Vec<Arc<LiveUpstream>>>>;

/// Probes `upstream` until the task is aborted: at once, then every jittered interval (or at
/// once when another checker asks, through `probe_now`).
async fn check_forever(upstream: Arc<LiveUpstream>, origins: Origins) {
    let first = upstream.probe.load_full();
    let mut counter = Counter::new(first.rise, first.fall);
    loop {
        let spec = upstream.probe.load_full();
        counter.retune(spec.rise, spec.fall);
        let (mut result, local) = probe(&upstream, &spec).await;
        // bascule's own exhaustion says nothing about the upstream: not counted.
        let mut counts = !local;
        if !result.ok && !local {
            let fault = match upstream.identity.role {
                Role::Cdn if origins_failing(&origins.load(), result.at).await => Fault::Origin,
                Role::Cdn => Fault::Cdn,
                Role::Origin => Fault::Origin,
            };
            // A CDN's probe that failed because the origins behind it fail is the origin's:
            // it does not count toward the CDN's `fall` (DESIGN §7.1).
            counts = !(upstream.identity.role == Role::Cdn && fault == Fault::Origin);
            result.fault = Some(fault.as_str());
        }
        debug!(upstream = upstream.name(), ok = result.ok, status = ?result.status, error = ?result.error, local, fault = ?result.fault, "probe");
        let passed = result.ok;
        let why = result.error.clone().unwrap_or_default();
        upstream.health.set_last_check(result);
        let transition = if counts { counter.record(passed) } else { None };
        match transition {
            Some(Transition::Down) => {
                let reason = format!("{} failed probes in a row (last: {why})", spec.fall);
                upstream.health.set(Flag::ActiveFailed, &reason);
            }
            Some(Transition::Up) => {
                let reason = format!("{} passed probes in a row", spec.rise);
                upstream.health.clear(Flag::ActiveFailed, &reason);
            }
            None => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(spec.interval)) => {}
            _ = upstream.probe_now.notified() => {}
        }
    }
}

/// Whether every one of `origins` is failing by its own checks, as of the CDN probe that began
/// at `since`: an origin whose last probe is older than one of its intervals is probed at once
/// (and waited for, within its probe timeout). False when there are none: a CDN with no origin
/// behind it has no one else to blame.
async fn origins_failing(origins: &[Arc<LiveUpstream>], since: SystemTime) -> bool {
    if origins.is_empty() {
        return false;
    }
    let fresh = |o: &LiveUpstream| {
        let interval = o.probe.load().interval;
        o.health
            .last_check()
            .is_some_and(|c| c.at + interval >= since)
    };
    let stale: Vec<&Arc<LiveUpstream>> = origins.iter().filter(|o| !fresh(o)).collect();
    if !stale.is_empty() {
        let limit = stale
            .iter()
            .map(|o| o.probe.load().timeout)
            .max()
            .unwrap_or_default()
            + Duration::from_millis(200);
        for o in &stale {
            o.probe_now.notify_one();
        }
        let start = Instant::now();
        while start.elapsed() < limit
            && stale
                .iter()
                .any(|o| o.health.last_check().is_none_or(|c| c.at < since))
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    origins
        .iter()
        .all(|o| o.health.has(Flag::ActiveFailed) || o.health.last_check().is_some_and(|c| !c.ok))
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Per CDN (by live object), the origin-role upstreams that share a route with it.
fn origins_behind(table: &RoutingTable) -> HashMap<usize, Vec<Arc<LiveUpstream>>> {
    let mut behind: HashMap<usize, Vec<Arc<LiveUpstream>>> = HashMap::new();
    for route in &table.routes {
        let all = || route.tiers.iter().flatten();
        let origins: Vec<&Arc<LiveUpstream>> = all()
            .filter(|u| u.spec.role == Role::Origin)
            .map(|u| &u.live)
            .collect();
        for cdn in all().filter(|u| u.spec.role == Role::Cdn) {
            let list = behind.entry(Arc::as_ptr(&cdn.live) as usize).or_default();
            for o in &origins {
                if !list.iter().any(|l| Arc::ptr_eq(l, o)) {
                    list.push(Arc::clone(o));
                }
            }
        }
    }
    behind
}

/// The checker tasks, one per live upstream object (by pointer: a changed upstream is a new
/// object and gets a new checker, probed at once).
#[derive(Default)]
pub struct Checkers {
    running: Mutex<HashMap<usize, Running>>,
}

/// A checker task, the upstream it probes, and the origins behind it.
struct Running {
    upstream: Arc<LiveUpstream>,
    origins: Origins,
    task: JoinHandle<()>,
}

impl Checkers {
    /// Starts checkers for the table's upstreams that have none and stops those of upstreams
    /// the table no longer has.
    pub fn sync(&self, table: &RoutingTable) {
        let behind = origins_behind(table);
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(table.upstreams.len());
        for u in &table.upstreams {
            let key = Arc::as_ptr(&u.live) as usize;
            let origins = behind.get(&key).cloned().unwrap_or_default();
            let entry = match running.remove(&key) {
                Some(r) => {
                    r.origins.store(Arc::new(origins));
                    r
                }
                None => {
                    let origins: Origins = Arc::new(ArcSwap::from_pointee(origins));
                    Running {
                        upstream: Arc::clone(&u.live),
                        task: tokio::spawn(check_forever(Arc::clone(&u.live), origins.clone())),
                        origins,
                    }
                }
            };
            next.insert(key, entry);
        }
        for (_, r) in running.drain() {
            debug!(upstream = r.upstream.name(), "stopping its health checker");
            r.task.abort();
        }
        *running = next;
    }

    /// Stops every checker (shutdown).
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (_, r) in running.drain() {
            r.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(1));
            assert!(d >= Duration::from_millis(900) && d <= Duration::from_millis(1100));
        }
    }
}
