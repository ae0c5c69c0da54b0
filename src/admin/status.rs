//! The `/status` document (DESIGN §5): the config block, every upstream's state and last
//! probe, every route's tiers, active tier and pin, and the recent events.

use serde::Serialize;

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
                failback_delay_ms: r
                    .state
                    .failback_delay()
                    .unwrap_or(r.spec.failback_delay)
                    .as_millis(),
                standby_share: r.spec.standby_share,
            })
            .collect();
        Status {
            config,
            upstreams,
            routes,
            events,
        }
    }
}
