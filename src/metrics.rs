//! Prometheus metrics (DESIGN §5; the names are a contract), with the official client crate,
//! exposed by the admin API as `GET /metrics`.
//!
//! The request path takes no lock: label handles are created once and cached — attempt
//! counters on each long-lived upstream ([`UpstreamMetrics`]), request counters per route,
//! upstream and status code in lazily filled slots ([`RouteMetrics`]) — and the request
//! duration histogram is [`AtomicHistogram`], buckets of atomics (the crate's own histogram
//! holds a mutex). Gauges that mirror state (`upstream_up`, `route_active_tier`) are set from
//! the serving table when scraped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the request duration buckets: 1 ms to 30 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The `outcome` label values of `bascule_upstream_attempts_total`, in index order.
pub const OUTCOMES: [&str; 7] = [
    "ok",
    "connect_error",
    "timeout",
    "retry_status",
    "error",
    "client_error",
    "local_error",
];

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

/// `{route, upstream, code}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    route: String,
    upstream: String,
    code: String,
}

/// `{route}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    route: String,
}

/// `{upstream}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    upstream: String,
}

/// `{upstream, outcome}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    upstream: String,
    outcome: &'static str,
}

/// `{route, from, to}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailoverLabels {
    route: String,
    from: String,
    to: String,
}

/// `{op}` of a local resource failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    op: &'static str,
}

/// `{result}` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    result: &'static str,
}

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

/// Every metric bascule exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, AtomicHistogram>,
    attempts: Family<AttemptLabels, Counter>,
    upstream_up: Family<UpstreamLabel, Gauge>,
    active_tier: Family<RouteLabel, Gauge>,
    failovers: Family<FailoverLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
    config_generation: Gauge,
    local_errors: Family<OpLabel, Counter>,
    /// Requests answered before a route was found (400, 404).
    unrouted: OnceLock<RouteMetrics>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "bascule_requests",
            "Requests answered, by route, the upstream that answered (\"-\" for bascule's own answers) and status code",
            requests.clone(),
        );
        let duration = Family::default();
        registry.register(
            "bascule_request_duration_seconds",
            "Time from a request's arrival to its response head, failover attempts included, by route",
            duration.clone(),
        );
        let attempts = Family::default();
        registry.register(
            "bascule_upstream_attempts",
            "Attempts sent to an upstream, by outcome (ok, connect_error, timeout, retry_status, error, client_error, local_error)",
            attempts.clone(),
        );
        let upstream_up = Family::default();
        registry.register(
            "bascule_upstream_up",
            "1 when the upstream is usable (state healthy), else 0",
            upstream_up.clone(),
        );
        let active_tier = Family::default();
        registry.register(
            "bascule_route_active_tier",
            "0-based index of the route's tier in use; -1 when no tier has a usable upstream",
            active_tier.clone(),
        );
        let failovers = Family::default();
        registry.register(
            "bascule_failovers",
            "Changes of a route's active tier, by 0-based tier indexes (\"none\": nothing usable)",
            failovers.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "bascule_config_reloads",
            "Config reloads, by result (success or error)",
            config_reloads.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "bascule_config_generation",
            "Generation of the serving config: 1 after start, +1 per applied reload",
            config_generation.clone(),
        );
        let local_errors = Family::<OpLabel, Counter>::default();
        registry.register(
            "bascule_local_errors",
            "Failures of bascule's own resources (file descriptors, memory), by operation (accept, connect): never counted against an upstream",
            local_errors.clone(),
        );
        for op in ["accept", "connect"] {
            local_errors.get_or_create(&OpLabel { op }).inc_by(0);
        }
        // Both results exist from the start, so that rate() and alerts see a zero.
        for result in ["success", "error"] {
            config_reloads
                .get_or_create(&ReloadLabels { result })
                .inc_by(0);
        }
        config_generation.set(1);
        Metrics {
            registry,
            requests,
            duration,
            attempts,
            upstream_up,
            active_tier,
            failovers,
            config_reloads,
            config_generation,
            local_errors,
            unrouted: OnceLock::new(),
        }
    }

    /// The cached attempt counters of upstream `name`.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        let attempts = OUTCOMES.map(|outcome| {
            self.attempts.get_or_create_owned(&AttemptLabels {
                upstream: name.to_owned(),
                outcome,
            })
        });
        UpstreamMetrics { attempts }
    }

    /// The cached handles of route `name`, whose upstreams are `upstreams` (by name).
    pub fn route(self: &Arc<Self>, name: &str, upstreams: Vec<String>) -> RouteMetrics {
        let slots = (0..=upstreams.len())
            .map(|_| (0..SLOTS).map(|_| OnceLock::new()).collect())
            .collect();
        RouteMetrics {
            name: name.to_owned(),
            upstreams,
            duration: self.duration.get_or_create_owned(&RouteLabel {
                route: name.to_owned(),
            }),
            slots,
            metrics: Arc::clone(self),
        }
    }

    /// The handles for requests answered before a route was found (route "-").
    pub fn unrouted(self: &Arc<Self>) -> &RouteMetrics {
        self.unrouted.get_or_init(|| self.route("-", Vec::new()))
    }

    /// Counts a change of `route`'s active tier.
    pub fn failover(&self, route: &str, from: &str, to: &str) {
        self.failovers
            .get_or_create(&FailoverLabels {
                route: route.to_owned(),
                from: from.to_owned(),
                to: to.to_owned(),
            })
            .inc();
    }

    /// Counts a failure of bascule's own resources during `op` ("accept" or "connect").
    pub fn local_error(&self, op: &'static str) {
        self.local_errors.get_or_create(&OpLabel { op }).inc();
    }

    /// Counts a reload; `generation` is the serving one afterwards.
    pub fn reloaded(&self, ok: bool, generation: u64) {
        let result = if ok { "success" } else { "error" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.config_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Sets the state gauges (`upstream_up`, `route_active_tier`) from `upstreams` (name,
    /// usable) and `routes` (name, active tier), forgetting names no longer configured.
    pub fn set_state<'a>(
        &self,
        upstreams: impl IntoIterator<Item = (&'a str, bool)>,
        routes: impl IntoIterator<Item = (&'a str, Option<usize>)>,
    ) {
        self.upstream_up.clear();
        for (name, up) in upstreams {
            self.upstream_up
                .get_or_create(&UpstreamLabel {
                    upstream: name.to_owned(),
                })
                .set(i64::from(up));
        }
        self.active_tier.clear();
        for (name, tier) in routes {
            let v = tier.and_then(|t| i64::try_from(t).ok()).unwrap_or(-1);
            self.active_tier
                .get_or_create(&RouteLabel {
                    route: name.to_owned(),
                })
                .set(v);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// An upstream's attempt counters, by outcome (index into [`OUTCOMES`]).
#[derive(Debug, Clone)]
pub struct UpstreamMetrics {
    attempts: [Counter; OUTCOMES.len()],
}

impl UpstreamMetrics {
    /// Counts one attempt with `outcome` (one of [`OUTCOMES`]).
    pub fn attempt(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.attempts[i].inc();
        }
    }
}

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
    fn reloads_are_counted_by_result() {
        let m = Metrics::new();
        m.reloaded(true, 2);
        m.reloaded(false, 2);
        m.reloaded(false, 2);
        let text = m.encode();
        assert!(
            text.contains("bascule_config_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bascule_config_reloads_total{result=\"error\"} 2"),
            "{text}"
        );
        assert!(text.contains("bascule_config_generation 2"), "{text}");
    }

    #[test]
    fn requests_are_counted_by_route_upstream_and_code() {
        let m = Arc::new(Metrics::new());
        let r = m.route("www", vec!["cdn".into(), "origin".into()]);
        r.request(Some(1), 200, Duration::from_millis(3));
        r.request(Some(1), 200, Duration::from_millis(30));
        r.request(None, 502, Duration::from_secs(40));
        r.request(None, 451, Duration::from_millis(1));
        let text = m.encode();
        assert!(
            text.contains(r#"bascule_requests_total{route="www",upstream="origin",code="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_requests_total{route="www",upstream="-",code="502"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_request_duration_seconds_bucket{le="0.005",route="www"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_request_duration_seconds_count{route="www"} 4"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_requests_total{route="www",upstream="-",code="451"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"le="+Inf""#), "{text}");
    }

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

    #[test]
    fn state_gauges_follow_the_table() {
        let m = Metrics::new();
        m.set_state([("cdn", false), ("origin", true)], [("www", None)]);
        let text = m.encode();
        assert!(
            text.contains(r#"bascule_upstream_up{upstream="cdn"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_upstream_up{upstream="origin"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"bascule_route_active_tier{route="www"} -1"#),
            "{text}"
        );
        m.set_state([("origin", true)], [("www", Some(1))]);
        let text = m.encode();
        assert!(!text.contains(r#"upstream="cdn""#), "{text}");
        assert!(
            text.contains(r#"bascule_route_active_tier{route="www"} 1"#),
            "{text}"
        );
    }
}
