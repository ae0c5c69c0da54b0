//! A histogram of atomics for the request path: observing is a few relaxed atomic adds, no
//! lock (the client crate's own histogram holds a mutex).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of the request duration buckets: 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram of atomics: observing is a few relaxed atomic adds, no lock.
#[derive(Clone, Debug, Default)]
pub struct AtomicHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Per bucket (not cumulative), the last one +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of observations in nanoseconds.
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// How many durations were recorded (relaxed loads).
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, cell) in self.0.counts.iter().enumerate() {
            let n = cell.load(Ordering::Relaxed);
            count += n;
            buckets[i] = (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n);
        }
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
