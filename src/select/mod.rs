//! Failover policy as pure functions: `steer` decides a route's active tier from which tiers
//! are usable (with failback delay and operator pin), and `plan` turns the active tier and
//! upstream availability into the ordered list of upstreams to try for one request
//! (pingora-load-balancing's `select_with` idea: walk an ordered list, skip the unusable).
//! No I/O and no clocks here; the steering task and the forwarder call them.

mod steer;

pub use steer::{steer, Steer, DAMPING_MEMORY, MAX_DAMPING};

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
}
