//! Live health of an upstream: reason flags (Envoy's `HealthFlag` idea) and in-flight counts,
//! all atomics on the long-lived upstream object, read lock-free on the request path. Each
//! mechanism (active checks, passive ejection, operator drain) sets and clears only its own
//! flag; the upstream is usable while no flag is set.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Why an upstream is not usable; a bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Flag {
    /// Active health checks judged it unhealthy.
    ActiveFailed = 1,
    /// Passive detection ejected it for a while.
    Ejected = 2,
    /// An operator drained it.
    Drained = 4,
}

/// Live state of one upstream.
#[derive(Debug, Default)]
pub struct Health {
    flags: AtomicU8,
    in_flight: AtomicUsize,
}

impl Health {
    /// Whether requests may be sent to it (no reason flag set).
    pub fn is_available(&self) -> bool {
        self.flags.load(Ordering::Acquire) == 0
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.load(Ordering::Acquire) & flag as u8 != 0
    }

    /// Sets `flag`; returns whether it was newly set.
    pub fn set(&self, flag: Flag) -> bool {
        self.flags.fetch_or(flag as u8, Ordering::AcqRel) & flag as u8 == 0
    }

    /// Clears `flag`; returns whether it was set.
    pub fn clear(&self, flag: Flag) -> bool {
        self.flags.fetch_and(!(flag as u8), Ordering::AcqRel) & flag as u8 != 0
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

    #[test]
    fn each_mechanism_clears_only_its_own_flag() {
        let h = Health::default();
        assert!(h.is_available());
        assert!(h.set(Flag::ActiveFailed));
        assert!(h.set(Flag::Drained));
        assert!(!h.set(Flag::Drained));
        assert!(h.clear(Flag::ActiveFailed));
        assert!(!h.is_available(), "still drained");
        assert!(h.has(Flag::Drained) && !h.has(Flag::Ejected));
        assert!(h.clear(Flag::Drained));
        assert!(h.is_available());
    }

    #[test]
    fn in_flight_counts_until_the_guard_drops() {
        let h = Arc::new(Health::default());
        let a = h.start_request();
        let b = h.start_request();
        assert_eq!(h.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(h.in_flight(), 0);
    }
}
