//! The `/status` document (DESIGN §5): the config block, every upstream's state and last
//! probe, every route's tiers, active tier and pin, and the recent events.

use serde::Serialize;

use crate::cache::CacheResult;
use crate::events::Event;
use crate::health::{ProbeResult, State};
use crate::routing::{Pin, RoutingTable};

/// The whole `/status` answer.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Which config serves, and the last reload error.
    pub config: ConfigStatus,
    /// Every upstream, in name order.
    pub upstreams: Vec<UpstreamStatus>,
    /// Every route, in file order.
    pub routes: Vec<RouteStatus>,
    /// The cache store; null when `[cache] max_size` is 0.
    pub cache: Option<CacheStatus>,
    /// Recent events, oldest first.
    pub events: Vec<Event>,
}

/// `config` in `/status`.
#[derive(Debug, Serialize)]
pub struct ConfigStatus {
    /// The config file as named on the command line.
    pub path: String,
    /// When the serving table was loaded (RFC 3339).
    pub loaded_at: String,
    /// 1 after start, +1 per applied reload.
    pub generation: u64,
    /// The last failed reload's message, until the next good one.
    pub last_error: Option<String>,
}

/// `cache` in `/status`: the store's size and how requests met it since start.
#[derive(Debug, Serialize)]
pub struct CacheStatus {
    /// `[cache] max_size`, bytes.
    pub max_size: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Responses held.
    pub entries: usize,
    /// Requests that met the cache, by result (hit, stale, coalesced, miss, bypass).
    pub requests: std::collections::BTreeMap<&'static str, u64>,
    /// Share of those served from the store (hit, stale or coalesced); null before any.
    pub hit_ratio: Option<f64>,
}

/// One upstream in `/status`.
#[derive(Debug, Serialize)]
pub struct UpstreamStatus {
    /// Its name.
    pub name: String,
    /// `scheme://host:port`.
    pub address: String,
    /// "cdn" or "origin".
    pub role: &'static str,
    /// drained, ejected, unhealthy or healthy.
    pub state: State,
    /// The operator's reason while drained, else null.
    pub drain_reason: Option<String>,
    /// Requests being sent to or answered by it.
    pub in_flight: usize,
    /// `max_in_flight` (0: no limit).
    pub max_in_flight: u32,
    /// Requests waiting for an admission slot.
    pub queue_depth: usize,
    /// The last probe; null until the first one finished.
    pub last_check: Option<ProbeResult>,
}

/// One route in `/status`.
#[derive(Debug, Serialize)]
pub struct RouteStatus {
    /// Its name.
    pub name: String,
    /// Host patterns.
    pub hosts: Vec<String>,
    /// Path prefix.
    pub path_prefix: String,
    /// Upstream names per tier.
    pub tiers: Vec<Vec<String>>,
    /// 0-based index of the tier in use; null when none has a usable upstream.
    pub active_tier: Option<usize>,
    /// The operator's pin (tier, reason, at), or null.
    pub pinned: Option<Pin>,
    /// Every origin-role upstream of the route fails its active checks: CDN failures are
    /// the origin's, and answers pass from the first tier (DESIGN §7.1).
    pub origin_failing: bool,
    /// When fresh stored copies are served: "direct", "always" or "off".
    pub cache: &'static str,
    /// The delay the route's next failback would wait, in ms: `failback_delay`, doubled
    /// (up to 16x) by each relapse within 5 minutes of a failback (DESIGN §7.2).
    pub failback_delay_ms: u128,
    /// The share of replay-safe GET/HEAD requests sent first to the next usable tier after
    /// the active one (`standby_share`, warm standby).
    pub standby_share: f64,
}

impl Status {
    /// The status of `table` with `events` and the last reload error.
    pub fn of(table: &RoutingTable, events: Vec<Event>, last_error: Option<String>) -> Status {
        let config = ConfigStatus {
            path: table.config.path.display().to_string(),
            loaded_at: humantime::format_rfc3339_millis(table.loaded_at).to_string(),
            generation: table.generation,
            last_error,
        };
        let upstreams = table
            .upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: u.name().to_owned(),
                address: u.spec.address.to_string(),
                role: u.spec.role.as_str(),
                state: u.live.health.state(),
                drain_reason: u.live.health.drain_reason(),
                in_flight: u.live.health.in_flight(),
                max_in_flight: u.spec.max_in_flight,
                queue_depth: u.gate.as_ref().map_or(0, |g| g.queue_depth()),
                last_check: u.live.health.last_check(),
            })
            .collect();
        let routes = table
            .routes
            .iter()
            .map(|r| RouteStatus {
                name: r.spec.name.clone(),
                hosts: r.spec.hosts.iter().map(ToString::to_string).collect(),
                path_prefix: r.spec.path_prefix.clone(),
                tiers: r.spec.tiers.clone(),
                active_tier: r.state.active(),
                pinned: r.state.pin(),
                origin_failing: r.state.origin_failing(),
                cache: r.spec.cache.as_str(),
                failback_delay_ms: r
                    .state
                    .failback_delay()
                    .unwrap_or(r.spec.failback_delay)
                    .as_millis(),
                standby_share: r.spec.standby_share,
            })
            .collect();
        let cache = table.cache.as_ref().map(|store| {
            let mut totals = [0u64; CacheResult::ALL.len()];
            for r in &table.routes {
                for (t, n) in totals.iter_mut().zip(r.metrics.cache_totals()) {
                    *t += n;
                }
            }
            let all: u64 = totals.iter().sum();
            let served = totals[CacheResult::Hit as usize]
                + totals[CacheResult::Stale as usize]
                + totals[CacheResult::Coalesced as usize];
            CacheStatus {
                max_size: store.max_size(),
                bytes: store.bytes(),
                entries: store.len(),
                requests: CacheResult::ALL
                    .iter()
                    .zip(totals)
                    .map(|(r, n)| (r.as_str(), n))
                    .collect(),
                hit_ratio: (all > 0).then(|| served as f64 / all as f64),
            }
        });
        Status {
            config,
            upstreams,
            routes,
            cache,
            events,
        }
    }
}
