//! Prometheus metrics (DESIGN §5; the names are a contract), with the official client crate,
//! exposed by the admin API as `GET /metrics`.
//!
//! The request path takes no lock: label handles are created once and cached — attempt
//! counters on each long-lived upstream ([`UpstreamMetrics`]), request counters per route,
//! upstream and status code in lazily filled slots ([`RouteMetrics`]) — and the request
//! duration histogram is [`AtomicHistogram`], buckets of atomics (the crate's own histogram
//! holds a mutex). Gauges that mirror state (`upstream_up`, `route_active_tier`) are set from
//! the serving table when scraped. The exposition is OpenMetrics or the 0.0.4 text format, as
//! the scraper asks ([`Format`]). Each upstream also has a [`LatencyHistogram`] of its
//! attempts (not exported), and the handles read back cheaply ([`UpstreamMetrics::totals`],
//! [`RouteMetrics::totals`]) for the admin API's rate history.

mod exposition;
mod histogram;
mod labels;
mod latency;
mod outcome;
mod route;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

pub use exposition::Format;
pub use histogram::AtomicHistogram;
pub use labels::*;
pub use latency::{LatencyCounts, LatencyHistogram, LATENCY_BUCKETS};
pub use outcome::Outcome;
pub use route::{RouteMetrics, RouteTotals};
pub use upstream::{AttemptTotals, Fault, UpstreamMetrics};

/// Registers a fresh metric as `name` with `help`; returns its handle.
fn register<M: Metric + Default + Clone>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// Every metric bascule exports.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, AtomicHistogram>,
    attempts: Family<AttemptLabels, Counter>,
    failures: Family<FaultLabels, Counter>,
    upstream_up: Family<UpstreamLabel, Gauge>,
    active_tier: Family<RouteLabel, Gauge>,
    failovers: Family<FailoverLabels, Counter>,
    config_reloads: Family<ReloadLabels, Counter>,
    config_generation: Gauge,
    local_errors: Family<OpLabel, Counter>,
    pub(crate) cache_requests: Family<CacheLabels, Counter>,
    cache_bytes: Gauge,
    queue_depth: Family<UpstreamLabel, Gauge>,
    pub(crate) budget_exhausted: Family<RouteLabel, Counter>,
    /// Requests answered before a route was found (400, 404).
    unrouted: OnceLock<RouteMetrics>,
    /// Each upstream's attempt latencies, by name: kept across reloads like its counters.
    latencies: Mutex<HashMap<String, LatencyHistogram>>,
    /// Each (route, upstream)'s cached request counters, kept across reloads.
    route_slots: Mutex<HashMap<(String, String), route::Slots>>,
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
        let reg = &mut registry;
        let requests = register(
            reg,
            "bascule_requests",
            "Requests answered, by route, the upstream that answered (- for bascule's own answers) and status code",
        );
        let duration = register(
            reg,
            "bascule_request_duration_seconds",
            "Time from a request's arrival to its response head, failover attempts included, by route",
        );
        let attempts = register(
            reg,
            "bascule_upstream_attempts",
            "Attempts sent to an upstream, by outcome (ok, connect_error, timeout, retry_status, error, client_error, local_error, cdn_error, cancelled, overloaded)",
        );
        let failures = register(
            reg,
            "bascule_upstream_failures",
            "Failed attempts at an upstream, by whose fault they were (cdn: the CDN's own; origin: the origin's, seen directly or through a CDN)",
        );
        let upstream_up = register(
            reg,
            "bascule_upstream_up",
            "1 when the upstream is usable (state healthy), else 0",
        );
        let active_tier = register(
            reg,
            "bascule_route_active_tier",
            "0-based index of the route's tier in use; -1 when no tier has a usable upstream",
        );
        let failovers = register(
            reg,
            "bascule_failovers",
            "Changes of a route's active tier, by 0-based tier indexes (none: nothing usable)",
        );
        let config_reloads: Family<ReloadLabels, Counter> = register(
            reg,
            "bascule_config_reloads",
            "Config reloads, by result (success or error)",
        );
        let config_generation: Gauge = register(
            reg,
            "bascule_config_generation",
            "Generation of the serving config: 1 after start, +1 per applied reload",
        );
        let local_errors: Family<OpLabel, Counter> = register(
            reg,
            "bascule_local_errors",
            "Failures of bascule's own resources (file descriptors, memory), by operation (accept, connect): never counted against an upstream",
        );
        let cache_requests = register(
            reg,
            "bascule_cache_requests",
            "Requests that met the cache, by route and result (hit, stale, coalesced, miss, bypass)",
        );
        let cache_bytes = register(
            reg,
            "bascule_cache_bytes",
            "Bytes held by the cache store (bodies, headers, keys and per-entry overhead)",
        );
        let queue_depth = register(
            reg,
            "bascule_upstream_queue_depth",
            "Requests waiting for an admission slot of an upstream with max_in_flight",
        );
        let budget_exhausted = register(
            reg,
            "bascule_retry_budget_exhausted",
            "Retries and hedges a route's retry budget refused (the failure was answered as if no attempt were left)",
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
            failures,
            upstream_up,
            active_tier,
            failovers,
            config_reloads,
            config_generation,
            local_errors,
            cache_requests,
            cache_bytes,
            queue_depth,
            budget_exhausted,
            unrouted: OnceLock::new(),
            latencies: Mutex::default(),
            route_slots: Mutex::default(),
        }
    }

    /// The cached attempt counters and latency histogram of upstream `name`.
    pub fn upstream(&self, name: &str) -> UpstreamMetrics {
        let attempts = Outcome::ALL.map(|outcome| {
            self.attempts.get_or_create_owned(&AttemptLabels {
                upstream: name.to_owned(),
                outcome: outcome.as_str(),
            })
        });
        let latency = self
            .latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone();
        let failures = [Fault::Cdn, Fault::Origin].map(|fault| {
            self.failures.get_or_create_owned(&FaultLabels {
                upstream: name.to_owned(),
                fault: fault.as_str(),
            })
        });
        UpstreamMetrics::new(attempts, failures, latency)
    }

    /// The cached handles of route `name`, whose upstreams are `upstreams` (by name). The
    /// counter slots of a (route, upstream) pair are the same in every table, so that the
    /// totals read back never step back after a reload.
    pub fn route(self: &Arc<Self>, name: &str, upstreams: Vec<String>) -> RouteMetrics {
        let duration = self.duration.get_or_create_owned(&RouteLabel {
            route: name.to_owned(),
        });
        let slots = {
            let mut cache = self.route_slots.lock().unwrap_or_else(|p| p.into_inner());
            upstreams
                .iter()
                .map(String::as_str)
                .chain(["-"])
                .map(|u| {
                    cache
                        .entry((name.to_owned(), u.to_owned()))
                        .or_default()
                        .clone()
                })
                .collect()
        };
        RouteMetrics::new(Arc::clone(self), name, upstreams, duration, slots)
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

    /// Sets the cache gauges: the store's bytes, and the queue depth of each upstream with an
    /// admission limit (name, waiting), forgetting the others.
    pub fn set_cache_state<'a>(
        &self,
        bytes: u64,
        queues: impl IntoIterator<Item = (&'a str, usize)>,
    ) {
        self.cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.queue_depth.clear();
        for (name, depth) in queues {
            self.queue_depth
                .get_or_create(&UpstreamLabel {
                    upstream: name.to_owned(),
                })
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
    }

    /// The exposition in `format`.
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        match format {
            Format::OpenMetrics => out,
            Format::Text => exposition::to_text_004(&out),
        }
    }
}

#[cfg(test)]
mod tests;
