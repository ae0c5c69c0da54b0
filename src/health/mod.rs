//! Live health of an upstream: reason flags (Envoy's `HealthFlag` idea), in-flight count and
//! passive-detection counters, all atomics on the long-lived upstream object and read
//! lock-free on the request path. Each mechanism (active checks, passive ejection, operator
//! drain) sets and clears only its own flag; the upstream is usable while no flag is set, and
//! its `state` is derived from the flags with the precedence drained > ejected > unhealthy >
//! healthy. Every state change is sent as an [`Event`].

pub mod counter;
pub mod head_times;
pub mod passive;
pub mod rate;
mod state;

pub use state::{Flag, State};

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::PassiveSpec;
use crate::events::{Action, Change, Event, Signals};
use passive::Passive;

/// The result of the last active probe (`last_check` in `/status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    /// When the probe started.
    #[serde(serialize_with = "crate::events::rfc3339")]
    pub at: SystemTime,
    /// Whether it passed.
    pub ok: bool,
    /// The status received, if any.
    pub status: Option<u16>,
    /// Time to the response headers (or to the failure), in milliseconds to two decimals.
    pub latency_ms: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Whose fault a failed probe was: "cdn" (counted toward `fall`) or "origin" (a CDN's
    /// probe failed because the origins behind it are failing: not counted); null when it
    /// passed or said nothing (bascule's own exhaustion).
    pub fault: Option<&'static str>,
}

/// Milliseconds on the process's monotonic clock (never 0).
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Live state of one upstream.
#[derive(Debug)]
pub struct Health {
    name: String,
    flags: AtomicU8,
    in_flight: AtomicUsize,
    passive: Passive,
    signals: Signals,
    /// Written by the checker, read by the admin API; never touched by the request path.
    last_check: Mutex<Option<ProbeResult>>,
    /// The operator's reason while drained.
    drain_reason: Mutex<Option<String>>,
}

impl Health {
    /// The live state of upstream `name`, healthy and unverified, reporting to `signals`.
    pub fn new(name: &str, passive: &PassiveSpec, signals: Signals) -> Health {
        Health {
            name: name.to_owned(),
            flags: AtomicU8::new(0),
            in_flight: AtomicUsize::new(0),
            passive: Passive::new(passive),
            signals,
            last_check: Mutex::new(None),
            drain_reason: Mutex::new(None),
        }
    }

    /// Whether requests may be sent to it (no reason flag set).
    pub fn is_available(&self) -> bool {
        self.flags.load(Ordering::Acquire) == 0
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.load(Ordering::Acquire) & flag as u8 != 0
    }

    /// The derived state.
    pub fn state(&self) -> State {
        State::of(self.flags.load(Ordering::Acquire))
    }

    /// Sets `flag` for `reason`; returns whether it was newly set. A state change is an event.
    pub fn set(&self, flag: Flag, reason: &str) -> bool {
        let prev = self.flags.fetch_or(flag as u8, Ordering::AcqRel);
        self.changed(prev, prev | flag as u8, reason);
        prev & flag as u8 == 0
    }

    /// Clears `flag` for `reason`; returns whether it was set.
    pub fn clear(&self, flag: Flag, reason: &str) -> bool {
        let prev = self.flags.fetch_and(!(flag as u8), Ordering::AcqRel);
        self.changed(prev, prev & !(flag as u8), reason);
        prev & flag as u8 != 0
    }

    fn changed(&self, prev: u8, next: u8, reason: &str) {
        let (from, to) = (State::of(prev), State::of(next));
        if from != to {
            self.signals.emit(Event::now(
                &self.name,
                Change::UpstreamState {
                    from: from.as_str(),
                    to: to.as_str(),
                },
                reason,
            ));
        }
    }

    /// Requests currently being sent to or answered by this upstream.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts one request in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Applies reloaded passive-detection settings; state, ejection and history are kept.
    pub fn retune(&self, passive: &PassiveSpec) {
        self.passive.retune(passive);
    }

    /// Records a live attempt that succeeded.
    pub fn attempt_succeeded(&self) {
        let now = self.passive.counts_rate().then(now_ms);
        self.passive.on_success(now);
    }

    /// Records a live attempt that failed (`what` describes it, for the event; called only
    /// when this failure ejects); ejects the upstream when this failure completes a run of
    /// `passive.consecutive_failures`, or makes the failed share of the attempts within
    /// `passive.window` reach `passive.failure_rate` (with at least `passive.min_requests`). The ejection ends by
    /// itself on a timer task. An upstream already out of use for another reason is not
    /// ejected: late failures of requests sent before it was marked down (a hanging upstream's
    /// response timeouts) would otherwise keep it out long after it recovered.
    pub fn attempt_failed(self: &Arc<Self>, what: impl FnOnce() -> String) {
        if !self.is_available() {
            return;
        }
        let Some((duration, rule)) = self.passive.on_failure(now_ms()) else {
            return;
        };
        let reason = format!(
            "{rule} (last: {}); ejected for {}",
            what(),
            humantime::format_duration(duration)
        );
        self.set(Flag::Ejected, &reason);
        let health = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            health.passive.on_ejection_end(now_ms());
            health.clear(Flag::Ejected, "ejection expired");
        });
    }

    /// The last probe's result; None until the first probe finished.
    pub fn last_check(&self) -> Option<ProbeResult> {
        self.last_check
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stores the last probe's result.
    pub fn set_last_check(&self, result: ProbeResult) {
        *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
    }

    /// Operator drain: no new requests go here until `undrain`. Returns whether it changed.
    pub fn drain(&self, reason: &str) -> bool {
        *self.drain_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
        let newly = self.set(Flag::Drained, reason);
        if newly {
            self.signals.emit(Event::now(
                &self.name,
                Change::Operator(Action::Drain),
                reason,
            ));
        }
        newly
    }

    /// Operator undrain, effective at once. Returns whether it changed.
    pub fn undrain(&self, reason: &str) -> bool {
        *self.drain_reason.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let was = self.clear(Flag::Drained, reason);
        if was {
            self.signals.emit(Event::now(
                &self.name,
                Change::Operator(Action::Undrain),
                reason,
            ));
        }
        was
    }

    /// The operator's reason while drained.
    pub fn drain_reason(&self) -> Option<String> {
        if !self.has(Flag::Drained) {
            return None;
        }
        self.drain_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Carries an operator drain over from the object this one replaces (a reload changed the
    /// upstream's identity, but the operator's intent stands while the name exists).
    pub fn inherit_drain(&self, old: &Health) {
        if let Some(reason) = old.drain_reason() {
            *self.drain_reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            self.flags.fetch_or(Flag::Drained as u8, Ordering::AcqRel);
        }
    }

    /// How long ejections start at, for display.
    pub fn first_ejection(&self) -> Duration {
        self.passive.base()
    }
}

/// Decrements the in-flight count of an upstream when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Health>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Signal;

    fn health() -> (Arc<Health>, tokio::sync::mpsc::UnboundedReceiver<Signal>) {
        let (signals, rx) = Signals::channel();
        let spec = PassiveSpec::consecutive(3, Duration::from_millis(200));
        (Arc::new(Health::new("cdn", &spec, signals)), rx)
    }

    fn states(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Signal>) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(s) = rx.try_recv() {
            if let Signal::Event(e) = s {
                if let Change::UpstreamState { from, to } = e.change {
                    out.push((from.to_owned(), to.to_owned()));
                }
            }
        }
        out
    }

    #[test]
    fn each_mechanism_clears_only_its_own_flag() {
        let (h, _rx) = health();
        assert!(h.is_available());
        assert!(h.set(Flag::ActiveFailed, "probe"));
        assert!(h.set(Flag::Drained, "op"));
        assert!(!h.set(Flag::Drained, "op"));
        assert!(h.clear(Flag::ActiveFailed, "probe"));
        assert!(!h.is_available(), "still drained");
        assert!(h.has(Flag::Drained) && !h.has(Flag::Ejected));
        assert!(h.clear(Flag::Drained, "op"));
        assert!(h.is_available());
    }

    #[test]
    fn only_state_changes_are_events() {
        let (h, mut rx) = health();
        h.set(Flag::Drained, "maintenance");
        h.set(Flag::ActiveFailed, "probe failed"); // still drained: no event
        h.clear(Flag::Drained, "done");
        h.clear(Flag::ActiveFailed, "probe passed");
        assert_eq!(
            states(&mut rx),
            vec![
                ("healthy".into(), "drained".into()),
                ("drained".into(), "unhealthy".into()),
                ("unhealthy".into(), "healthy".into()),
            ]
        );
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let (h, _rx) = health();
        let a = h.start_request();
        let b = h.start_request();
        assert_eq!(h.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ejection_ends_by_itself() {
        let (h, mut rx) = health();
        for _ in 0..3 {
            h.attempt_failed(|| "connect_error".into());
        }
        assert_eq!(h.state(), State::Ejected);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(h.state(), State::Healthy);
        assert_eq!(
            states(&mut rx),
            vec![
                ("healthy".into(), "ejected".into()),
                ("ejected".into(), "healthy".into()),
            ]
        );
    }

    #[test]
    fn an_upstream_already_out_of_use_is_not_ejected() {
        let (h, _rx) = health();
        h.set(Flag::ActiveFailed, "probes");
        for _ in 0..10 {
            h.attempt_failed(|| "timeout".into());
        }
        assert_eq!(h.state(), State::Unhealthy);
        h.clear(Flag::ActiveFailed, "probes");
        assert!(h.is_available(), "back at once, no ejection pending");
    }

    #[test]
    fn a_drain_is_inherited_by_the_replacing_object() {
        let (old, _rx) = health();
        old.drain("planned CDN change");
        let (new, _rx2) = health();
        new.inherit_drain(&old);
        assert_eq!(new.state(), State::Drained);
        assert_eq!(new.drain_reason().as_deref(), Some("planned CDN change"));
    }
}
