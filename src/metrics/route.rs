//! A route's request counters and duration histogram: label handles filled lazily per
//! (upstream, status code) slot, then counted without a lock.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

use super::histogram::AtomicHistogram;
use super::{Metrics, RequestLabels};

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

/// A route's request counters and duration histogram, filled lazily and then lock-free.
pub struct RouteMetrics {
    name: String,
    /// The route's upstreams by name; slot `upstreams.len()` is "-" (bascule's own answer).
    upstreams: Vec<String>,
    duration: AtomicHistogram,
    /// Per upstream (and "-"), per cached status code (`slot_of`).
    slots: Vec<Box<[OnceLock<Counter>]>>,
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
    /// `metrics`, its durations into `duration`.
    pub(super) fn new(
        metrics: Arc<Metrics>,
        name: &str,
        upstreams: Vec<String>,
        duration: AtomicHistogram,
    ) -> RouteMetrics {
        let slots = (0..=upstreams.len())
            .map(|_| (0..SLOTS).map(|_| OnceLock::new()).collect())
            .collect();
        RouteMetrics {
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
        match slot_of(code).and_then(|c| self.slots.get(u).and_then(|s| s.get(c))) {
            Some(slot) => slot
                .get_or_init(|| self.metrics.requests.get_or_create_owned(&labels()))
                .inc(),
            // A rare code: counted through the family (a read lock, or a write on first use).
            None => self.metrics.requests.get_or_create(&labels()).inc(),
        };
    }

    /// Counts an attempt that failed on bascule's own resources before reaching the upstream.
    pub fn local_error(&self) {
        self.metrics.local_error("connect");
    }

    /// The index of upstream `name` in this route, for [`RouteMetrics::request`].
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u == name)
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
    }
}
