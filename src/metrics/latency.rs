//! Each upstream's attempt latency (request sent to response head) as a histogram of atomics
//! with log-linear buckets: recording is one relaxed atomic add; percentiles come from the
//! difference of two snapshots (the admin history's sampler takes one a second). Not exported
//! to Prometheus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Buckets per power of two of microseconds (the upper bound of a bucket is at most 25 %
/// above its lower bound).
const PER_OCTAVE: usize = 4;

/// Bucket count: 1 µs steps up to 4 µs, then four per octave up to the last, which holds
/// everything from 58.7 s up.
pub const LATENCY_BUCKETS: usize = 100;

/// The bucket of a latency of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    if us < PER_OCTAVE as u64 {
        // Fits: us < 4.
        return us as usize;
    }
    let octave = 63 - us.leading_zeros() as usize; // ≥ 2
    let step = ((us >> (octave - 2)) & 3) as usize;
    (PER_OCTAVE * (octave - 1) + step).min(LATENCY_BUCKETS - 1)
}

/// The lower bound and width (µs) of bucket `i`.
fn bounds_of(i: usize) -> (f64, f64) {
    if i < PER_OCTAVE {
        return (i as f64, 1.0);
    }
    let octave = i / PER_OCTAVE + 1;
    let step = (i % PER_OCTAVE) as u64;
    let width = 1u64 << (octave - 2);
    (((4 + step) * width) as f64, width as f64)
}

/// One upstream's latency histogram; clones share the buckets.
#[derive(Clone, Debug)]
pub struct LatencyHistogram(Arc<[AtomicU64; LATENCY_BUCKETS]>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(Arc::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl LatencyHistogram {
    /// Records one latency: a relaxed atomic add.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> LatencyCounts {
        LatencyCounts(Box::new(std::array::from_fn(|i| {
            self.0[i].load(Ordering::Relaxed)
        })))
    }
}

/// Counts per bucket: a snapshot, or the difference of two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyCounts(Box<[u64; LATENCY_BUCKETS]>);

impl Default for LatencyCounts {
    fn default() -> Self {
        LatencyCounts(Box::new([0; LATENCY_BUCKETS]))
    }
}

impl LatencyCounts {
    /// What was recorded after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &LatencyCounts) -> LatencyCounts {
        LatencyCounts(Box::new(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        })))
    }

    /// How many latencies are counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The `q` quantile (0 < q ≤ 1), interpolated within its bucket; None when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
        let mut below = 0.0;
        for (i, n) in self.0.iter().enumerate() {
            let n = *n as f64;
            if n > 0.0 && below + n >= rank {
                let (lower, width) = bounds_of(i);
                let us = lower + width * (rank - below) / n;
                return Some(Duration::from_nanos((us * 1000.0) as u64));
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_each_at_most_a_quarter_wide() {
        let mut expected_lower = 0.0;
        for i in 0..LATENCY_BUCKETS {
            let (lower, width) = bounds_of(i);
            assert_eq!(lower, expected_lower, "bucket {i}");
            assert!(i < PER_OCTAVE || width / lower <= 0.25, "bucket {i}");
            assert_eq!(bucket_of(lower as u64), i);
            assert_eq!(bucket_of((lower + width) as u64 - 1), i);
            expected_lower = lower + width;
        }
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
        assert!(bounds_of(LATENCY_BUCKETS - 1).0 > 58e6);
    }

    #[test]
    fn quantiles_land_within_a_bucket_of_the_truth() {
        let h = LatencyHistogram::default();
        for ms in 1..=100 {
            h.observe(Duration::from_millis(ms));
        }
        let counts = h.snapshot();
        assert_eq!(counts.total(), 100);
        let p50 = counts.quantile(0.5).expect("p50").as_secs_f64() * 1e3;
        let p95 = counts.quantile(0.95).expect("p95").as_secs_f64() * 1e3;
        assert!((40.0..=62.5).contains(&p50), "{p50}");
        assert!((76.0..=118.75).contains(&p95), "{p95}");
    }

    #[test]
    fn a_window_is_the_difference_of_two_snapshots() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_secs(2));
        let before = h.snapshot();
        h.observe(Duration::from_micros(300));
        let window = h.snapshot().since(&before);
        assert_eq!(window.total(), 1);
        let p99 = window.quantile(0.99).expect("p99");
        assert!(p99 < Duration::from_micros(380), "{p99:?}");
        assert_eq!(LatencyCounts::default().quantile(0.5), None);
    }
}
