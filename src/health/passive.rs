//! Passive failure detection: failed live attempts in a row, or too large a share of failed
//! attempts within a window (the [`rate`](super::rate) rule, DESIGN §7.2), eject an upstream for
//! a while, doubling on repeats (capped at five minutes) and starting over after five minutes
//! without an ejection; either rule ejects and the doubling applies to both. Atomics only, so the request path records outcomes without a lock; the
//! decision to eject is taken by exactly one request (the one whose failure reaches the
//! threshold). Times are milliseconds on a monotonic clock the caller supplies.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::rate::{self, Ring};
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
    /// The failure-rate rule: attempts within `window_s` (0 turns it off) before it applies
    /// (retunable by a reload).
    min_requests: AtomicU32,
    /// The failure-rate rule's share, as `f64` bits (retunable by a reload).
    rate_bits: AtomicU64,
    /// The failure-rate rule's window, in whole seconds (retunable by a reload).
    window_s: AtomicU64,
    /// Attempts and failures per second.
    ring: Ring,
}

/// Which rule ejected an upstream, for the event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// This many failed attempts in a row.
    Consecutive(u32),
    /// `failures` of `attempts` within the last `window_s` seconds failed.
    Rate {
        /// Failed attempts counted.
        failures: u32,
        /// Attempts counted.
        attempts: u32,
        /// The span of the window that was judged (the newest seconds), in seconds.
        window_s: u64,
    },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Rule::Consecutive(n) => write!(f, "{n} failed attempts in a row"),
            Rule::Rate {
                failures,
                attempts,
                window_s,
            } => write!(
                f,
                "{failures} of {attempts} attempts failed within the last {window_s}s"
            ),
        }
    }
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
            min_requests: AtomicU32::new(spec.min_requests),
            rate_bits: AtomicU64::new(spec.failure_rate.to_bits()),
            window_s: AtomicU64::new(spec.window.as_secs().max(1)),
            ring: Ring::default(),
        }
    }

    /// Applies reloaded settings; the run of failures and the ejection history are kept.
    pub fn retune(&self, spec: &PassiveSpec) {
        self.threshold
            .store(spec.consecutive_failures, Ordering::Relaxed);
        self.base_ms.store(millis(spec.ejection), Ordering::Relaxed);
        self.min_requests
            .store(spec.min_requests, Ordering::Relaxed);
        self.rate_bits
            .store(spec.failure_rate.to_bits(), Ordering::Relaxed);
        self.window_s
            .store(spec.window.as_secs().max(1), Ordering::Relaxed);
    }

    /// Failures in a row that eject (0: never).
    pub fn threshold(&self) -> u32 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// The first ejection's length.
    pub fn base(&self) -> Duration {
        Duration::from_millis(self.base_ms.load(Ordering::Relaxed))
    }

    /// Whether the failure-rate rule is on (`min_requests` > 0): only then does an attempt
    /// need the time.
    pub fn counts_rate(&self) -> bool {
        self.min_requests.load(Ordering::Relaxed) != 0
    }

    /// A successful attempt (at `now_ms`, when the rate rule is on): the run of failures is
    /// broken.
    pub fn on_success(&self, now_ms: Option<u64>) {
        // Read first: in the common case nothing is written and the cache line stays shared.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
        if let Some(now) = now_ms {
            self.ring.record(now, false);
        }
    }

    /// A failed attempt at `now_ms`; returns how long to eject for, and by which rule, when
    /// this failure is the one that makes a rule eject.
    pub fn on_failure(&self, now_ms: u64) -> Option<(Duration, Rule)> {
        if self.ejected.load(Ordering::Acquire) {
            return None;
        }
        let threshold = self.threshold();
        let min_requests = self.min_requests.load(Ordering::Relaxed);
        let mut rule = None;
        if threshold != 0 {
            let n = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
            // `>=`: a threshold lowered by a reload below the current run ejects at once.
            if n >= threshold {
                rule = Some(Rule::Consecutive(n));
            }
        }
        if min_requests != 0 {
            self.ring.record(now_ms, true);
            let window_s = self.window_s.load(Ordering::Relaxed);
            let share = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
            if rule.is_none() {
                let seconds = self.ring.seconds(now_ms, window_s);
                if let Some((attempts, failures, span_s)) =
                    rate::trips_recently(seconds, min_requests, share)
                {
                    rule = Some(Rule::Rate {
                        failures,
                        attempts,
                        window_s: span_s,
                    });
                }
            }
        }
        let rule = rule?;
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
        Some((
            self.base().saturating_mul(1 << level).min(MAX_EJECTION),
            rule,
        ))
    }

    /// The ejection that began with `on_failure` ended at `now_ms`.
    pub fn on_ejection_end(&self, now_ms: u64) {
        self.last_end_ms.store(now_ms.max(1), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        // What was counted before the ejection must not eject it again at once.
        self.ring.clear();
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
        Passive::new(&PassiveSpec::consecutive(
            threshold,
            Duration::from_millis(ejection_ms),
        ))
    }

    /// Only how long it ejects for.
    fn fails(p: &Passive, now_ms: u64) -> Option<Duration> {
        p.on_failure(now_ms).map(|(d, _)| d)
    }

    /// The failure-rate rule alone: `min` attempts, `rate`, a 10 s window, 1 s ejections.
    fn by_rate(min: u32, rate: f64) -> Passive {
        Passive::new(&PassiveSpec {
            min_requests: min,
            failure_rate: rate,
            ..PassiveSpec::consecutive(0, Duration::from_secs(1))
        })
    }

    #[test]
    fn the_failure_that_reaches_the_threshold_ejects() {
        let p = passive(3, 100);
        assert_eq!(fails(&p, 1), None);
        assert_eq!(fails(&p, 2), None);
        assert_eq!(fails(&p, 3), Some(Duration::from_millis(100)));
        assert_eq!(fails(&p, 4), None, "no second ejection while ejected");
    }

    #[test]
    fn a_success_breaks_the_run() {
        let p = passive(2, 100);
        for t in 0..10 {
            assert_eq!(fails(&p, t), None);
            p.on_success(None);
        }
    }

    #[test]
    fn repeated_ejections_double_up_to_five_minutes() {
        let p = passive(1, 60_000);
        let mut now = 1;
        let mut seen = Vec::new();
        for _ in 0..4 {
            let d = fails(&p, now).expect("ejects");
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
        assert_eq!(fails(&p, 1), Some(Duration::from_secs(10)));
        p.on_ejection_end(10_001);
        assert_eq!(fails(&p, 20_000), Some(Duration::from_secs(20)));
        p.on_ejection_end(40_000);
        assert_eq!(
            fails(&p, 40_000 + 300_000),
            Some(Duration::from_secs(10)),
            "five minutes without an ejection"
        );
    }

    #[test]
    fn retuning_keeps_the_run_of_failures_and_applies_the_new_threshold() {
        let p = passive(5, 100);
        assert_eq!(fails(&p, 1), None);
        assert_eq!(fails(&p, 2), None);
        p.retune(&PassiveSpec::consecutive(3, Duration::from_millis(400)));
        assert_eq!(
            fails(&p, 3),
            Some(Duration::from_millis(400)),
            "the third in a row"
        );
    }

    #[test]
    fn failing_every_other_attempt_is_ejected_by_rate_never_by_the_run() {
        let p = Passive::new(&PassiveSpec {
            min_requests: 20,
            failure_rate: 0.5,
            ..PassiveSpec::consecutive(3, Duration::from_secs(1))
        });
        let mut ejected = None;
        for n in 0..40u64 {
            let now = 1_000 + n * 10;
            if n % 2 == 0 {
                p.on_success(Some(now));
            } else if let Some(e) = p.on_failure(now) {
                ejected = Some((n, e));
                break;
            }
        }
        let rule = Rule::Rate {
            failures: 10,
            attempts: 20,
            window_s: 1,
        };
        assert_eq!(ejected, Some((19, (Duration::from_secs(1), rule))));
        assert_eq!(
            rule.to_string(),
            "10 of 20 attempts failed within the last 1s"
        );
    }

    #[test]
    fn a_healthy_past_in_the_window_does_not_hide_a_fresh_half_failure() {
        let p = by_rate(20, 0.5);
        for n in 0..5_000u64 {
            p.on_success(Some(1_000 + n));
        }
        // Six seconds later it starts failing every other attempt.
        let mut at = None;
        for n in 0..100u64 {
            let now = 7_000 + n;
            if n % 2 == 0 {
                p.on_success(Some(now));
            } else if let Some((_, rule)) = p.on_failure(now) {
                at = Some((n, rule));
                break;
            }
        }
        let rule = Rule::Rate {
            failures: 10,
            attempts: 20,
            window_s: 1,
        };
        assert_eq!(at, Some((19, rule)), "judged on the newest second");
    }

    #[test]
    fn the_rate_rule_doubles_like_the_run_and_forgets_its_counts_after_an_ejection() {
        let p = by_rate(4, 0.5);
        let mut now = 1_000;
        let mut seen = Vec::new();
        for _ in 0..3 {
            p.on_success(Some(now));
            p.on_success(Some(now));
            assert_eq!(fails(&p, now), None);
            let d = fails(&p, now).expect("2 of 4 failed");
            seen.push(d.as_secs());
            now += 100;
            p.on_ejection_end(now);
            assert_eq!(fails(&p, now), None, "counts start from nothing: 1 of 1");
            now += 20_000;
        }
        assert_eq!(seen, vec![1, 2, 4]);
    }

    #[test]
    fn old_attempts_leave_the_window() {
        let p = by_rate(4, 0.5);
        for _ in 0..3 {
            assert_eq!(fails(&p, 1_000), None);
        }
        // Ten seconds later those three failures are out of the window.
        p.on_success(Some(11_000));
        p.on_success(Some(11_000));
        p.on_success(Some(11_000));
        assert_eq!(fails(&p, 11_500), None, "1 of 4");
    }

    #[test]
    fn retuning_turns_the_rate_rule_on_and_off() {
        let p = by_rate(0, 0.5);
        assert!(!p.counts_rate());
        for _ in 0..50 {
            assert_eq!(fails(&p, 1_000), None);
        }
        p.retune(&PassiveSpec {
            min_requests: 20,
            ..PassiveSpec::consecutive(0, Duration::from_secs(1))
        });
        assert!(p.counts_rate());
        let ejected = (0..20).filter_map(|_| fails(&p, 2_000)).count();
        assert_eq!(ejected, 1, "20 of 20 failed: ejected once");
    }

    #[test]
    fn a_threshold_of_zero_never_ejects() {
        let p = passive(0, 100);
        for t in 0..100 {
            assert_eq!(fails(&p, t), None);
        }
    }
}
