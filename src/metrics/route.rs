//! A route's request counters and duration histogram: label handles filled lazily per
//! (upstream, status code) slot, then counted without a lock. The slots of a (route,
//! upstream) pair outlive reloads (`Metrics::route` hands out the same ones), so their totals,
//! read back for the admin history, only grow.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use super::histogram::AtomicHistogram;
use super::{CacheLabels, Metrics, RequestLabels, RouteLabel};
use crate::cache::CacheResult;

/// The status codes that get a cached counter slot (any other takes the family's lock):
/// 100–103, 200–208, 300–308, 400–431, 500–530.
const CODE_RANGES: [(u16, u16); 5] = [(100, 103), (200, 208), (300, 308), (400, 431), (500, 530)];

/// The cached slot of `code`, if it has one.
fn slot_of(code: u16) -> Option<usize> {
    let mut base = 0;
    for (lo, hi) in CODE_RANGES {
        if (lo..=hi).contains(&code) {
            return Some(base + usize::from(code - lo));
        }
        base += usize::from(hi - lo + 1);
    }
    None
}

/// How many cached slots a (route, upstream) pair has.
const SLOTS: usize = 4 + 9 + 9 + 32 + 31;

/// The slots of the 5xx codes (500–530), the last range.
const SLOTS_5XX: std::ops::Range<usize> = SLOTS - 31..SLOTS;

/// One (route, upstream) pair's cached counters, one per `slot_of` code; clones share them.
#[derive(Clone)]
pub(super) struct Slots(Arc<[OnceLock<Counter>]>);

impl Default for Slots {
    fn default() -> Self {
        Slots((0..SLOTS).map(|_| OnceLock::new()).collect())
    }
}

impl Slots {
    /// The sum of the counters in `range` that exist.
    fn sum(&self, range: std::ops::Range<usize>) -> u64 {
        self.0[range]
            .iter()
            .filter_map(OnceLock::get)
            .map(Counter::get)
            .sum()
    }
}

/// A route's requests so far (relaxed loads; for the rate history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTotals {
    /// Every request answered on the route.
    pub requests: u64,
    /// Those answered with 500–530.
    pub errors: u64,
    /// Requests answered by each upstream, in [`RouteMetrics::upstreams`] order, then those
    /// bascule answered itself (the `upstream="-"` counters); codes outside the cached ranges
    /// (`slot_of`) are not in these.
    pub by_upstream: Vec<u64>,
}

/// A route's request counters and duration histogram, filled lazily and then lock-free.
pub struct RouteMetrics {
    name: String,
    /// The route's upstreams by name; slot `upstreams.len()` is "-" (bascule's own answer).
    upstreams: Vec<String>,
    duration: AtomicHistogram,
    /// Per upstream (and "-"), per cached status code (`slot_of`).
    slots: Vec<Slots>,
    /// `bascule_cache_requests_total`, indexed by [`CacheResult`].
    cache: [Counter; CacheResult::ALL.len()],
    /// `bascule_retry_budget_exhausted_total{route}`.
    budget_exhausted: Counter,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.name)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// The handles of route `name`, whose upstreams are `upstreams` (by name), counting into
    /// `metrics`, its durations into `duration`, with `slots` for each upstream and then "-".
    pub(super) fn new(
        metrics: Arc<Metrics>,
        name: &str,
        upstreams: Vec<String>,
        duration: AtomicHistogram,
        slots: Vec<Slots>,
    ) -> RouteMetrics {
        debug_assert_eq!(slots.len(), upstreams.len() + 1);
        let cache = CacheResult::ALL.map(|result| {
            metrics.cache_requests.get_or_create_owned(&CacheLabels {
                route: name.to_owned(),
                result: result.as_str(),
            })
        });
        let budget_exhausted = metrics.budget_exhausted.get_or_create_owned(&RouteLabel {
            route: name.to_owned(),
        });
        RouteMetrics {
            cache,
            budget_exhausted,
            name: name.to_owned(),
            upstreams,
            duration,
            slots,
            metrics,
        }
    }

    /// Counts a request answered by upstream number `upstream` (an index into the names the
    /// route was built with; None: bascule answered itself) with `code`, after `elapsed`.
    pub fn request(&self, upstream: Option<usize>, code: u16, elapsed: Duration) {
        self.duration.observe(elapsed);
        let u = upstream
            .filter(|u| *u < self.upstreams.len())
            .unwrap_or(self.upstreams.len());
        let labels = || RequestLabels {
            route: self.name.clone(),
            upstream: self
                .upstreams
                .get(u)
                .cloned()
                .unwrap_or_else(|| "-".to_owned()),
            code: code.to_string(),
        };
        match slot_of(code).and_then(|c| self.slots.get(u).and_then(|s| s.0.get(c))) {
            Some(slot) => slot
                .get_or_init(|| self.metrics.requests.get_or_create_owned(&labels()))
                .inc(),
            // A rare code: counted through the family (a read lock, or a write on first use).
            None => self.metrics.requests.get_or_create(&labels()).inc(),
        };
    }

    /// Counts a request that met the cache, by how.
    pub fn cache(&self, result: CacheResult) {
        self.cache[result as usize].inc();
    }

    /// The cache results counted so far, in [`CacheResult::ALL`] order.
    pub fn cache_totals(&self) -> [u64; CacheResult::ALL.len()] {
        CacheResult::ALL.map(|r| self.cache[r as usize].get())
    }

    /// Counts a retry or hedge that the route's retry budget refused.
    pub fn budget_exhausted(&self) {
        self.budget_exhausted.inc();
    }

    /// Counts an attempt that failed on bascule's own resources before reaching the upstream.
    pub fn local_error(&self) {
        self.metrics.local_error("connect");
    }

    /// The index of upstream `name` in this route, for [`RouteMetrics::request`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u == name)
    }

    /// The route's upstreams by name, in the order [`RouteTotals::by_upstream`] uses.
    pub fn upstreams(&self) -> &[String] {
        &self.upstreams
    }

    /// The requests counted so far: a few hundred relaxed loads, for a once-a-second sampler.
    pub fn totals(&self) -> RouteTotals {
        RouteTotals {
            requests: self.duration.count(),
            errors: self.slots.iter().map(|s| s.sum(SLOTS_5XX)).sum(),
            by_upstream: self.slots.iter().map(|s| s.sum(0..SLOTS)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_slots_cover_the_common_codes_once_each() {
        let mut seen = std::collections::HashSet::new();
        for (lo, hi) in CODE_RANGES {
            for code in lo..=hi {
                let s = slot_of(code).expect("a slot");
                assert!(s < SLOTS && seen.insert(s), "{code}");
            }
        }
        assert_eq!(seen.len(), SLOTS);
        assert_eq!(slot_of(451), None);
        assert_eq!(slot_of(500), Some(SLOTS_5XX.start));
        assert_eq!(slot_of(530), Some(SLOTS_5XX.end - 1));
    }

    #[test]
    fn totals_survive_a_new_table_for_the_same_route() {
        let m = Arc::new(Metrics::new());
        let before = m.route("www", vec!["cdn".into(), "origin".into()]);
        before.request(Some(0), 200, Duration::from_millis(1));
        before.request(Some(1), 503, Duration::from_millis(1));
        before.request(None, 502, Duration::from_millis(1));
        before.request(Some(0), 451, Duration::from_millis(1));
        let after = m.route("www", vec!["origin".into()]);
        let totals = after.totals();
        assert_eq!(totals.requests, 4);
        assert_eq!(totals.errors, 2);
        assert_eq!(totals.by_upstream, vec![1, 1], "origin, then \"-\"");
        after.request(Some(0), 200, Duration::from_millis(1));
        assert_eq!(after.totals().by_upstream, vec![2, 1]);
        assert_eq!(before.totals().by_upstream, vec![1, 2, 1]);
    }
}
