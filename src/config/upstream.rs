//! Upstreams as configured: address and identity across reloads, role, active and passive
//! health settings (re-exported from `config`).

use std::time::Duration;

use super::{defaults, Address, CaFile, StatusSet};

/// Active health-check settings of one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    /// Probe path.
    pub path: String,
    /// Time between probes (jittered).
    pub interval: Duration,
    /// Probe deadline.
    pub timeout: Duration,
    /// Passes in a row to become healthy.
    pub rise: u32,
    /// Failures in a row to become unhealthy.
    pub fall: u32,
    /// Statuses that pass.
    pub expect_status: StatusSet,
    /// Host header for probes (already resolved from health.host / host / address).
    pub host: String,
}

/// Passive failure detection settings of one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveSpec {
    /// Live failures in a row that eject (0 turns passive ejection off).
    pub consecutive_failures: u32,
    /// First ejection time; doubles on repeats up to five minutes.
    pub ejection: Duration,
    /// Share of attempts within `window` that ejects (DESIGN §7.2), in (0, 1].
    pub failure_rate: f64,
    /// Attempts within `window` before `failure_rate` applies (0 turns that rule off).
    pub min_requests: u32,
    /// How far back `failure_rate` counts (whole seconds, 1..=60).
    pub window: Duration,
}

impl PassiveSpec {
    /// Only the consecutive-failures rule: `threshold` failures in a row eject for `ejection`
    /// (the failure-rate rule off).
    pub fn consecutive(threshold: u32, ejection: Duration) -> PassiveSpec {
        PassiveSpec {
            consecutive_failures: threshold,
            ejection,
            failure_rate: defaults::FAILURE_RATE,
            min_requests: 0,
            window: defaults::WINDOW,
        }
    }
}

/// What an upstream is to the site: a CDN in front of the origin, or (part of) the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A CDN: its failures may be its own or the origin's (DESIGN §7.1).
    Cdn,
    /// The origin (the default).
    #[default]
    Origin,
}

impl Role {
    /// "cdn" or "origin".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cdn => "cdn",
            Role::Origin => "origin",
        }
    }
}

/// One upstream, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Unique name.
    pub name: String,
    /// Where to connect.
    pub address: Address,
    /// Host header to send; None: the client's.
    pub host: Option<String>,
    /// TLS server name; None: no SNI (IP address) or not TLS.
    pub sni: Option<String>,
    /// Extra trust roots (`ca_file`), read and checked.
    pub ca: Option<CaFile>,
    /// A CDN or the origin.
    pub role: Role,
    /// The header the origin always sets (lower-case), if configured: a CDN's 5xx without it
    /// is the CDN's own.
    pub origin_marker: Option<http::HeaderName>,
    /// TCP (and TLS) connect deadline.
    pub connect_timeout: Duration,
    /// Deadline for response headers.
    pub response_timeout: Duration,
    /// Requests in flight to it at most; 0: no limit.
    pub max_in_flight: u32,
    /// Longest wait for an in-flight slot before the attempt fails (`overloaded`).
    pub queue_timeout: Duration,
    /// Active checks.
    pub health: HealthSpec,
    /// Passive detection.
    pub passive: PassiveSpec,
}

/// What makes an upstream the same one across reloads (DESIGN §7.5): a reload that changes
/// any of these starts it fresh (new pool, health unverified); one that changes only its
/// timeouts, health or passive settings retunes the live upstream in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its name.
    pub name: String,
    /// Where it connects.
    pub address: Address,
    /// The Host it is sent.
    pub host: Option<String>,
    /// The TLS server name.
    pub sni: Option<String>,
    /// The contents of its `ca_file` (not its path).
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// A CDN or the origin.
    pub role: Role,
}

impl UpstreamSpec {
    /// Its identity across reloads.
    pub fn identity(&self) -> Identity {
        Identity {
            name: self.name.clone(),
            address: self.address.clone(),
            host: self.host.clone(),
            sni: self.sni.clone(),
            ca: self.ca.as_ref().map(|c| c.certs.clone()),
            role: self.role,
        }
    }
}
