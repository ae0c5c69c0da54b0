//! `steer`: a route's active tier from which tiers are usable, with `failback_delay`, its
//! damping (DESIGN §7.2) and the operator's pin. Pure: the caller supplies the time.
//!
//! Damped failback: a tier lost (unusable while active) within [`DAMPING_MEMORY`] of a
//! failback to it waits twice its previous delay before the next failback, up to
//! [`MAX_DAMPING`] × `failback_delay`; [`DAMPING_MEMORY`] without a loss resets it to
//! `failback_delay`. So a CDN that comes and goes is failed back to less and less often, and
//! one that recovered for good is trusted again after five quiet minutes.

use std::time::Duration;

/// How long a failback, and a loss, are remembered: a loss within this long of a failback
/// doubles the tier's next delay; this long without a loss resets it (DESIGN §7.2).
pub const DAMPING_MEMORY: Duration = Duration::from_secs(300);

/// The most a tier's failback delay is multiplied by.
pub const MAX_DAMPING: u32 = 16;

/// A route's failback settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failback {
    /// `failback_delay`: how long a recovered tier must stay usable first.
    pub delay: Duration,
    /// How long a failback and a loss are remembered ([`DAMPING_MEMORY`] but in tests).
    pub memory: Duration,
}

impl Failback {
    /// `delay` with the usual five-minute memory.
    pub fn after(delay: Duration) -> Failback {
        Failback {
            delay,
            memory: DAMPING_MEMORY,
        }
    }
}

/// What the steering task remembers of one route between decisions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Steer {
    /// The tier in use; None when no tier has a usable upstream.
    pub active: Option<usize>,
    /// Per tier, whether it was usable at the last decision.
    pub usable: Vec<bool>,
    /// Per tier, when it last became usable again after being unusable; None for a tier that
    /// is unusable, or usable since the route was first steered (it has not "recovered").
    pub recovered_at: Vec<Option<Duration>>,
    /// Per tier, when the route last failed back to it (moved to it from a later tier).
    pub failback_at: Vec<Option<Duration>>,
    /// Per tier, when it was last lost (unusable while active).
    pub lost_at: Vec<Option<Duration>>,
    /// Per tier, what its `failback_delay` is multiplied by (1, 2, 4, … [`MAX_DAMPING`]).
    pub damping: Vec<u32>,
    /// The delay the last change of the active tier waited, when it was a failback that
    /// waited one (for its event); None for any other change.
    pub waited: Option<Duration>,
}

impl Steer {
    /// The delay a failback to `tier` waits now: `failback_delay` times its damping.
    pub fn delay_of(&self, tier: usize, failback_delay: Duration) -> Duration {
        let factor = self.damping.get(tier).copied().unwrap_or(1).max(1);
        failback_delay.saturating_mul(factor)
    }

    /// The delay the route's next failback would wait: that of the first usable tier before
    /// the active one (held back now), else of the first tier (where a failback leads once
    /// it recovers).
    pub fn next_delay(&self, failback_delay: Duration) -> Duration {
        let active = self.active.unwrap_or(self.usable.len());
        let held = (0..active).find(|&t| self.usable.get(t).copied().unwrap_or(false));
        self.delay_of(held.unwrap_or(0), failback_delay)
    }

    fn reset(&mut self, tiers: usize) {
        self.usable = vec![false; tiers];
        self.recovered_at = vec![None; tiers];
        self.failback_at = vec![None; tiers];
        self.lost_at = vec![None; tiers];
        self.damping = vec![1; tiers];
    }
}

/// Decides a route's active tier at time `now` (any monotonic clock), given which tiers have a
/// usable upstream, the operator's pin and `failback_delay`. Updates `steer` and returns when
/// the decision should be taken again (a held-back tier's delay ends, or a damped tier's
/// memory of its last loss runs out), if ever.
///
/// Rules: the first usable tier is active, except that a tier before the current active one
/// which *recovered* (became usable after being unusable) must have stayed usable for its
/// delay first ([`Steer::delay_of`]: `failback_delay`, damped after relapses) — no flapping
/// back. A pinned tier is active while it is usable and ignored while it is not. With no
/// active tier (at start, or after everything failed) the first usable tier is taken at once;
/// so is a tier that never failed (after an unpin, say).
pub fn steer(
    steer: &mut Steer,
    usable: &[bool],
    pin: Option<usize>,
    failback: Failback,
    now: Duration,
) -> Option<Duration> {
    let Failback {
        delay: failback_delay,
        memory,
    } = failback;
    if steer.usable.len() != usable.len() {
        // First decision (or a different tier count): nothing has recovered yet.
        steer.reset(usable.len());
        steer.usable = usable.to_vec();
    }
    let before = steer.active;
    for (t, &ok) in usable.iter().enumerate() {
        let quiet = steer.lost_at[t].is_none_or(|l| now.saturating_sub(l) >= memory);
        if quiet {
            steer.damping[t] = 1;
        }
        if ok && !steer.usable[t] {
            steer.recovered_at[t] = Some(now);
        } else if !ok {
            if steer.usable[t] && before == Some(t) {
                lose(steer, t, now, memory);
            }
            steer.recovered_at[t] = None;
        }
        steer.usable[t] = ok;
    }
    if let Some(p) = pin.filter(|p| usable.get(*p).copied().unwrap_or(false)) {
        steer.active = Some(p);
        steer.waited = None;
        // Held-back tiers wait for the unpin; only the damping's memory still runs out.
        return next_wake(steer, failback, now, false);
    }
    let delays: Vec<Duration> = (0..usable.len())
        .map(|t| steer.delay_of(t, failback_delay))
        .collect();
    let ready = |t: usize| {
        before.is_none_or(|c| t >= c)
            || steer.recovered_at[t].is_none_or(|r| now.saturating_sub(r) >= delays[t])
    };
    let after = (0..usable.len()).find(|&t| usable[t] && ready(t));
    if after != before {
        steer.waited = None;
    }
    if let (Some(b), Some(a)) = (before, after) {
        if a < b {
            steer.failback_at[a] = Some(now);
            steer.waited = steer.recovered_at[a].map(|_| delays[a]);
        }
    }
    steer.active = after;
    next_wake(steer, failback, now, true)
}

/// Tier `t` was lost while active: within [`DAMPING_MEMORY`] of a failback to it, its next
/// failback waits twice as long (up to [`MAX_DAMPING`] times `failback_delay`).
fn lose(steer: &mut Steer, t: usize, now: Duration, memory: Duration) {
    let relapse = steer.failback_at[t].is_some_and(|f| now.saturating_sub(f) < memory);
    if relapse {
        steer.damping[t] = steer.damping[t].saturating_mul(2).min(MAX_DAMPING);
    }
    steer.lost_at[t] = Some(now);
}

/// When to decide again (later than `now`): the earliest held-back tier's delay ends (when
/// `held_back` counts), or a damped tier's last loss leaves [`DAMPING_MEMORY`] (its delay
/// returns to `failback_delay`).
fn next_wake(
    steer: &Steer,
    failback: Failback,
    now: Duration,
    held_back: bool,
) -> Option<Duration> {
    let active = if held_back {
        steer.active.unwrap_or(steer.usable.len())
    } else {
        0
    };
    let held = (0..active)
        .filter(|&t| steer.usable[t])
        .filter_map(|t| steer.recovered_at[t].map(|r| r + steer.delay_of(t, failback.delay)));
    let undamp = (0..steer.usable.len())
        .filter(|&t| steer.damping[t] > 1)
        .filter_map(|t| steer.lost_at[t].map(|l| l + failback.memory));
    held.chain(undamp).filter(|&at| at > now).min()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod damping_tests;
