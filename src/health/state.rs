//! An upstream's reasons not to be used (one bit each) and the state they add up to.

use serde::Serialize;

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

/// An upstream's state as operators see it (`/status`, events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Usable.
    Healthy,
    /// Active checks failed.
    Unhealthy,
    /// Ejected by passive detection.
    Ejected,
    /// Drained by an operator.
    Drained,
}

impl State {
    /// The state that `flags` mean: the first of drained, ejected, unhealthy, healthy.
    pub fn of(flags: u8) -> State {
        if flags & Flag::Drained as u8 != 0 {
            State::Drained
        } else if flags & Flag::Ejected as u8 != 0 {
            State::Ejected
        } else if flags & Flag::ActiveFailed as u8 != 0 {
            State::Unhealthy
        } else {
            State::Healthy
        }
    }

    /// The lower-case name used in `/status` and events.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Unhealthy => "unhealthy",
            State::Ejected => "ejected",
            State::Drained => "drained",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_precedence_drained_ejected_unhealthy_healthy() {
        assert_eq!(State::of(0), State::Healthy);
        assert_eq!(State::of(Flag::ActiveFailed as u8), State::Unhealthy);
        assert_eq!(State::of(1 | 2), State::Ejected);
        assert_eq!(State::of(1 | 2 | 4), State::Drained);
        assert_eq!(State::of(4), State::Drained);
    }
}
