//! A route's retry budget (DESIGN §7.4): retries after a request was sent, and hedges, may add
//! at most `budget` of the route's requests plus `budget_min_per_sec` per second. Finagle's
//! `RetryBudget` shape, without a lock: each request deposits `budget` of a token and each paid
//! retry withdraws one, into per-second slots over a sliding [`WINDOW_SECS`] window; the
//! minimum is a reserve of `budget_min_per_sec × WINDOW_SECS` tokens in every window. Deposits
//! leave the window with their second, so a quiet hour does not save up a burst.
//!
//! Lives in the route's [`RouteState`](super::RouteState): a reload that changes only the
//! budget's settings keeps its balance.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// Seconds of requests and retries the balance counts.
pub const WINDOW_SECS: u64 = 10;

/// Milli-tokens per token: deposits are fractions of a token.
const MILLI: i64 = 1000;

/// One route's retry budget: per second of the window, its net deposits in milli-tokens.
#[derive(Debug)]
pub struct RetryBudget {
    base: Instant,
    /// The second (since `base`, plus one; 0: never used) each slot holds.
    stamps: [AtomicU64; WINDOW_SECS as usize],
    /// Deposits minus withdrawals in that second, in milli-tokens.
    net: [AtomicI64; WINDOW_SECS as usize],
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Instant::now())
    }
}

impl RetryBudget {
    /// An empty budget whose clock starts at `base`.
    pub fn new(base: Instant) -> RetryBudget {
        RetryBudget {
            base,
            stamps: std::array::from_fn(|_| AtomicU64::new(0)),
            net: std::array::from_fn(|_| AtomicI64::new(0)),
        }
    }

    /// The second of `now`, plus one.
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_secs() + 1
    }

    /// Adds `milli` to the slot of `now`'s second, taking the slot over if it held an older
    /// second (a concurrent add at that boundary may be lost: the budget is an estimate).
    fn add(&self, now: Instant, milli: i64) {
        let s = self.second(now);
        let i = (s % WINDOW_SECS) as usize;
        let stamp = self.stamps[i].load(Ordering::Relaxed);
        if stamp != s {
            if stamp > s {
                return; // a straggler from a second already gone
            }
            if self.stamps[i]
                .compare_exchange(stamp, s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.net[i].store(milli, Ordering::Relaxed);
                return;
            }
        }
        self.net[i].fetch_add(milli, Ordering::Relaxed);
    }

    /// Counts one request of the route: deposits `share` of a token.
    pub fn deposit(&self, now: Instant, share: f64) {
        // Rounded to the nearest milli-token (shares are in 0..=1: no overflow).
        let milli = (share * MILLI as f64 + 0.5) as i64;
        if milli > 0 {
            self.add(now, milli);
        }
    }

    /// Tokens left at `now` (in milli-tokens), with a reserve of `min_per_sec` per second.
    fn balance(&self, now: Instant, min_per_sec: u32) -> i64 {
        let s = self.second(now);
        let oldest = s.saturating_sub(WINDOW_SECS - 1);
        let mut sum = i64::from(min_per_sec) * WINDOW_SECS as i64 * MILLI;
        for (stamp, net) in self.stamps.iter().zip(&self.net) {
            let t = stamp.load(Ordering::Relaxed);
            if t >= oldest && t <= s {
                sum += net.load(Ordering::Relaxed);
            }
        }
        sum
    }

    /// Takes one token for a retry or hedge at `now` if the window has one left.
    pub fn try_spend(&self, now: Instant, min_per_sec: u32) -> bool {
        if self.balance(now, min_per_sec) < MILLI {
            return false;
        }
        self.add(now, -MILLI);
        true
    }

    /// Whole tokens left at `now` (for tests and `/status`-style reads).
    pub fn tokens(&self, now: Instant, min_per_sec: u32) -> i64 {
        self.balance(now, min_per_sec).div_euclid(MILLI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn an_idle_route_has_only_the_reserve() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        assert_eq!(b.tokens(t0, 10), 100);
        assert_eq!(b.tokens(t0, 0), 0);
        assert!(!b.try_spend(t0, 0));
    }

    #[test]
    fn each_request_earns_its_share_of_a_retry() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..50 {
            b.deposit(t0, 0.2);
        }
        let spent = (0..100).filter(|_| b.try_spend(t0, 0)).count();
        assert_eq!(spent, 10, "20 % of 50 requests");
    }

    #[test]
    fn the_reserve_allows_min_per_sec_over_the_window_and_comes_back_as_it_slides() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        let spent = (0..100).filter(|_| b.try_spend(t0, 2)).count();
        assert_eq!(spent, 20, "2 per second over 10 s, with no requests at all");
        assert!(!b.try_spend(t0 + S * 9, 2), "still inside the window");
        assert!(
            b.try_spend(t0 + S * 10, 2),
            "the withdrawals left the window"
        );
    }

    #[test]
    fn deposits_expire_with_their_second() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..100 {
            b.deposit(t0, 0.5);
        }
        assert_eq!(b.tokens(t0 + S * 9, 0), 50);
        assert_eq!(
            b.tokens(t0 + S * 10, 0),
            0,
            "a quiet window saves nothing up"
        );
    }

    #[test]
    fn a_brownout_is_held_to_the_budget_share_plus_the_minimum() {
        // 100 requests a second for 60 s, every one wanting a retry.
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        let (mut requests, mut retries) = (0u64, 0u64);
        for ms in (0..60_000).step_by(10) {
            let now = t0 + Duration::from_millis(ms);
            b.deposit(now, 0.2);
            requests += 1;
            if b.try_spend(now, 10) {
                retries += 1;
            }
        }
        let bound = requests / 5 + 10 * 60;
        assert!(
            retries <= bound + 100,
            "{retries} > {bound} + one window's reserve"
        );
        assert!(retries >= requests / 5, "{retries}: the share is usable");
    }
}
