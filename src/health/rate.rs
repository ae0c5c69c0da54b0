//! The failure-rate rule of passive ejection (DESIGN §7.2): attempts and failures counted in
//! a ring of per-second buckets on the live upstream, no lock. Each bucket is one `AtomicU64`
//! packing the second it counts (a tag) with its attempts and failures, so a request records
//! its outcome with one load and one `fetch_add` (a compare-exchange on the first attempt of a
//! new second). The rule itself, [`trips_recently`], is a pure function: the newest seconds of
//! the window holding at least `min_requests` attempts (or any longer span within it) eject
//! when at least `failure_rate` of their attempts failed; it is evaluated only when a failure
//! is recorded.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets in the ring: more than the longest window (`config::defaults::MAX_WINDOW`).
pub const SLOTS: usize = 64;

/// Bits of a bucket's failures (the lowest), attempts (next) and second tag (the highest).
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const TAG_SHIFT: u32 = 2 * COUNT_BITS;
const TAG_MASK: u64 = (1 << (64 - TAG_SHIFT)) - 1;
const ONE_ATTEMPT: u64 = 1 << COUNT_BITS;
const ONE_FAILURE: u64 = ONE_ATTEMPT | 1;

/// Whether `failures` out of `attempts` eject: at least `min_requests` attempts (0 turns the
/// rule off) of which at least the share `rate` failed.
pub fn trips(attempts: u32, failures: u32, min_requests: u32, rate: f64) -> bool {
    min_requests > 0
        && attempts >= min_requests
        && f64::from(failures) >= rate * f64::from(attempts)
}

/// Whether any span of the most recent seconds within the window trips: `seconds` are the
/// (attempts, failures) of each second, the newest first. So healthy traffic earlier in the
/// window does not hide a CDN that started failing half its requests a second ago: the
/// newest seconds holding `min_requests` attempts judge it. Returns the span's counts and
/// length in seconds.
pub fn trips_recently(
    seconds: impl IntoIterator<Item = (u32, u32)>,
    min_requests: u32,
    rate: f64,
) -> Option<(u32, u32, u64)> {
    let (mut attempts, mut failures) = (0u32, 0u32);
    for (n, (a, f)) in (1u64..).zip(seconds) {
        attempts = attempts.saturating_add(a);
        failures = failures.saturating_add(f);
        if trips(attempts, failures, min_requests, rate) {
            return Some((attempts, failures, n));
        }
    }
    None
}

/// Attempts and failures per second over the last [`SLOTS`] seconds.
#[derive(Debug)]
pub struct Ring {
    slots: [AtomicU64; SLOTS],
}

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// A second's tag: never 0, which marks an empty bucket.
fn tag(second: u64) -> u64 {
    (second % TAG_MASK) + 1
}

fn slot_of(second: u64) -> usize {
    // SLOTS is a power of two and far below usize::MAX: the cast keeps the value.
    (second % SLOTS as u64) as usize
}

impl Ring {
    /// Counts one attempt at `now_ms` (a failure if `failed`).
    pub fn record(&self, now_ms: u64, failed: bool) {
        let second = now_ms / 1000;
        let slot = &self.slots[slot_of(second)];
        let add = if failed { ONE_FAILURE } else { ONE_ATTEMPT };
        let want = tag(second);
        let mut seen = slot.load(Ordering::Relaxed);
        loop {
            if seen >> TAG_SHIFT == want {
                // This second's bucket. A count that reaches 2^20 in one second would carry
                // into the tag, which then starts the bucket over: never a wrong ejection.
                slot.fetch_add(add, Ordering::Relaxed);
                return;
            }
            // The first attempt of a new second takes the bucket over.
            let fresh = (want << TAG_SHIFT) | add;
            match slot.compare_exchange_weak(seen, fresh, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => seen = now,
            }
        }
    }

    /// Attempts and failures of each of the `window_secs` seconds up to and including
    /// `now_ms`'s, the newest first.
    pub fn seconds(&self, now_ms: u64, window_secs: u64) -> impl Iterator<Item = (u32, u32)> + '_ {
        let second = now_ms / 1000;
        (0..window_secs.min(SLOTS as u64))
            .map_while(move |back| second.checked_sub(back))
            .map(|s| {
                let v = self.slots[slot_of(s)].load(Ordering::Relaxed);
                if v >> TAG_SHIFT == tag(s) {
                    // Each count has 20 bits: it fits a u32.
                    (
                        ((v >> COUNT_BITS) & COUNT_MASK) as u32,
                        (v & COUNT_MASK) as u32,
                    )
                } else {
                    (0, 0)
                }
            })
    }

    /// Attempts and failures in the `window_secs` seconds up to and including `now_ms`'s.
    pub fn sum(&self, now_ms: u64, window_secs: u64) -> (u32, u32) {
        self.seconds(now_ms, window_secs)
            .fold((0u32, 0u32), |(a, f), (da, df)| {
                (a.saturating_add(da), f.saturating_add(df))
            })
    }

    /// Forgets everything counted (an ejection ended: it starts from nothing).
    pub fn clear(&self) {
        for s in &self.slots {
            s.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_rule() {
        // (attempts, failures, min_requests, rate) -> ejects
        let table = [
            (20, 10, 20, 0.5, true),
            (20, 9, 20, 0.5, false),
            (19, 19, 20, 0.5, false), // too few attempts to judge
            (100, 50, 20, 0.5, true),
            (100, 49, 20, 0.5, false),
            (1000, 1000, 0, 0.5, false), // min_requests = 0: off
            (30, 30, 20, 1.0, true),
            (30, 29, 20, 1.0, false),
            (20, 1, 20, 0.05, true),
            (0, 0, 1, 0.5, false),
        ];
        for (attempts, failures, min, rate, want) in table {
            assert_eq!(
                trips(attempts, failures, min, rate),
                want,
                "{failures}/{attempts} min_requests={min} rate={rate}"
            );
        }
    }

    #[test]
    fn the_newest_seconds_judge_not_the_whole_window() {
        // (seconds newest first, min_requests, rate) -> (attempts, failures, span in s)
        let healthy_past = [(250, 125), (500, 0), (500, 0), (500, 0)];
        assert_eq!(
            trips_recently(healthy_past, 20, 0.5),
            Some((250, 125, 1)),
            "half of this second failed: the healthy seconds before do not hide it"
        );
        assert_eq!(
            trips_recently([(10, 5), (500, 0)], 20, 0.5),
            None,
            "too few now"
        );
        assert_eq!(
            trips_recently([(10, 6), (12, 6), (500, 0)], 20, 0.5),
            Some((22, 12, 2)),
            "low traffic: the newest seconds holding min_requests"
        );
        assert_eq!(
            trips_recently([(100, 49), (100, 51)], 20, 0.5),
            Some((200, 100, 2))
        );
        assert_eq!(trips_recently([(100, 100)], 0, 0.5), None, "off");
        assert_eq!(trips_recently([], 20, 0.5), None);
    }

    #[test]
    fn the_window_counts_only_its_own_seconds() {
        let r = Ring::default();
        r.record(500, true); // second 0
        r.record(1_500, false); // second 1
        r.record(1_900, true);
        r.record(9_999, false); // second 9
        assert_eq!(r.sum(9_999, 10), (4, 2));
        assert_eq!(r.sum(10_000, 10), (3, 1), "second 0 left the window");
        assert_eq!(r.sum(9_999, 1), (1, 0));
    }

    #[test]
    fn a_bucket_reused_a_ring_later_starts_over() {
        let r = Ring::default();
        r.record(3_000, true);
        let later = 3_000 + SLOTS as u64 * 1000;
        r.record(later, false);
        assert_eq!(r.sum(later, 10), (1, 0));
        assert_eq!(r.sum(later + 5_000, 10), (1, 0));
        assert_eq!(r.sum(later + 10_000, 10), (0, 0));
    }

    #[test]
    fn clearing_forgets_everything() {
        let r = Ring::default();
        for t in 0..50 {
            r.record(t * 100, t % 2 == 0);
        }
        assert_eq!(r.sum(4_999, 10), (50, 25));
        r.clear();
        assert_eq!(r.sum(4_999, 10), (0, 0));
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let r = std::sync::Arc::new(Ring::default());
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let r = std::sync::Arc::clone(&r);
                std::thread::spawn(move || {
                    for n in 0..10_000u64 {
                        r.record(5_000 + (n % 3) * 1000, (n + i) % 4 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a recording thread");
        }
        assert_eq!(r.sum(7_999, 10), (40_000, 10_000));
    }
}
