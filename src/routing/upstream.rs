//! Upstreams as a routing table holds them: this generation's settings ([`Upstream::spec`])
//! over a live object ([`LiveUpstream`]: pooled client, health, counters) that outlives reloads
//! while the upstream's identity holds (DESIGN §7.5). A reload that changes only tuning — its
//! timeouts, health or passive settings — gets a new `Upstream` over the same live object and
//! retunes it in place when it commits.

use std::sync::{Arc, Mutex};

use super::admission::Gate;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme as UriScheme};
use http::HeaderValue;

use crate::client::{self, Connector, Dns, UpstreamClient};
use crate::config::{HealthSpec, Identity, Scheme, UpstreamSpec};
use crate::events::Signals;
use crate::health::head_times::HeadTimes;
use crate::health::Health;
use crate::metrics::UpstreamMetrics;

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

/// One upstream in one routing table: its settings in this generation, and its live object.
pub struct Upstream {
    /// Its configuration in this table (timeouts are read from here per request).
    pub spec: UpstreamSpec,
    /// Its admission gate when `max_in_flight` > 0 (the live object's, kept while the limit
    /// is unchanged).
    pub gate: Option<Arc<Gate>>,
    /// What outlives reloads: pool, health, counters.
    pub live: Arc<LiveUpstream>,
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
    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// The live side of an upstream, kept across reloads while its identity is unchanged.
pub struct LiveUpstream {
    /// What makes it this upstream (a reload that changes it starts a fresh object).
    pub identity: Identity,
    /// Pooled keep-alive client dialling the address.
    pub client: UpstreamClient,
    /// The client's connector, whose connect deadline a reload retunes.
    connector: Connector,
    /// Live health, shared with checkers and in-flight guards.
    pub health: Arc<Health>,
    /// The active-check settings of the serving table; the checker reads them at each probe.
    pub probe: ArcSwap<HealthSpec>,
    /// Asks its checker to probe now (a CDN's checker does, to tell a CDN fault from an
    /// origin fault).
    pub probe_now: tokio::sync::Notify,
    /// URI scheme for requests to it.
    pub scheme: UriScheme,
    /// The Host to send when `host` is configured.
    pub host: Option<HostName>,
    /// The address's own Host (`host[:port]`, the port left out when it is the scheme's), sent
    /// when neither `host` nor the client gives one.
    pub address_host: HostName,
    /// `x-bascule-upstream` value.
    pub name_header: HeaderValue,
    /// Attempt counters (`bascule_upstream_attempts_total`).
    pub metrics: UpstreamMetrics,
    /// The admission gate of the last table built over it (reused while its limit holds).
    gate: Mutex<Option<Arc<Gate>>>,
    /// Recent times to response head, for `hedge_after = "auto"`.
    pub head_times: HeadTimes,
}

impl std::fmt::Debug for LiveUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveUpstream")
            .field("name", &self.identity.name)
            .finish_non_exhaustive()
    }
}

/// Why an upstream's live object could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Its client (TLS settings) could not be built.
    #[error("upstream {name:?}: {source}")]
    Client {
        /// The upstream.
        name: String,
        /// Why.
        source: client::BuildError,
    },
    /// A name it would send is not a valid Host.
    #[error("upstream {name:?}: invalid host {host:?}")]
    Host {
        /// The upstream.
        name: String,
        /// The value.
        host: String,
    },
}

impl LiveUpstream {
    /// A fresh live object for `spec`: healthy and unverified, with an empty pool.
    pub fn new(
        spec: &UpstreamSpec,
        dns: Dns,
        signals: Signals,
        metrics: UpstreamMetrics,
    ) -> Result<LiveUpstream, UpstreamError> {
        let name = &spec.name;
        let (client, connector) =
            client::build(spec, dns).map_err(|source| UpstreamError::Client {
                name: name.clone(),
                source,
            })?;
        let host_error = |host: &str| UpstreamError::Host {
            name: name.clone(),
            host: host.to_owned(),
        };
        let host = match &spec.host {
            Some(h) => Some(HostName::parse(h).ok_or_else(|| host_error(h))?),
            None => None,
        };
        let own = spec.address.authority_for_host();
        let address_host = HostName::parse(&own).ok_or_else(|| host_error(&own))?;
        let name_header = HeaderValue::from_str(name).map_err(|_| host_error(name))?;
        let scheme = match spec.address.scheme {
            Scheme::Http => UriScheme::HTTP,
            Scheme::Https => UriScheme::HTTPS,
        };
        Ok(LiveUpstream {
            identity: spec.identity(),
            client,
            connector,
            health: Arc::new(Health::new(name, &spec.passive, signals)),
            probe: ArcSwap::from_pointee(spec.health.clone()),
            probe_now: tokio::sync::Notify::new(),
            scheme,
            host,
            address_host,
            name_header,
            metrics,
            gate: Mutex::new(None),
            head_times: HeadTimes::default(),
        })
    }

    /// The admission gate for `max_in_flight` (None for 0: no limit): the one in use when
    /// its limit is the same, so a reload keeps the requests it is counting (DESIGN §7.5).
    /// A changed limit starts a new gate; requests already admitted finish on the old one.
    pub fn gate(&self, max_in_flight: u32) -> Option<Arc<Gate>> {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        match (&*g, max_in_flight) {
            (_, 0) => {
                *g = None;
                None
            }
            (Some(old), n) if old.limit() == n => Some(Arc::clone(old)),
            (_, n) => {
                let new = Arc::new(Gate::new(n));
                *g = Some(Arc::clone(&new));
                Some(new)
            }
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Applies the tuning of `spec` (same identity) in place: connect deadline, passive
    /// detection, and the active checks' settings (the checker uses them from its next probe).
    /// Health state, ejection, drain and pool are kept.
    pub fn retune(&self, spec: &UpstreamSpec) {
        self.connector.retune(spec.connect_timeout);
        self.health.retune(&spec.passive);
        if **self.probe.load() != spec.health {
            self.probe.store(Arc::new(spec.health.clone()));
        }
    }
}
