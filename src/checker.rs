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
use crate::config::HealthSpec;
use crate::health::counter::{Counter, Transition};
use crate::health::{Flag, ProbeResult};
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

/// Probes `upstream` until the task is aborted: at once, then every jittered interval.
async fn check_forever(upstream: Arc<LiveUpstream>) {
    let first = upstream.probe.load_full();
    let mut counter = Counter::new(first.rise, first.fall);
    loop {
        let spec = upstream.probe.load_full();
        counter.retune(spec.rise, spec.fall);
        let (result, local) = probe(&upstream, &spec).await;
        debug!(upstream = upstream.name(), ok = result.ok, status = ?result.status, error = ?result.error, local, "probe");
        let passed = result.ok;
        let why = result.error.clone().unwrap_or_default();
        upstream.health.set_last_check(result);
        // bascule's own exhaustion says nothing about the upstream: not counted.
        let transition = if local { None } else { counter.record(passed) };
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
        tokio::time::sleep(jittered(spec.interval)).await;
    }
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// The checker tasks, one per live upstream object (by pointer: a changed upstream is a new
/// object and gets a new checker, probed at once).
#[derive(Default)]
pub struct Checkers {
    running: Mutex<HashMap<usize, Running>>,
}

/// A checker task and the upstream it probes.
struct Running {
    upstream: Arc<LiveUpstream>,
    task: JoinHandle<()>,
}

impl Checkers {
    /// Starts checkers for the table's upstreams that have none and stops those of upstreams
    /// the table no longer has.
    pub fn sync(&self, table: &RoutingTable) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(table.upstreams.len());
        for u in &table.upstreams {
            let key = Arc::as_ptr(&u.live) as usize;
            let entry = running.remove(&key).unwrap_or_else(|| Running {
                upstream: Arc::clone(&u.live),
                task: tokio::spawn(check_forever(Arc::clone(&u.live))),
            });
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
