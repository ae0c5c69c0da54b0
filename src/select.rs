//! Failover policy as a pure function: from a route's tiers and which upstreams are usable, the
//! ordered list of upstreams to try for one request (pingora-load-balancing's `select_with`
//! idea: walk an ordered list, skip the unusable). No I/O here; the forwarder walks the plan.

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

/// Plans up to `attempts` tries over `tiers`, in tier order, starting each balanced tier at
/// member `rr % len` (round-robin) and skipping members `available` rejects. When nothing at
/// all is available, every member is planned in order anyway: a stale verdict must never be
/// worse than trying.
pub fn plan<T>(
    tiers: &[Vec<T>],
    attempts: usize,
    rr: usize,
    available: impl Fn(&T) -> bool,
) -> Plan {
    let mut plan = Plan {
        picks: [Pick::default(); MAX_ATTEMPTS],
        len: 0,
    };
    let limit = attempts.min(MAX_ATTEMPTS);
    let any = tiers.iter().flatten().any(&available);
    for (t, tier) in tiers.iter().enumerate() {
        let n = tier.len();
        for k in 0..n {
            let m = (rr + k) % n;
            if any && !available(&tier[m]) {
                continue;
            }
            if usize::from(plan.len) == limit {
                return plan;
            }
            plan.push(t, m);
        }
    }
    plan
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
        let p = plan(&tiers, 3, 0, |_| true);
        assert_eq!(picks(&p), vec![(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn unusable_upstreams_are_skipped() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1", "o2"]];
        let p = plan(&tiers, 3, 0, |u| *u != "cdn1");
        assert_eq!(picks(&p), vec![(1, 0), (2, 0), (2, 1)]);
    }

    #[test]
    fn a_balanced_group_rotates_its_first_member() {
        let tiers = vec![vec!["o1", "o2", "o3"]];
        assert_eq!(picks(&plan(&tiers, 1, 0, |_| true)), vec![(0, 0)]);
        assert_eq!(picks(&plan(&tiers, 1, 1, |_| true)), vec![(0, 1)]);
        assert_eq!(
            picks(&plan(&tiers, 3, 2, |_| true)),
            vec![(0, 2), (0, 0), (0, 1)]
        );
        assert_eq!(
            picks(&plan(&tiers, 2, 1, |u| *u != "o2")),
            vec![(0, 2), (0, 0)]
        );
    }

    #[test]
    fn when_nothing_is_usable_every_tier_is_tried_anyway() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1"]];
        assert_eq!(
            picks(&plan(&tiers, 3, 0, |_| false)),
            vec![(0, 0), (1, 0), (2, 0)]
        );
    }

    #[test]
    fn an_upstream_is_never_planned_twice() {
        let tiers = vec![vec!["only"]];
        assert_eq!(picks(&plan(&tiers, 5, 7, |_| true)), vec![(0, 0)]);
    }
}
