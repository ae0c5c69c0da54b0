//! Serde mirror of the config file, version 1. No logic lives here: every value a user can get
//! wrong is kept as text with its byte span, and `validate` turns it into typed settings,
//! reporting every mistake with file:line:col. Unknown keys are rejected by serde. Defaults
//! are named in [`defaults`](super::defaults), written once.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A string from the file with its position; may hold `${VAR}` references.
pub type Text = Spanned<String>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Client-facing listeners. Required.
    pub listen: Spanned<Listen>,
    /// Admin API. Default: enabled on 127.0.0.1:9901, no token.
    #[serde(default)]
    pub admin: Admin,
    /// Connection and request-head limits.
    #[serde(default)]
    pub limits: Limits,
    /// Log format and the access log.
    #[serde(default)]
    pub log: Log,
    /// TLS certificates for `listen.https`.
    #[serde(default)]
    pub tls: Tls,
    /// Settings every upstream inherits unless it overrides them.
    #[serde(default)]
    pub defaults: Defaults,
    /// The origin shield's store (DESIGN §7.3).
    #[serde(default)]
    pub cache: Cache,
    /// Upstreams by name, in name order.
    #[serde(default)]
    pub upstreams: BTreeMap<Text, Upstream>,
    /// Routes in file order.
    #[serde(default)]
    pub routes: Vec<Spanned<Route>>,
}

/// `[listen]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Plain HTTP/1.1 and h2c addresses. Default: none.
    #[serde(default)]
    pub http: Vec<Text>,
    /// TLS addresses (ALPN h2, http/1.1). Default: none.
    #[serde(default)]
    pub https: Vec<Text>,
    /// Add `x-bascule-upstream` / `x-bascule-attempts` to responses. Default: false.
    #[serde(default)]
    pub debug_headers: bool,
    /// CIDRs whose X-Forwarded-For is kept and appended to, and whose Forwarded and X-Real-IP
    /// are kept. Default: none.
    #[serde(default)]
    pub trusted_proxies: Vec<Text>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Default: true.
    pub enabled: Option<bool>,
    /// Default: [`ADMIN_LISTEN`](super::defaults::ADMIN_LISTEN).
    pub listen: Option<Text>,
    /// Bearer token; required for a non-loopback address. Default: none.
    pub token: Option<Text>,
    /// Host names (no port) the admin API answers to besides `localhost` and IP addresses,
    /// e.g. a Service name; any other name in `Host` is refused (DNS rebinding). Default: [].
    #[serde(default)]
    pub hosts: Vec<Text>,
    /// A second, read-only listener serving only `GET /metrics`, with no token (for a
    /// Prometheus scraper on the pod network). Default: none.
    pub metrics_listen: Option<Text>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request head size limit (431 beyond); also sets the HTTP/1 header count (one per 32
    /// bytes) and the request-target limit (an eighth, at least 8 KiB). Default: [`MAX_HEADER_BYTES`](super::defaults::MAX_HEADER_BYTES).
    pub max_header_bytes: Option<Spanned<Scalar>>,
    /// Time a client has to send its request head. Default: [`HEADER_TIMEOUT`](super::defaults::HEADER_TIMEOUT).
    pub header_timeout: Option<Text>,
    /// Keep-alive connections idle longer are closed. Default: [`IDLE_TIMEOUT`](super::defaults::IDLE_TIMEOUT).
    pub idle_timeout: Option<Text>,
    /// Time in-flight requests get on SIGTERM. Default: [`SHUTDOWN_GRACE`](super::defaults::SHUTDOWN_GRACE).
    pub shutdown_grace: Option<Text>,
    /// Open client connections at most; further ones wait in the accept queue. Default: [`MAX_CONNECTIONS`](super::defaults::MAX_CONNECTIONS).
    pub max_connections: Option<Spanned<i64>>,
    /// A request body that delivers no bytes for this long is cut (h1: 408, h2: stream reset).
    /// Default: [`BODY_TIMEOUT`](super::defaults::BODY_TIMEOUT).
    pub body_timeout: Option<Text>,
    /// A client that accepts no response bytes for this long is cut. Default: [`SEND_TIMEOUT`](super::defaults::SEND_TIMEOUT).
    pub send_timeout: Option<Text>,
    /// Concurrent streams per HTTP/2 client connection. Default: [`MAX_CONCURRENT_STREAMS`](super::defaults::MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: Option<Spanned<i64>>,
    /// Requests of one client connection in flight to upstreams at once; more wait. Default: [`MAX_IN_FLIGHT_PER_CONNECTION`](super::defaults::MAX_IN_FLIGHT_PER_CONNECTION).
    pub max_in_flight_per_connection: Option<Spanned<i64>>,
    /// Memory all buffered (replayable) request bodies of one connection may hold; beyond it
    /// bodies are streamed. Default: [`BODY_BUFFER_PER_CONNECTION`](super::defaults::BODY_BUFFER_PER_CONNECTION).
    pub body_buffer_per_connection: Option<Spanned<Scalar>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// "text" or "json". Default: "text".
    pub format: Option<Text>,
    /// One line per request. Default: true.
    pub access: Option<bool>,
}

/// `[cache]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Memory the store may hold; "0" turns the cache off. Default: [`CACHE_MAX_SIZE`](super::defaults::CACHE_MAX_SIZE).
    pub max_size: Option<Spanned<Scalar>>,
    /// Larger responses are streamed, never stored. Default: [`CACHE_MAX_OBJECT`](super::defaults::CACHE_MAX_OBJECT).
    pub max_object: Option<Spanned<Scalar>>,
    /// How long past freshness a stored response may serve when every tier fails. Default: [`CACHE_STALE_IF_ERROR`](super::defaults::CACHE_STALE_IF_ERROR).
    pub stale_if_error: Option<Text>,
    /// Longest wait of a coalesced request for the one in flight. Default: [`CACHE_LOCK_TIMEOUT`](super::defaults::CACHE_LOCK_TIMEOUT).
    pub lock_timeout: Option<Text>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// `[[tls.certificates]]`: the first is the default for clients without a known SNI.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
}

/// One `[[tls.certificates]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// PEM certificate chain file.
    pub cert: Text,
    /// PEM private key file.
    pub key: Text,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Default: [`CONNECT_TIMEOUT`](super::defaults::CONNECT_TIMEOUT).
    pub connect_timeout: Option<Text>,
    /// Until response headers. Default: [`RESPONSE_TIMEOUT`](super::defaults::RESPONSE_TIMEOUT).
    pub response_timeout: Option<Text>,
    /// A response header the origin always sets; a CDN's 5xx without it is the CDN's own.
    /// Default: none.
    pub origin_marker: Option<Text>,
    /// `[defaults.health]`.
    #[serde(default)]
    pub health: Health,
    /// `[defaults.passive]`.
    #[serde(default)]
    pub passive: Passive,
}

/// Active health-check settings (in `[defaults.health]` or `[upstreams.X.health]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Default: [`HEALTH_PATH`](super::defaults::HEALTH_PATH).
    pub path: Option<Text>,
    /// Default: [`HEALTH_INTERVAL`](super::defaults::HEALTH_INTERVAL).
    pub interval: Option<Text>,
    /// Default: [`HEALTH_TIMEOUT`](super::defaults::HEALTH_TIMEOUT).
    pub timeout: Option<Text>,
    /// Consecutive passes to become healthy. Default: [`HEALTH_RISE`](super::defaults::HEALTH_RISE).
    pub rise: Option<Spanned<i64>>,
    /// Consecutive failures to become unhealthy. Default: [`HEALTH_FALL`](super::defaults::HEALTH_FALL).
    pub fall: Option<Spanned<i64>>,
    /// Default: [`HEALTH_EXPECT_STATUS`](super::defaults::HEALTH_EXPECT_STATUS).
    pub expect_status: Option<Text>,
    /// Host header for probes (upstreams only). Default: the upstream's host, else its address.
    pub host: Option<Text>,
}

/// Passive failure detection settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passive {
    /// Live failures in a row that eject. Default: [`CONSECUTIVE_FAILURES`](super::defaults::CONSECUTIVE_FAILURES).
    pub consecutive_failures: Option<Spanned<i64>>,
    /// First ejection; doubles on repeats up to 5m. Default: [`EJECTION`](super::defaults::EJECTION).
    pub ejection: Option<Text>,
    /// Share of attempts within `window` that ejects, in (0, 1]. Default: [`FAILURE_RATE`](super::defaults::FAILURE_RATE).
    pub failure_rate: Option<Spanned<f64>>,
    /// Attempts within `window` before `failure_rate` applies; 0 turns it off. Default: [`MIN_REQUESTS`](super::defaults::MIN_REQUESTS).
    pub min_requests: Option<Spanned<i64>>,
    /// How far back `failure_rate` counts, whole seconds up to 60. Default: [`WINDOW`](super::defaults::WINDOW).
    pub window: Option<Text>,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// `scheme://host[:port]`. Required.
    pub address: Text,
    /// Host header to send. Default: the client's Host.
    pub host: Option<Text>,
    /// TLS server name. Default: host, else the address's host name.
    pub sni: Option<Text>,
    /// Extra trust roots (PEM). Default: public roots only.
    pub ca_file: Option<Text>,
    /// "cdn" (a CDN in front of the origin) or "origin". Default: "origin".
    pub role: Option<Text>,
    /// Overrides `defaults.origin_marker`.
    pub origin_marker: Option<Text>,
    /// Overrides `defaults.connect_timeout`.
    pub connect_timeout: Option<Text>,
    /// Overrides `defaults.response_timeout`.
    pub response_timeout: Option<Text>,
    /// Requests in flight to it at most (0 = no limit). Default: [`MAX_IN_FLIGHT`](super::defaults::MAX_IN_FLIGHT).
    pub max_in_flight: Option<Spanned<i64>>,
    /// Longest wait for an in-flight slot. Default: [`QUEUE_TIMEOUT`](super::defaults::QUEUE_TIMEOUT).
    pub queue_timeout: Option<Text>,
    /// Overrides keys of `[defaults.health]`.
    #[serde(default)]
    pub health: Health,
    /// Overrides keys of `[defaults.passive]`.
    #[serde(default)]
    pub passive: Passive,
}

/// `[[routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name. Required.
    pub name: Text,
    /// Host patterns: exact, "*.suffix" or "*". Required.
    pub hosts: Spanned<Vec<Text>>,
    /// Plain string prefix. Default: [`PATH_PREFIX`](super::defaults::PATH_PREFIX).
    pub path_prefix: Option<Text>,
    /// Ordered tiers; an array is a balanced group. Required.
    pub tiers: Spanned<Vec<TierEntry>>,
    /// A recovered higher tier must stay healthy this long first. Default: [`FAILBACK_DELAY`](super::defaults::FAILBACK_DELAY).
    pub failback_delay: Option<Text>,
    /// When fresh stored responses are served: "direct", "always" or "off". Default: "direct".
    pub cache: Option<Text>,
    /// Share of replay-safe GET/HEAD requests sent first to the next usable tier after the
    /// active one, in [0, 1). Default: [`STANDBY_SHARE`](super::defaults::STANDBY_SHARE).
    pub standby_share: Option<Spanned<f64>>,
    /// `[routes.retry]`.
    #[serde(default)]
    pub retry: Retry,
}

/// `[routes.retry]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Total tries across tiers, the first included. Default: [`RETRY_ATTEMPTS`](super::defaults::RETRY_ATTEMPTS).
    pub attempts: Option<Spanned<i64>>,
    /// Statuses that count as failures: codes or "lo-hi" ranges. Default: [`RETRY_ON_STATUS`](super::defaults::RETRY_ON_STATUS).
    pub on_status: Option<Vec<Spanned<Scalar>>>,
    /// Bodies up to this size are kept for replay. Default: [`BUFFER_BODY`](super::defaults::BUFFER_BODY).
    pub buffer_body: Option<Spanned<Scalar>>,
    /// "auto", "off" or a duration: when a replay-safe request is also sent to the next
    /// upstream. Default: "auto".
    pub hedge_after: Option<Text>,
    /// Share of the route's requests that retries after sending, and hedges, may add.
    /// Default: [`RETRY_BUDGET`](super::defaults::RETRY_BUDGET).
    pub budget: Option<Spanned<f64>>,
    /// Retries and hedges allowed per second beyond `budget`. Default:
    /// [`RETRY_BUDGET_MIN_PER_SEC`](super::defaults::RETRY_BUDGET_MIN_PER_SEC).
    pub budget_min_per_sec: Option<Spanned<i64>>,
}

/// A value that may be written as an integer or a string (sizes, status codes and ranges).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// Written as a TOML integer.
    Int(i64),
    /// Written as a TOML string.
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `tiers`: an upstream name, or an array of names balanced together.
#[derive(Debug)]
pub enum TierEntry {
    /// `"cloudflare"`.
    One(Text),
    /// `["origin-a", "origin-b"]`.
    Group(Vec<Text>),
}

impl<'de> Deserialize<'de> for TierEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Through Spanned, so that a single name keeps its position; the names of a group
        // carry their own spans.
        let v = Spanned::<RawTier>::deserialize(d)?;
        let span = v.span();
        Ok(match v.into_inner() {
            RawTier::One(s) => TierEntry::One(Spanned::new(span, s)),
            RawTier::Group(g) => TierEntry::Group(g),
        })
    }
}

/// The tier value itself, without its span.
enum RawTier {
    One(String),
    Group(Vec<Text>),
}

impl<'de> Deserialize<'de> for RawTier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTier;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an upstream name or an array of upstream names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTier, E> {
                Ok(RawTier::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTier, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<Text>()? {
                    names.push(name);
                }
                Ok(RawTier::Group(names))
            }
        }
        d.deserialize_any(V)
    }
}
