//! The routing table: an immutable snapshot compiled from a [`Config`], swapped whole on
//! reload. Its [`Upstream`]s carry this generation's settings over long-lived
//! [`LiveUpstream`]s (pooled client, health), and its routes point at [`RouteState`]s (active
//! tier, pin); a [`Registry`] hands the live objects out, so an upstream whose identity is
//! unchanged keeps its health and connections across reloads (DESIGN §7.5).

pub mod admission;
pub mod budget;
pub mod matcher;
pub mod registry;
pub mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{Cidr, Config, RouteSpec};
use crate::metrics::RouteMetrics;
use crate::tls::CertTable;
pub use matcher::Matcher;
pub use registry::{Changes, Pin, Registry, RouteState};
pub use upstream::{HostName, LiveUpstream, Upstream, UpstreamError};

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Its configuration.
    pub spec: RouteSpec,
    /// Tiers of upstreams, in order.
    pub tiers: Vec<Vec<Arc<Upstream>>>,
    /// Live state (active tier, pin), kept across reloads while the tiers are unchanged.
    pub state: Arc<RouteState>,
    /// Request counters and duration histogram; upstreams indexed as by `Route::index`.
    pub metrics: RouteMetrics,
    /// Where each tier starts in the flattened list of the route's upstreams.
    offsets: Vec<usize>,
    /// Round-robin counter for balanced tiers.
    rr: AtomicUsize,
    /// `standby_share` in parts per million (0: no warm standby).
    standby_ppm: u32,
    /// Standby-eligible requests so far (warm standby's even spreading).
    standby_n: AtomicU64,
}

impl Route {
    /// The upstream of `pick` (a pick from this route's own plan).
    pub fn upstream(&self, pick: crate::select::Pick) -> &Arc<Upstream> {
        &self.tiers[usize::from(pick.tier)][usize::from(pick.member)]
    }

    /// The position of the upstream of `pick` among all the route's upstreams, tier by tier.
    pub fn index(&self, pick: crate::select::Pick) -> usize {
        self.offsets
            .get(usize::from(pick.tier))
            .copied()
            .unwrap_or(0)
            + usize::from(pick.member)
    }

    /// Next round-robin offset.
    pub fn next_rr(&self) -> usize {
        self.rr.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the next standby-eligible request (replay-safe GET/HEAD) goes to the standby
    /// tier first ([`crate::select::is_standby`] over a per-route count); no count is taken
    /// when the route has no `standby_share`.
    pub fn next_standby(&self) -> bool {
        if self.standby_ppm == 0 {
            return false;
        }
        let n = self.standby_n.fetch_add(1, Ordering::Relaxed);
        crate::select::is_standby(n, self.standby_ppm)
    }
}

/// Request-rewriting settings that come from `[listen]` and reload with the table.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Add debug headers to responses.
    pub debug_headers: bool,
    /// Peers whose X-Forwarded-*, Forwarded and X-Real-IP are kept.
    pub trusted_proxies: Vec<Cidr>,
}

/// An immutable routing snapshot.
#[derive(Debug)]
pub struct RoutingTable {
    /// 1 after start, +1 per applied reload.
    pub generation: u64,
    /// When this table was compiled.
    pub loaded_at: SystemTime,
    /// The config it was compiled from.
    pub config: Arc<Config>,
    /// Routes in config order.
    pub routes: Vec<Route>,
    /// Every upstream, in name order.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Header rewriting settings.
    pub rewrite: Rewrite,
    /// Certificates of the HTTPS listeners, by SNI.
    pub certs: CertTable,
    /// The origin shield's store (shared by every route, kept across reloads); None when
    /// `[cache] max_size` is 0.
    pub cache: Option<Arc<crate::cache::Store>>,
    matcher: Matcher,
}

/// Why a validated config could not be compiled into a table.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// An upstream's live object could not be built.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A route names an upstream the config does not define (validation prevents this).
    #[error("route {route:?}: unknown upstream {name:?}")]
    UnknownUpstream {
        /// The route.
        route: String,
        /// The name.
        name: String,
    },
}

impl RoutingTable {
    /// Compiles `config`, taking live objects from `registry` (reusing unchanged ones). Nothing
    /// live changes: the caller swaps the table in, then calls [`RoutingTable::commit`].
    pub fn compile(
        config: Arc<Config>,
        generation: u64,
        registry: &Registry,
    ) -> Result<RoutingTable, CompileError> {
        let upstreams = registry.prepare_upstreams(&config.upstreams)?;
        let states = registry.prepare_routes(&config.routes);
        let by_name: HashMap<&str, &Arc<Upstream>> =
            upstreams.iter().map(|u| (u.name(), u)).collect();
        let mut routes = Vec::with_capacity(config.routes.len());
        for (spec, state) in config.routes.iter().zip(states) {
            let tiers = spec
                .tiers
                .iter()
                .map(|tier| {
                    tier.iter()
                        .map(|n| {
                            by_name
                                .get(n.as_str())
                                .map(|u| Arc::clone(u))
                                .ok_or_else(|| CompileError::UnknownUpstream {
                                    route: spec.name.clone(),
                                    name: n.clone(),
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let offsets = tiers
                .iter()
                .scan(0, |start, t| {
                    let here = *start;
                    *start += t.len();
                    Some(here)
                })
                .collect();
            let names = spec.tiers.iter().flatten().cloned().collect();
            routes.push(Route {
                metrics: registry.metrics().route(&spec.name, names),
                offsets,
                spec: spec.clone(),
                tiers,
                state,
                rr: AtomicUsize::new(fastrand::usize(..1024)),
                standby_ppm: crate::select::share_ppm(spec.standby_share),
                standby_n: AtomicU64::new(0),
            });
        }
        let matcher = Matcher::new(
            config
                .routes
                .iter()
                .map(|r| (r.hosts.as_slice(), r.path_prefix.as_str())),
        );
        let rewrite = Rewrite {
            debug_headers: config.listen.debug_headers,
            trusted_proxies: config.listen.trusted_proxies.clone(),
        };
        let certs = CertTable::new(&config.certificates);
        let cache = registry.cache(&config.cache);
        Ok(RoutingTable {
            cache,
            generation,
            loaded_at: SystemTime::now(),
            certs,
            config,
            routes,
            upstreams,
            rewrite,
            matcher,
        })
    }

    /// Makes this table's upstreams and route states the registry's live ones (call once it
    /// serves); returns what changed since the previous table.
    pub fn commit(&self, registry: &Registry) -> Changes {
        let routes: Vec<_> = self
            .routes
            .iter()
            .map(|r| (r.spec.clone(), Arc::clone(&r.state)))
            .collect();
        registry.commit(&self.upstreams, &routes)
    }

    /// The route named `name`.
    pub fn route_named(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.spec.name == name)
    }

    /// The upstream named `name`.
    pub fn upstream_named(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// The route for a request's host (as received) and path.
    pub fn route(&self, host: &str, path: &str) -> Option<&Route> {
        self.matcher
            .find(host, path)
            .and_then(|i| self.routes.get(i))
    }
}
