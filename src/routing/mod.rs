//! The routing table: an immutable snapshot compiled from a [`Config`], swapped whole on
//! reload. Routes point at long-lived [`Upstream`] objects (definition, pooled client, live
//! health) and [`RouteState`]s (active tier, pin) that a [`Registry`] hands out, so an
//! upstream whose identity is unchanged keeps its health and connections across reloads.

pub mod matcher;
pub mod registry;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::uri::{Authority, Scheme as UriScheme};
use http::HeaderValue;

use crate::client::{self, Dns, UpstreamClient};
use crate::config::{Cidr, Config, RouteSpec, UpstreamSpec};
use crate::health::events::Signals;
use crate::health::Health;
use crate::metrics::{RouteMetrics, UpstreamMetrics};
use crate::tls::CertTable;
pub use matcher::Matcher;
pub use registry::{Changes, Pin, Registry, RouteState};

/// One upstream: what it is (its spec), how to reach it (pooled client) and how it is doing.
pub struct Upstream {
    /// Its configuration; also its identity across reloads.
    pub spec: UpstreamSpec,
    /// Pooled keep-alive client dialling `spec.address`.
    pub client: UpstreamClient,
    /// Live health, shared with checkers and in-flight guards.
    pub health: Arc<Health>,
    /// URI scheme for requests to it.
    pub scheme: UriScheme,
    /// The Host to send when `spec.host` is set.
    pub host: Option<HostName>,
    /// The address's own Host (`host[:port]`, the port left out when it is the scheme's), sent
    /// when neither `spec.host` nor the client gives one.
    pub address_host: HostName,
    /// `x-bascule-upstream` value.
    pub name_header: HeaderValue,
    /// Attempt counters (`bascule_upstream_attempts_total`).
    pub metrics: UpstreamMetrics,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.spec.name)
            .field("address", &self.spec.address)
            .finish()
    }
}

impl Upstream {
    fn new(
        spec: UpstreamSpec,
        dns: Dns,
        signals: Signals,
        metrics: UpstreamMetrics,
    ) -> Result<Upstream, String> {
        let client = client::build(&spec, dns)?;
        let host = match &spec.host {
            Some(h) => Some(HostName::parse(h).ok_or_else(|| format!("invalid host {h:?}"))?),
            None => None,
        };
        let own = spec.address.authority_for_host();
        let address_host =
            HostName::parse(&own).ok_or_else(|| format!("invalid address host {own:?}"))?;
        let name_header =
            HeaderValue::from_str(&spec.name).map_err(|e| format!("name {:?}: {e}", spec.name))?;
        let scheme = match spec.address.scheme {
            crate::config::Scheme::Http => UriScheme::HTTP,
            crate::config::Scheme::Https => UriScheme::HTTPS,
        };
        Ok(Upstream {
            client,
            health: Arc::new(Health::new(&spec.name, &spec.passive, signals)),
            scheme,
            host,
            address_host,
            name_header,
            metrics,
            spec,
        })
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// A Host header value and the same name as a URI authority (HTTP/2 sends `:authority`).
#[derive(Debug, Clone)]
pub struct HostName {
    /// For the `Host` header.
    pub header: HeaderValue,
    /// For the request URI.
    pub authority: Authority,
}

impl HostName {
    /// `s` as both forms; None when it is not a valid authority.
    pub fn parse(s: &str) -> Option<HostName> {
        Some(HostName {
            header: HeaderValue::from_str(s).ok()?,
            authority: s.parse().ok()?,
        })
    }

    /// A Host header as received, if it is also a valid authority.
    pub fn from_header(h: &HeaderValue) -> Option<HostName> {
        Some(HostName {
            header: h.clone(),
            authority: Authority::try_from(h.as_bytes()).ok()?,
        })
    }
}

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
    matcher: Matcher,
}

impl RoutingTable {
    /// Compiles `config`, taking live objects from `registry` (reusing unchanged ones). Nothing
    /// live changes: the caller swaps the table in, then calls [`RoutingTable::commit`].
    pub fn compile(
        config: Arc<Config>,
        generation: u64,
        registry: &Registry,
    ) -> Result<RoutingTable, String> {
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
                                .ok_or_else(|| format!("unknown upstream {n:?}"))
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
        Ok(RoutingTable {
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
