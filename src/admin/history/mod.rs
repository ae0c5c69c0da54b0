//! The rate history behind `GET /history`: once a second a background task reads the counters
//! the request path keeps anyway (each upstream's attempt totals and latency histogram, each
//! route's request counters, see `metrics`) and each route's active tier, and keeps the
//! readings in a [`Ring`] of [`SLOTS`] — the last ten minutes — so a dashboard opened mid-incident
//! shows how it began. Rates are computed between successive readings from the server's own
//! clock ([`Sample::between`]). The request path pays nothing for it.

mod ring;
mod sample;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::metrics::LatencyCounts;
use crate::routing::RoutingTable;
pub use ring::Ring;
pub use sample::{Reading, RouteReading, RouteSample, Sample, UpstreamReading, UpstreamSample};

/// How often the counters are read.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How many readings are kept: ten minutes at one a second.
pub const SLOTS: usize = 600;

/// The latency percentiles cover this many periods.
const LATENCY_WINDOW: usize = 10;

/// The readings of the last [`SLOTS`] periods.
#[derive(Debug)]
pub struct History {
    ring: Mutex<Ring<Reading>>,
}

impl Default for History {
    fn default() -> Self {
        History::new(SLOTS)
    }
}

/// The `/history` answer.
#[derive(Debug, Serialize)]
pub struct Answer<'a> {
    /// How often the server reads its counters, in milliseconds.
    pub period_ms: u64,
    /// How many readings it keeps.
    pub capacity: usize,
    /// The number of the newest reading (pass it back as `?after=`); 0 before the first.
    pub last: u64,
    /// Rates between successive readings numbered after `?after=`, oldest first.
    pub samples: Vec<Sample<'a>>,
}

impl History {
    /// An empty history of `slots` readings.
    pub fn new(slots: usize) -> History {
        History {
            ring: Mutex::new(Ring::new(slots)),
        }
    }

    /// Stores one reading.
    pub fn record(&self, reading: Reading) {
        self.lock().push(reading);
    }

    /// Calls `f` with the samples after reading number `after` (all held when 0).
    pub fn with_answer<R>(&self, after: u64, f: impl FnOnce(&Answer<'_>) -> R) -> R {
        let ring = self.lock();
        let samples = ring
            .after(after)
            .filter_map(|(n, now)| Sample::between(n, ring.get(n - 1)?, now))
            .collect();
        f(&Answer {
            period_ms: u64::try_from(PERIOD.as_millis()).unwrap_or(u64::MAX),
            capacity: ring.capacity(),
            last: ring.last(),
            samples,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring<Reading>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the serving table's counters every [`PERIOD`] until `shutdown` is cancelled.
    pub async fn sample(
        self: Arc<Self>,
        table: Arc<ArcSwap<RoutingTable>>,
        shutdown: CancellationToken,
    ) {
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(PERIOD);
        // After a stall, carry on from now: the next rate spans the gap.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let reading = sampler.read(&table.load(), SystemTime::now());
            self.record(reading);
        }
    }
}

/// The sampler's own state: its start, and each upstream's last latency snapshots.
#[derive(Debug)]
struct Sampler {
    started: Instant,
    latencies: HashMap<String, VecDeque<LatencyCounts>>,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            started: Instant::now(),
            latencies: HashMap::new(),
        }
    }
}

impl Sampler {
    /// The counters of `table` now (`wall` being the time of day).
    fn read(&mut self, table: &RoutingTable, wall: SystemTime) -> Reading {
        let mono = self.started.elapsed();
        self.latencies
            .retain(|name, _| table.upstream_named(name).is_some());
        let upstreams = table
            .upstreams
            .iter()
            .map(|u| {
                let snapshots = self.latencies.entry(u.name().to_owned()).or_default();
                snapshots.push_back(u.live.metrics.latency());
                if snapshots.len() > LATENCY_WINDOW + 1 {
                    snapshots.pop_front();
                }
                let window = match (snapshots.front(), snapshots.back()) {
                    (Some(first), Some(last)) if snapshots.len() > 1 => last.since(first),
                    _ => LatencyCounts::default(),
                };
                UpstreamReading {
                    name: u.name().to_owned(),
                    attempts: u.live.metrics.totals(),
                    p50: window.quantile(0.5),
                    p95: window.quantile(0.95),
                }
            })
            .collect();
        let routes = table
            .routes
            .iter()
            .map(|r| RouteReading {
                name: r.spec.name.clone(),
                upstreams: r
                    .metrics
                    .upstreams()
                    .iter()
                    .cloned()
                    .chain(["-".to_owned()])
                    .collect(),
                totals: r.metrics.totals(),
                active_tier: r.state.active(),
            })
            .collect();
        Reading {
            at_ms: wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            mono,
            upstreams,
            routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, ok: u64) -> Reading {
        Reading {
            at_ms: secs * 1000,
            mono: Duration::from_secs(secs),
            upstreams: vec![UpstreamReading {
                name: "cdn".into(),
                attempts: crate::metrics::AttemptTotals { ok, failed: 0 },
                ..UpstreamReading::default()
            }],
            routes: Vec::new(),
        }
    }

    #[test]
    fn the_answer_has_one_sample_per_reading_that_has_a_predecessor() {
        let h = History::new(3);
        h.with_answer(0, |a| assert_eq!((a.last, a.samples.len()), (0, 0)));
        for s in 1..=5 {
            h.record(at(s, s * 10));
        }
        h.with_answer(0, |a| {
            assert_eq!((a.last, a.capacity), (5, 3));
            // Readings 3, 4, 5 are held; 3's predecessor is gone.
            let seqs: Vec<_> = a.samples.iter().map(|s| s.seq).collect();
            assert_eq!(seqs, vec![4, 5]);
            assert_eq!(a.samples[1].upstreams["cdn"].ok, 10.0);
            assert_eq!(a.samples[1].t, 5000);
        });
        h.with_answer(4, |a| assert_eq!(a.samples.len(), 1));
        let json = h.with_answer(4, |a| serde_json::to_value(a).expect("json"));
        assert_eq!(json["samples"][0]["upstreams"]["cdn"]["ok"], 10.0);
        assert_eq!(json["samples"][0]["dt_ms"], 1000);
        assert_eq!(json["period_ms"], 1000);
    }
}
