//! The rise/fall hysteresis of active checks: a small state machine owned by one checker task
//! (`&mut self`, no atomics) that reports a transition only when `rise` passes or `fall`
//! failures in a row change the verdict.

/// A change of the active-check verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// `fall` probes in a row failed.
    Down,
    /// `rise` probes in a row passed.
    Up,
}

/// Consecutive pass/fail counter with hysteresis.
#[derive(Debug, Clone)]
pub struct Counter {
    rise: u32,
    fall: u32,
    healthy: bool,
    /// Passes (when unhealthy) or failures (when healthy) in a row so far.
    streak: u32,
}

impl Counter {
    /// A counter that starts healthy (a new upstream is healthy until probes say otherwise).
    pub fn new(rise: u32, fall: u32) -> Counter {
        Counter {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy: true,
            streak: 0,
        }
    }

    /// Applies reloaded `rise`/`fall`; the verdict and the current streak are kept.
    pub fn retune(&mut self, rise: u32, fall: u32) {
        self.rise = rise.max(1);
        self.fall = fall.max(1);
    }

    /// The current verdict.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one probe; returns the transition it caused, if any.
    pub fn record(&mut self, passed: bool) -> Option<Transition> {
        if passed == self.healthy {
            // Confirms the verdict: an interrupted streak starts over.
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.healthy = passed;
        self.streak = 0;
        Some(if passed {
            Transition::Up
        } else {
            Transition::Down
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_in_a_row_mark_it_down_and_rise_passes_bring_it_back() {
        let mut c = Counter::new(2, 3);
        assert!(c.healthy());
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(Transition::Down));
        assert!(!c.healthy());
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(Transition::Up));
        assert!(c.healthy());
    }

    #[test]
    fn intermittent_failures_reset_the_counter() {
        let mut c = Counter::new(2, 2);
        for _ in 0..50 {
            assert_eq!(c.record(false), None);
            assert_eq!(c.record(true), None);
        }
        assert!(c.healthy(), "a 50 % failure rate never reaches fall = 2");
    }

    #[test]
    fn intermittent_passes_do_not_bring_an_unhealthy_upstream_back() {
        let mut c = Counter::new(2, 1);
        assert_eq!(c.record(false), Some(Transition::Down));
        for _ in 0..50 {
            assert_eq!(c.record(true), None);
            assert_eq!(c.record(false), None);
        }
        assert!(!c.healthy());
    }

    #[test]
    fn rise_and_fall_of_one_follow_every_probe() {
        let mut c = Counter::new(1, 1);
        assert_eq!(c.record(false), Some(Transition::Down));
        assert_eq!(c.record(true), Some(Transition::Up));
    }
}
