//! Failover policy as pure functions: `steer` decides a route's active tier from which tiers
//! are usable (with failback delay and operator pin), and `plan` turns the active tier and
//! upstream availability into the ordered list of upstreams to try for one request
//! (pingora-load-balancing's `select_with` idea: walk an ordered list, skip the unusable).
//! No I/O and no clocks here; the steering task and the forwarder call them.

use std::time::Duration;

use crate::config::MAX_ATTEMPTS;

/// One planned attempt: the tier's index and the member's index in that tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pick {
    /// 0-based tier index.
    pub tier: u8,
    /// 0-based index within the tier.
    pub member: u8,
}

/// The upstreams to try, in order, at most `MAX_ATTEMPTS`; lives on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    picks: [Pick; MAX_ATTEMPTS],
    len: u8,
}

impl Plan {
    /// The picks in order.
    pub fn picks(&self) -> &[Pick] {
        &self.picks[..usize::from(self.len)]
    }

    fn push(&mut self, tier: usize, member: usize) {
        let (Ok(tier), Ok(member)) = (u8::try_from(tier), u8::try_from(member)) else {
            return;
        };
        if usize::from(self.len) < MAX_ATTEMPTS {
            self.picks[usize::from(self.len)] = Pick { tier, member };
            self.len += 1;
        }
    }
}

/// Plans up to `attempts` tries over `tiers` for a route whose active tier is `active`.
///
/// Tiers are walked from the active tier to the last, then the tiers before it (held back by
/// `failback_delay` or a pin, but better than nothing once the rest failed), skipping members
/// `available` rejects; each balanced tier starts at member `rr % len` (round-robin). With no
/// active tier, all tiers are walked in order. When that leaves nothing to try, every member
/// is planned in tier order anyway: a stale verdict must never be worse than trying.
pub fn plan<T>(
    tiers: &[Vec<T>],
    active: Option<usize>,
    attempts: usize,
    rr: usize,
    available: impl Fn(&T) -> bool,
) -> Plan {
    let mut plan = Plan {
        picks: [Pick::default(); MAX_ATTEMPTS],
        len: 0,
    };
    let limit = attempts.min(MAX_ATTEMPTS);
    let first = active.filter(|a| *a < tiers.len()).unwrap_or(0);
    let order = (first..tiers.len()).chain(0..first);
    walk(&mut plan, tiers, order, limit, rr, &available);
    if plan.len == 0 {
        walk(&mut plan, tiers, 0..tiers.len(), limit, rr, &|_: &T| true);
    }
    plan
}

fn walk<T>(
    plan: &mut Plan,
    tiers: &[Vec<T>],
    order: impl Iterator<Item = usize>,
    limit: usize,
    rr: usize,
    available: &impl Fn(&T) -> bool,
) {
    for t in order {
        let tier = &tiers[t];
        let n = tier.len();
        for k in 0..n {
            let m = (rr + k) % n;
            if !available(&tier[m]) {
                continue;
            }
            if usize::from(plan.len) == limit {
                return;
            }
            plan.push(t, m);
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
}

/// Decides a route's active tier at time `now` (any monotonic clock), given which tiers have a
/// usable upstream, the operator's pin and `failback_delay`. Updates `steer` and returns when
/// the decision should be taken again (a held-back tier's delay ends), if ever.
///
/// Rules: the first usable tier is active, except that a tier before the current active one
/// which *recovered* (became usable after being unusable) must have stayed usable for
/// `failback_delay` first — no flapping back. A pinned tier is active while it is usable and
/// ignored while it is not. With no active tier (at start, or after everything failed) the
/// first usable tier is taken at once; so is a tier that never failed (after an unpin, say).
pub fn steer(
    steer: &mut Steer,
    usable: &[bool],
    pin: Option<usize>,
    failback_delay: Duration,
    now: Duration,
) -> Option<Duration> {
    if steer.usable.len() != usable.len() {
        // First decision (or a different tier count): nothing has recovered yet.
        steer.usable = usable.to_vec();
        steer.recovered_at = vec![None; usable.len()];
    }
    for (t, &ok) in usable.iter().enumerate() {
        if ok && !steer.usable[t] {
            steer.recovered_at[t] = Some(now);
        } else if !ok {
            steer.recovered_at[t] = None;
        }
        steer.usable[t] = ok;
    }
    if let Some(p) = pin.filter(|p| usable.get(*p).copied().unwrap_or(false)) {
        steer.active = Some(p);
        return None;
    }
    let current = steer.active;
    let ready = |t: usize| {
        current.is_none_or(|c| t >= c)
            || steer.recovered_at[t].is_none_or(|r| now.saturating_sub(r) >= failback_delay)
    };
    steer.active = (0..usable.len()).find(|&t| usable[t] && ready(t));
    // Wake up when the earliest held-back tier (before the active one) becomes ready.
    let active = steer.active.unwrap_or(usable.len());
    (0..active)
        .filter(|&t| usable[t])
        .filter_map(|t| steer.recovered_at[t])
        .map(|r| r + failback_delay)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(p: &Plan) -> Vec<(u8, u8)> {
        p.picks().iter().map(|p| (p.tier, p.member)).collect()
    }

    #[test]
    fn tiers_are_tried_in_order_up_to_the_attempt_budget() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1", "o2"]];
        let p = plan(&tiers, None, 3, 0, |_| true);
        assert_eq!(picks(&p), vec![(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn unusable_upstreams_are_skipped() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1", "o2"]];
        let p = plan(&tiers, None, 3, 0, |u| *u != "cdn1");
        assert_eq!(picks(&p), vec![(1, 0), (2, 0), (2, 1)]);
    }

    #[test]
    fn a_balanced_group_rotates_its_first_member() {
        let tiers = vec![vec!["o1", "o2", "o3"]];
        assert_eq!(picks(&plan(&tiers, None, 1, 0, |_| true)), vec![(0, 0)]);
        assert_eq!(picks(&plan(&tiers, None, 1, 1, |_| true)), vec![(0, 1)]);
        assert_eq!(
            picks(&plan(&tiers, None, 3, 2, |_| true)),
            vec![(0, 2), (0, 0), (0, 1)]
        );
        assert_eq!(
            picks(&plan(&tiers, None, 2, 1, |u| *u != "o2")),
            vec![(0, 2), (0, 0)]
        );
    }

    #[test]
    fn when_nothing_is_usable_every_tier_is_tried_anyway() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1"]];
        assert_eq!(
            picks(&plan(&tiers, None, 3, 0, |_| false)),
            vec![(0, 0), (1, 0), (2, 0)]
        );
    }

    #[test]
    fn an_upstream_is_never_planned_twice() {
        let tiers = vec![vec!["only"]];
        assert_eq!(picks(&plan(&tiers, None, 5, 7, |_| true)), vec![(0, 0)]);
    }

    #[test]
    fn the_plan_starts_at_the_active_tier_and_ends_with_the_held_back_ones() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1"]];
        assert_eq!(
            picks(&plan(&tiers, Some(1), 3, 0, |_| true)),
            vec![(1, 0), (2, 0), (0, 0)]
        );
        assert_eq!(
            picks(&plan(&tiers, Some(1), 2, 0, |u| *u != "cdn2")),
            vec![(2, 0), (0, 0)]
        );
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_first_usable_tier_is_active_from_the_start() {
        let mut s = Steer::default();
        assert_eq!(
            steer(&mut s, &[true, true, true], None, secs(10), secs(0)),
            None
        );
        assert_eq!(s.active, Some(0));
        assert_eq!(
            steer(&mut s, &[false, true, true], None, secs(10), secs(1)),
            None
        );
        assert_eq!(s.active, Some(1), "failing over is immediate");
        assert_eq!(
            steer(&mut s, &[false, false, true], None, secs(10), secs(2)),
            None
        );
        assert_eq!(s.active, Some(2));
        assert_eq!(
            steer(&mut s, &[false, false, false], None, secs(10), secs(3)),
            None
        );
        assert_eq!(s.active, None);
    }

    #[test]
    fn a_recovered_tier_waits_failback_delay_of_continuous_usability() {
        let mut s = Steer::default();
        steer(&mut s, &[true, true], None, secs(10), secs(0));
        steer(&mut s, &[false, true], None, secs(10), secs(1));
        assert_eq!(
            steer(&mut s, &[true, true], None, secs(10), secs(5)),
            Some(secs(15))
        );
        assert_eq!(s.active, Some(1), "held back");
        // It flaps at 9 s: the delay starts over when it is usable again.
        steer(&mut s, &[false, true], None, secs(10), secs(9));
        assert_eq!(
            steer(&mut s, &[true, true], None, secs(10), secs(12)),
            Some(secs(22))
        );
        assert_eq!(
            steer(&mut s, &[true, true], None, secs(10), secs(21)),
            Some(secs(22))
        );
        assert_eq!(s.active, Some(1));
        assert_eq!(steer(&mut s, &[true, true], None, secs(10), secs(22)), None);
        assert_eq!(s.active, Some(0));
    }

    #[test]
    fn after_a_total_outage_the_first_tier_back_is_used_at_once() {
        let mut s = Steer::default();
        steer(&mut s, &[true, true, true], None, secs(10), secs(0));
        steer(&mut s, &[false, false, false], None, secs(10), secs(1));
        steer(&mut s, &[false, false, true], None, secs(10), secs(2));
        assert_eq!(s.active, Some(2));
        steer(&mut s, &[true, false, true], None, secs(10), secs(3));
        assert_eq!(s.active, Some(2), "tier 0 must wait its failback delay");
    }

    #[test]
    fn a_pin_holds_while_its_tier_is_usable_and_is_ignored_otherwise() {
        let mut s = Steer::default();
        steer(&mut s, &[true, true, true], Some(1), secs(10), secs(0));
        assert_eq!(s.active, Some(1));
        steer(&mut s, &[true, false, true], Some(1), secs(10), secs(1));
        assert_eq!(
            s.active,
            Some(0),
            "pinned tier unusable: selection as if unpinned"
        );
        steer(&mut s, &[true, true, true], Some(1), secs(10), secs(2));
        assert_eq!(s.active, Some(1));
    }

    #[test]
    fn a_tier_that_never_failed_is_taken_back_at_once_after_an_unpin() {
        let mut s = Steer::default();
        steer(&mut s, &[true, true], Some(1), secs(10), secs(0));
        assert_eq!(s.active, Some(1));
        steer(&mut s, &[true, true], None, secs(10), secs(1));
        assert_eq!(s.active, Some(0));
    }
}
