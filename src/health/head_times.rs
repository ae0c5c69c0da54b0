//! An upstream's recent time to response head, for `hedge_after = "auto"` (DESIGN §7.4): a
//! streaming p95 without a lock. Samples go into a small histogram of atomics over the only
//! range that matters (the delay is clamped to [50 ms, 1 s]), in two [`PERIOD`]-long windows
//! used in turn: the estimate reads the current and the previous one, so it follows the last
//! 10–20 s and forgets older traffic whole (no decay factor to tune).
//!
//! Why a histogram rather than a decaying estimator (e.g. a stochastic p95 tracker): it is one
//! relaxed add per sample, any quantile can be read from it, and with the bucket's upper bound
//! as the answer the hedge never fires before the recent p95. The attempts a hedge beat are
//! recorded too, at the time they were dropped (a lower bound of their latency): without them
//! the estimate would see only the fast answers, and sink as hedges cut the tail off.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::defaults::{HEDGE_AUTO_MAX, HEDGE_AUTO_MIN};

/// How long each of the two windows lasts.
pub const PERIOD: Duration = Duration::from_secs(10);

/// Fewer samples than this in the two windows: the delay is [`HEDGE_AUTO_MAX`].
pub const MIN_SAMPLES: u32 = 20;

/// Upper bounds (ms) of the buckets, from `HEDGE_AUTO_MIN` to `HEDGE_AUTO_MAX`, each about a
/// quarter above the one before; one more bucket holds everything slower.
const BOUNDS_MS: [u64; 14] = [
    50, 63, 79, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000,
];

const BUCKETS: usize = BOUNDS_MS.len() + 1;

/// The bucket of a latency.
fn bucket_of(d: Duration) -> usize {
    let ms = d.as_millis();
    BOUNDS_MS
        .iter()
        .position(|b| ms <= u128::from(*b))
        .unwrap_or(BOUNDS_MS.len())
}

/// One upstream's recent times to response head.
#[derive(Debug)]
pub struct HeadTimes {
    base: Instant,
    /// The newest period anything was recorded in (since `base`).
    period: AtomicU64,
    /// Per window (period % 2), per bucket.
    counts: [[AtomicU32; BUCKETS]; 2],
}

impl Default for HeadTimes {
    fn default() -> Self {
        HeadTimes::new(Instant::now())
    }
}

impl HeadTimes {
    /// No samples yet; periods counted from `base`.
    pub fn new(base: Instant) -> HeadTimes {
        HeadTimes {
            base,
            period: AtomicU64::new(0),
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU32::new(0))),
        }
    }

    fn period_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_secs() / PERIOD.as_secs()
    }

    fn clear(&self, window: usize) {
        for c in &self.counts[window] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Records an attempt that got its response head (or was dropped by a hedge) `took` after
    /// it started, at `at`: a relaxed add, and at the turn of a period, the clearing of the
    /// window it reuses (a sample added at that very moment may be lost: it is an estimate).
    pub fn record(&self, at: Instant, took: Duration) {
        let p = self.period_of(at);
        let seen = self.period.load(Ordering::Relaxed);
        if p > seen
            && self
                .period
                .compare_exchange(seen, p, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.clear((p % 2) as usize);
            if p > seen + 1 {
                self.clear(((p + 1) % 2) as usize);
            }
        } else if p + 1 < seen {
            return; // older than both windows
        }
        self.counts[(p % 2) as usize][bucket_of(took)].fetch_add(1, Ordering::Relaxed);
    }

    /// The hedge delay at `now`: the upper bound of the bucket holding the p95 of the recent
    /// samples, within [`HEDGE_AUTO_MIN`, `HEDGE_AUTO_MAX`]; `HEDGE_AUTO_MAX` with fewer than
    /// [`MIN_SAMPLES`].
    pub fn hedge_delay(&self, now: Instant) -> Duration {
        let p = self.period_of(now);
        let seen = self.period.load(Ordering::Relaxed);
        let windows: &[usize] = if p == seen {
            &[0, 1]
        } else if p == seen + 1 {
            // Only the window of `seen` is recent; the other is older than the previous period.
            match seen % 2 {
                0 => &[0],
                _ => &[1],
            }
        } else {
            &[]
        };
        let mut counts = [0u32; BUCKETS];
        for w in windows {
            for (n, c) in counts.iter_mut().zip(&self.counts[*w]) {
                *n = n.saturating_add(c.load(Ordering::Relaxed));
            }
        }
        let total: u32 = counts.iter().fold(0, |a, n| a.saturating_add(*n));
        if total < MIN_SAMPLES {
            return HEDGE_AUTO_MAX;
        }
        // The 95th percentile's rank, rounded up.
        let rank = (u64::from(total) * 95).div_ceil(100);
        let mut below = 0u64;
        for (i, n) in counts.iter().enumerate() {
            below += u64::from(*n);
            if below >= rank {
                return BOUNDS_MS
                    .get(i)
                    .map_or(HEDGE_AUTO_MAX, |ms| Duration::from_millis(*ms))
                    .clamp(HEDGE_AUTO_MIN, HEDGE_AUTO_MAX);
            }
        }
        HEDGE_AUTO_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn buckets_climb_by_about_a_quarter_from_the_least_to_the_greatest_delay() {
        assert_eq!(Duration::from_millis(BOUNDS_MS[0]), HEDGE_AUTO_MIN);
        assert_eq!(Duration::from_millis(BOUNDS_MS[13]), HEDGE_AUTO_MAX);
        for w in BOUNDS_MS.windows(2) {
            let ratio = w[1] as f64 / w[0] as f64;
            assert!((1.2..=1.3).contains(&ratio), "{w:?}");
        }
        assert_eq!(bucket_of(MS), 0);
        assert_eq!(bucket_of(MS * 51), 1);
        assert_eq!(bucket_of(Duration::from_secs(15)), BUCKETS - 1);
    }

    #[test]
    fn too_few_samples_hedge_after_the_greatest_delay() {
        let t0 = Instant::now();
        let h = HeadTimes::new(t0);
        for _ in 0..MIN_SAMPLES - 1 {
            h.record(t0, MS);
        }
        assert_eq!(h.hedge_delay(t0), HEDGE_AUTO_MAX);
        h.record(t0, MS);
        assert_eq!(
            h.hedge_delay(t0),
            HEDGE_AUTO_MIN,
            "fast answers: the least delay"
        );
    }

    #[test]
    fn the_delay_is_the_upper_bound_of_the_p95_bucket() {
        let t0 = Instant::now();
        let h = HeadTimes::new(t0);
        // 94 fast answers, 6 at 300 ms: the p95 is among the slow ones.
        for i in 0..100 {
            h.record(t0, if i < 94 { MS * 2 } else { MS * 300 });
        }
        assert_eq!(h.hedge_delay(t0), MS * 315);
        // A slow-but-healthy upstream (every answer after 300 ms) is not hedged at 300 ms.
        let slow = HeadTimes::new(t0);
        for _ in 0..100 {
            slow.record(t0, MS * 300);
        }
        assert!(slow.hedge_delay(t0) > MS * 300);
        let slower = HeadTimes::new(t0);
        for _ in 0..100 {
            slower.record(t0, MS * 3000);
        }
        assert_eq!(slower.hedge_delay(t0), HEDGE_AUTO_MAX);
    }

    #[test]
    fn old_samples_leave_with_their_window() {
        let t0 = Instant::now();
        let h = HeadTimes::new(t0);
        for _ in 0..100 {
            h.record(t0, MS * 600);
        }
        assert_eq!(
            h.hedge_delay(t0 + PERIOD),
            MS * 630,
            "the previous window counts"
        );
        assert_eq!(
            h.hedge_delay(t0 + PERIOD * 2),
            HEDGE_AUTO_MAX,
            "then nothing is recent"
        );
        for _ in 0..100 {
            h.record(t0 + PERIOD, MS * 20);
        }
        assert_eq!(h.hedge_delay(t0 + PERIOD), MS * 630, "both windows");
        for _ in 0..100 {
            h.record(t0 + PERIOD * 2, MS * 20);
        }
        assert_eq!(
            h.hedge_delay(t0 + PERIOD * 2),
            HEDGE_AUTO_MIN,
            "the slow window is gone"
        );
    }
}
