//! Configuration: the file format (`file`), value parsers (`units`), upstreams as configured
//! (`upstream`), and validation into the typed [`Config`] (`validate`). `load` reads a file
//! and returns either a complete, valid `Config` or every error found, each as
//! `FILE:LINE:COL: message`.

mod address;
pub mod defaults;
pub mod file;
pub mod units;
mod upstream;
pub mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::tls::{CaFile, CertFiles, ServerCert};
pub use address::{strip_port, Address, Scheme};
pub use units::{Cidr, StatusSet};
pub use upstream::{HealthSpec, Identity, PassiveSpec, Role, UpstreamSpec};

/// Most attempts a route may make for one request (`retry.attempts`).
pub const MAX_ATTEMPTS: usize = 16;

/// A validated configuration, ready to be compiled into a routing table.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file as named on the command line.
    pub path: PathBuf,
    /// Hash of the file's bytes and of its certificate and key files, to tell a real change
    /// (a renewed certificate included) from a touch.
    pub content_hash: u64,
    /// `[listen]`.
    pub listen: Listen,
    /// `[admin]`.
    pub admin: Admin,
    /// `[limits]`.
    pub limits: Limits,
    /// `[log]`.
    pub log: Log,
    /// `[cache]`.
    pub cache: CacheSpec,
    /// `[[tls.certificates]]`, loaded and checked (paths resolved against the config file's
    /// directory).
    pub certificates: Vec<ServerCert>,
    /// Upstreams in name order.
    pub upstreams: Vec<UpstreamSpec>,
    /// Routes in file order.
    pub routes: Vec<RouteSpec>,
}

/// Client-facing listeners and request-rewriting switches.
#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    /// Plain HTTP/1.1 + h2c addresses.
    pub http: Vec<SocketAddr>,
    /// TLS addresses.
    pub https: Vec<SocketAddr>,
    /// Add x-bascule-upstream / x-bascule-attempts to responses.
    pub debug_headers: bool,
    /// Peers whose X-Forwarded-*, Forwarded and X-Real-IP headers are kept.
    pub trusted_proxies: Vec<Cidr>,
}

/// The admin API listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// false: no admin listener.
    pub enabled: bool,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Bearer token every admin request must carry, when set.
    pub token: Option<String>,
    /// Host names, lowercase without a trailing dot, accepted in `Host` besides `localhost`
    /// and IP addresses.
    pub hosts: Vec<String>,
    /// The read-only metrics listener (`GET /metrics` only, no token), when set.
    pub metrics_listen: Option<SocketAddr>,
}

/// Connection limits for client connections.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Request head size limit in bytes (431 beyond); sets the header-count and target limits.
    pub max_header_bytes: usize,
    /// Time allowed for the request head.
    pub header_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Time in-flight requests get on shutdown.
    pub shutdown_grace: Duration,
    /// Open client connections at most.
    pub max_connections: usize,
    /// Longest gap between two pieces of a request body (nginx's `client_body_timeout`).
    pub body_timeout: Duration,
    /// Longest time a client may accept no response bytes (nginx's `send_timeout`).
    pub send_timeout: Duration,
    /// Concurrent streams per HTTP/2 client connection.
    pub max_concurrent_streams: u32,
    /// Requests of one client connection in flight to upstreams at once.
    pub max_in_flight_per_connection: usize,
    /// Bytes of buffered request bodies one connection may hold at once.
    pub body_buffer_per_connection: usize,
}

/// `[cache]`: the origin shield's store (DESIGN §7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSpec {
    /// Bytes the store may hold; 0: no cache (no store is allocated).
    pub max_size: u64,
    /// Responses larger than this are streamed and never stored.
    pub max_object: u64,
    /// How long past freshness a stored copy may serve when every tier fails (unless the
    /// response's own `stale-if-error` says otherwise).
    pub stale_if_error: Duration,
    /// Longest wait of a coalesced request for the one in flight.
    pub lock_timeout: Duration,
}

/// When a route serves fresh stored responses (`[[routes]] cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Only while the route's active tier is an origin-role tier (the default).
    #[default]
    Direct,
    /// Whatever tier is active.
    Always,
    /// Never (stale copies still serve when every tier fails).
    Off,
}

impl CacheMode {
    /// "direct", "always" or "off".
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Direct => "direct",
            CacheMode::Always => "always",
            CacheMode::Off => "off",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// One access line per request.
    pub access: bool,
}

/// A host pattern of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// A lower-case host name.
    Exact(String),
    /// `*.example.com`, kept as the suffix ".example.com".
    Suffix(String),
    /// `*`.
    Any,
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

/// The environment variable that shortens damped failback's memory (a duration, e.g. "3s")
/// for tests; unset in production.
pub const DAMPING_MEMORY_ENV: &str = "BASCULE_TEST_DAMPING_MEMORY";

/// Retry policy of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySpec {
    /// Total attempts, the first included (1..=MAX_ATTEMPTS).
    pub attempts: usize,
    /// Statuses that count as failed attempts.
    pub on_status: StatusSet,
    /// Request bodies up to this many bytes are buffered for replay.
    pub buffer_body: usize,
    /// When a replay-safe request is also sent to the next usable upstream (DESIGN §7.4).
    pub hedge_after: HedgeAfter,
    /// Retries after sending, and hedges, add at most this share of the route's requests.
    pub budget: f64,
    /// ...plus this many per second.
    pub budget_min_per_sec: u32,
}

/// `[routes.retry] hedge_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeAfter {
    /// Never hedge.
    Off,
    /// The upstream's recent p95 time to response head, within
    /// [`HEDGE_AUTO_MIN`](defaults::HEDGE_AUTO_MIN)..=[`HEDGE_AUTO_MAX`](defaults::HEDGE_AUTO_MAX).
    Auto,
    /// A fixed delay.
    After(Duration),
}

impl HedgeAfter {
    /// Parses "auto", "off" or a duration greater than zero.
    pub fn parse(text: &str) -> Result<HedgeAfter, String> {
        match text.trim() {
            "auto" => Ok(HedgeAfter::Auto),
            "off" => Ok(HedgeAfter::Off),
            other => match units::duration(other) {
                Ok(d) if d.is_zero() => Err("must be greater than zero (or \"off\")".into()),
                Ok(d) => Ok(HedgeAfter::After(d)),
                Err(e) => Err(format!("{e}, \"auto\" or \"off\"")),
            },
        }
    }
}

/// One route, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    /// Unique name.
    pub name: String,
    /// Host patterns.
    pub hosts: Vec<HostPattern>,
    /// Plain string path prefix.
    pub path_prefix: String,
    /// Tiers of upstream names, in order; each inner list is balanced (a group of one is a
    /// plain tier).
    pub tiers: Vec<Vec<String>>,
    /// Continuous health a recovered higher tier needs before use.
    pub failback_delay: Duration,
    /// When fresh stored responses are served.
    pub cache: CacheMode,
    /// Share of replay-safe GET/HEAD requests sent first to the next usable tier after the
    /// active one (warm standby, DESIGN §7.2), in [0, 1).
    pub standby_share: f64,
    /// How long damped failback remembers a failback and a loss (DESIGN §7.2: five minutes,
    /// [`crate::select::DAMPING_MEMORY`]). Not a key of the file: only the environment
    /// variable [`DAMPING_MEMORY_ENV`] changes it, so tests can watch it run out.
    pub damping_memory: Duration,
    /// Retry policy.
    pub retry: RetrySpec,
}

impl RouteSpec {
    /// The `bascule check` line: `route NAME hosts=… prefix=… tiers: a > b > [c, d]`.
    pub fn summary(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        let tiers: Vec<String> = self
            .tiers
            .iter()
            .map(|t| match t.as_slice() {
                [one] => one.clone(),
                group => format!("[{}]", group.join(", ")),
            })
            .collect();
        format!(
            "route {} hosts={} prefix={} tiers: {}",
            self.name,
            hosts.join(","),
            self.path_prefix,
            tiers.join(" > ")
        )
    }
}

/// One problem in a config file, positioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as named on the command line.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read config: {source}")]
    Read {
        /// The file as named.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and is invalid; every diagnostic found.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
}

fn join_lines(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates the config file at `path`, expanding `${VAR}` from the process
/// environment. Relative file paths inside resolve against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    validate::parse(path, &text, &|name| std::env::var(name).ok())
}

/// The fingerprint of a config: its text's hash combined with the bytes of `files` (its
/// certificates and keys), in order. Equal fingerprints mean nothing to reload.
pub fn fingerprint<'a>(text_hash: u64, files: impl IntoIterator<Item = &'a Path>) -> u64 {
    files.into_iter().fold(text_hash, |acc, p| {
        let h = std::fs::read(p).map_or(0, |b| hash_bytes(&b));
        acc.rotate_left(7) ^ h
    })
}

/// The TLS files a config reads besides itself — certificates, keys, upstreams' `ca_file`s —
/// in the order `fingerprint` takes them: a change of any is a reload.
pub fn tls_files<'a>(
    certs: &'a [ServerCert],
    upstreams: &'a [UpstreamSpec],
) -> impl Iterator<Item = &'a Path> {
    certs
        .iter()
        .flat_map(|c| [c.files.cert.as_path(), c.files.key.as_path()])
        .chain(
            upstreams
                .iter()
                .filter_map(|u| u.ca.as_ref().map(|c| c.path.as_path())),
        )
}

/// A 64-bit FNV-1a hash of the file's bytes (to detect unchanged content on file events).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
