//! Failover policy as pure functions: `steer` decides a route's active tier from which tiers
//! are usable (with failback delay and operator pin), and `plan` turns the active tier and
//! upstream availability into the ordered list of upstreams to try for one request
//! (pingora-load-balancing's `select_with` idea: walk an ordered list, skip the unusable).
//! No I/O and no clocks here; the steering task and the forwarder call them.

mod steer;

pub use steer::{steer, Failback, Steer, DAMPING_MEMORY, MAX_DAMPING};

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
///
/// With `standby` (a request [`is_standby`] picked, DESIGN §7.2 warm standby), one attempt on
/// the next usable tier after the active one comes first, on top of `attempts`, so a failed
/// standby attempt is followed by the usual plan, the active tier first: the reader sees
/// nothing of it.
pub fn plan<T>(
    tiers: &[Vec<T>],
    active: Option<usize>,
    attempts: usize,
    rr: usize,
    standby: bool,
    available: impl Fn(&T) -> bool,
) -> Plan {
    let mut plan = Plan {
        picks: [Pick::default(); MAX_ATTEMPTS],
        len: 0,
    };
    let mut limit = attempts.min(MAX_ATTEMPTS);
    let first = active.filter(|a| *a < tiers.len()).unwrap_or(0);
    let standby = if standby && active.is_some() {
        standby_pick(tiers, first, rr, &available)
    } else {
        None
    };
    if let Some((t, m)) = standby {
        plan.push(t, m);
        limit = (limit + 1).min(MAX_ATTEMPTS);
    }
    let not_standby = |t: usize, m: usize| standby != Some((t, m));
    let order = (first..tiers.len()).chain(0..first);
    walk(&mut plan, tiers, order, limit, rr, &|t, m, u: &T| {
        available(u) && not_standby(t, m)
    });
    if plan.len == 0 {
        walk(
            &mut plan,
            tiers,
            0..tiers.len(),
            limit,
            rr,
            &|_, _, _: &T| true,
        );
    }
    plan
}

/// The standby attempt: the first usable member (from `rr`) of the first tier after `active`
/// that has one.
fn standby_pick<T>(
    tiers: &[Vec<T>],
    active: usize,
    rr: usize,
    available: &impl Fn(&T) -> bool,
) -> Option<(usize, usize)> {
    (active + 1..tiers.len()).find_map(|t| {
        let n = tiers[t].len();
        (0..n)
            .map(|k| (rr + k) % n)
            .find(|&m| available(&tiers[t][m]))
            .map(|m| (t, m))
    })
}

/// Whether a route's `n`-th standby-eligible request (counted from 0) goes to the standby,
/// for a share of `share_ppm` parts per million: spread evenly by accumulating the share
/// (Bresenham), not by a coin per request, so 2 % is exactly every 50th request.
pub fn is_standby(n: u64, share_ppm: u32) -> bool {
    let p = u128::from(share_ppm);
    let n = u128::from(n);
    (n + 1) * p / 1_000_000 > n * p / 1_000_000
}

/// `share` (in [0, 1]) in parts per million, as [`is_standby`] takes it.
pub fn share_ppm(share: f64) -> u32 {
    // Clamped first: the cast cannot overflow or see NaN.
    (share.clamp(0.0, 1.0) * 1_000_000.0).round() as u32
}

fn walk<T>(
    plan: &mut Plan,
    tiers: &[Vec<T>],
    order: impl Iterator<Item = usize>,
    limit: usize,
    rr: usize,
    ok: &impl Fn(usize, usize, &T) -> bool,
) {
    for t in order {
        let tier = &tiers[t];
        let n = tier.len();
        for k in 0..n {
            let m = (rr + k) % n;
            if !ok(t, m, &tier[m]) {
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
        let p = plan(&tiers, None, 3, 0, false, |_| true);
        assert_eq!(picks(&p), vec![(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn unusable_upstreams_are_skipped() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1", "o2"]];
        let p = plan(&tiers, None, 3, 0, false, |u| *u != "cdn1");
        assert_eq!(picks(&p), vec![(1, 0), (2, 0), (2, 1)]);
    }

    #[test]
    fn a_balanced_group_rotates_its_first_member() {
        let tiers = vec![vec!["o1", "o2", "o3"]];
        assert_eq!(
            picks(&plan(&tiers, None, 1, 0, false, |_| true)),
            vec![(0, 0)]
        );
        assert_eq!(
            picks(&plan(&tiers, None, 1, 1, false, |_| true)),
            vec![(0, 1)]
        );
        assert_eq!(
            picks(&plan(&tiers, None, 3, 2, false, |_| true)),
            vec![(0, 2), (0, 0), (0, 1)]
        );
        assert_eq!(
            picks(&plan(&tiers, None, 2, 1, false, |u| *u != "o2")),
            vec![(0, 2), (0, 0)]
        );
    }

    #[test]
    fn when_nothing_is_usable_every_tier_is_tried_anyway() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1"]];
        assert_eq!(
            picks(&plan(&tiers, None, 3, 0, false, |_| false)),
            vec![(0, 0), (1, 0), (2, 0)]
        );
    }

    #[test]
    fn an_upstream_is_never_planned_twice() {
        let tiers = vec![vec!["only"]];
        assert_eq!(
            picks(&plan(&tiers, None, 5, 7, false, |_| true)),
            vec![(0, 0)]
        );
    }

    #[test]
    fn the_plan_starts_at_the_active_tier_and_ends_with_the_held_back_ones() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1"]];
        assert_eq!(
            picks(&plan(&tiers, Some(1), 3, 0, false, |_| true)),
            vec![(1, 0), (2, 0), (0, 0)]
        );
        assert_eq!(
            picks(&plan(&tiers, Some(1), 2, 0, false, |u| *u != "cdn2")),
            vec![(2, 0), (0, 0)]
        );
    }

    #[test]
    fn a_standby_request_tries_the_next_usable_tier_first_then_the_usual_plan() {
        let tiers = vec![vec!["cdn1"], vec!["cdn2"], vec!["o1", "o2"]];
        assert_eq!(
            picks(&plan(&tiers, Some(0), 3, 0, true, |_| true)),
            vec![(1, 0), (0, 0), (2, 0), (2, 1)],
            "one attempt on top of the budget; the standby is not planned twice"
        );
        assert_eq!(
            picks(&plan(&tiers, Some(0), 1, 0, true, |_| true)),
            vec![(1, 0), (0, 0)],
            "even with one attempt, a failed standby is retried on the active tier"
        );
        // The next tier has nothing usable: the one after it is the standby.
        assert_eq!(
            picks(&plan(&tiers, Some(0), 2, 1, true, |u| *u != "cdn2")),
            vec![(2, 1), (0, 0), (2, 0)]
        );
        // Active on the last tier, or none: no standby.
        assert_eq!(
            picks(&plan(&tiers, Some(2), 2, 0, true, |_| true)),
            vec![(2, 0), (2, 1)]
        );
        assert_eq!(
            picks(&plan(&tiers, None, 2, 0, true, |_| true)),
            vec![(0, 0), (1, 0)]
        );
    }

    #[test]
    fn the_standby_share_is_spread_evenly_not_by_chance() {
        // (share, requests) -> standby requests, and the first one's index
        let table = [
            (0.02, 10_000u64, 200usize, Some(49u64)),
            (0.0, 10_000, 0, None),
            (0.5, 10, 5, Some(1)),
            (0.1, 1_000, 100, Some(9)),
            (0.001, 999, 0, None),
            (0.333, 3_000, 999, Some(3)),
        ];
        for (share, n, want, first) in table {
            let ppm = share_ppm(share);
            let hits: Vec<u64> = (0..n).filter(|&i| is_standby(i, ppm)).collect();
            assert_eq!(hits.len(), want, "share {share} over {n}");
            assert_eq!(hits.first().copied(), first, "share {share}");
        }
        // 2 %: exactly one in every 50, never two close together.
        let hits: Vec<u64> = (0..500).filter(|&i| is_standby(i, 20_000)).collect();
        assert!(hits.windows(2).all(|w| w[1] - w[0] == 50), "{hits:?}");
        assert!(
            is_standby(u64::MAX - 1, 1_000_000),
            "no overflow at the end of the count"
        );
    }
}
