//! Passive failure detection: failed live attempts in a row eject an upstream for a while,
//! doubling on repeats (capped at five minutes) and starting over after five minutes without
//! an ejection. Atomics only, so the request path records outcomes without a lock; the
//! decision to eject is taken by exactly one request (the one whose failure reaches the
//! threshold). Times are milliseconds on a monotonic clock the caller supplies.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::config::PassiveSpec;

/// Longest ejection, and the quiet time after which doubling starts over.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

/// Passive-detection counters of one upstream.
#[derive(Debug)]
pub struct Passive {
    /// Failures in a row that eject; 0: never (retunable by a reload).
    threshold: AtomicU32,
    /// The first ejection's length, in ms (retunable by a reload).
    base_ms: AtomicU64,
    /// Failures in a row so far.
    consecutive: AtomicU32,
    /// Ejections since the doubling last started over (the next lasts `base * 2^level`).
    level: AtomicU32,
    /// When the last ejection ended (ms); 0: none yet.
    last_end_ms: AtomicU64,
    /// An ejection is in force.
    ejected: AtomicBool,
}

impl Passive {
    /// Counters for `spec`.
    pub fn new(spec: &PassiveSpec) -> Passive {
        Passive {
            threshold: AtomicU32::new(spec.consecutive_failures),
            base_ms: AtomicU64::new(millis(spec.ejection)),
            consecutive: AtomicU32::new(0),
            level: AtomicU32::new(0),
            last_end_ms: AtomicU64::new(0),
            ejected: AtomicBool::new(false),
        }
    }

    /// Applies reloaded settings; the run of failures and the ejection history are kept.
    pub fn retune(&self, spec: &PassiveSpec) {
        self.threshold
            .store(spec.consecutive_failures, Ordering::Relaxed);
        self.base_ms.store(millis(spec.ejection), Ordering::Relaxed);
    }

    /// Failures in a row that eject (0: never).
    pub fn threshold(&self) -> u32 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// The first ejection's length.
    pub fn base(&self) -> Duration {
        Duration::from_millis(self.base_ms.load(Ordering::Relaxed))
    }

    /// A successful attempt: the run of failures is broken.
    pub fn on_success(&self) {
        // Read first: in the common case nothing is written and the cache line stays shared.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// A failed attempt at `now_ms`; returns how long to eject for when this failure is the
    /// one that reaches the threshold.
    pub fn on_failure(&self, now_ms: u64) -> Option<Duration> {
        let threshold = self.threshold();
        if threshold == 0 || self.ejected.load(Ordering::Acquire) {
            return None;
        }
        let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        // `>=`: a threshold lowered by a reload below the current run ejects at once.
        if n < threshold {
            return None;
        }
        if self
            .ejected
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        self.consecutive.store(0, Ordering::Relaxed);
        let last_end = self.last_end_ms.load(Ordering::Relaxed);
        let quiet = Duration::from_millis(now_ms.saturating_sub(last_end));
        if last_end != 0 && quiet >= MAX_EJECTION {
            self.level.store(0, Ordering::Relaxed);
        }
        let level = self.level.fetch_add(1, Ordering::Relaxed).min(20);
        Some(self.base().saturating_mul(1 << level).min(MAX_EJECTION))
    }

    /// The ejection that began with `on_failure` ended at `now_ms`.
    pub fn on_ejection_end(&self, now_ms: u64) {
        self.last_end_ms.store(now_ms.max(1), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        self.ejected.store(false, Ordering::Release);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passive(threshold: u32, ejection_ms: u64) -> Passive {
        Passive::new(&PassiveSpec {
            consecutive_failures: threshold,
            ejection: Duration::from_millis(ejection_ms),
        })
    }

    #[test]
    fn the_failure_that_reaches_the_threshold_ejects() {
        let p = passive(3, 100);
        assert_eq!(p.on_failure(1), None);
        assert_eq!(p.on_failure(2), None);
        assert_eq!(p.on_failure(3), Some(Duration::from_millis(100)));
        assert_eq!(p.on_failure(4), None, "no second ejection while ejected");
    }

    #[test]
    fn a_success_breaks_the_run() {
        let p = passive(2, 100);
        for t in 0..10 {
            assert_eq!(p.on_failure(t), None);
            p.on_success();
        }
    }

    #[test]
    fn repeated_ejections_double_up_to_five_minutes() {
        let p = passive(1, 60_000);
        let mut now = 1;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let d = p.on_failure(now).expect("ejects");
            seen.push(d.as_secs());
            now += u64::try_from(d.as_millis()).unwrap_or(0);
            p.on_ejection_end(now);
            now += 1_000;
        }
        assert_eq!(seen, vec![60, 120, 240, 300]);
    }

    #[test]
    fn doubling_starts_over_after_five_quiet_minutes() {
        let p = passive(1, 10_000);
        assert_eq!(p.on_failure(1), Some(Duration::from_secs(10)));
        p.on_ejection_end(10_001);
        assert_eq!(p.on_failure(20_000), Some(Duration::from_secs(20)));
        p.on_ejection_end(40_000);
        assert_eq!(
            p.on_failure(40_000 + 300_000),
            Some(Duration::from_secs(10)),
            "five minutes without an ejection"
        );
    }

    #[test]
    fn retuning_keeps_the_run_of_failures_and_applies_the_new_threshold() {
        let p = passive(5, 100);
        assert_eq!(p.on_failure(1), None);
        assert_eq!(p.on_failure(2), None);
        p.retune(&PassiveSpec {
            consecutive_failures: 3,
            ejection: Duration::from_millis(400),
        });
        assert_eq!(
            p.on_failure(3),
            Some(Duration::from_millis(400)),
            "the third in a row"
        );
    }

    #[test]
    fn a_threshold_of_zero_never_ejects() {
        let p = passive(0, 100);
        for t in 0..100 {
            assert_eq!(p.on_failure(t), None);
        }
    }
}
