//! Every default of the config file, written once: validation uses these, and the file
//! format's doc comments and `config/bascule.example.toml` show them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `[admin] listen`.
pub const ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9901);

/// `[limits] max_header_bytes`: 64 KiB.
pub const MAX_HEADER_BYTES: u64 = 64 << 10;
/// The least `max_header_bytes` may be: 8 KiB.
pub const MIN_HEADER_BYTES: u64 = 8 << 10;
/// `[limits] header_timeout`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[limits] idle_timeout`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[limits] shutdown_grace`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// `[limits] max_connections`.
pub const MAX_CONNECTIONS: u32 = 10_000;
/// `[limits] body_timeout`.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// `[limits] send_timeout`.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// `[limits] max_concurrent_streams`.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// `[limits] max_in_flight_per_connection`.
pub const MAX_IN_FLIGHT_PER_CONNECTION: u32 = 32;
/// `[limits] body_buffer_per_connection`: 1 MiB.
pub const BODY_BUFFER_PER_CONNECTION: u64 = 1 << 20;

/// `[defaults] connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// `[defaults] response_timeout`.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// `[upstreams.X] max_in_flight`: no limit.
pub const MAX_IN_FLIGHT: u32 = 0;
/// `[upstreams.X] queue_timeout`.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(1);

/// `[cache] max_size`: 256 MiB.
pub const CACHE_MAX_SIZE: u64 = 256 << 20;
/// `[cache] max_object`: 8 MiB.
pub const CACHE_MAX_OBJECT: u64 = 8 << 20;
/// `[cache] stale_if_error`: one hour.
pub const CACHE_STALE_IF_ERROR: Duration = Duration::from_secs(3600);
/// `[cache] lock_timeout`.
pub const CACHE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// `[defaults.health] path`.
pub const HEALTH_PATH: &str = "/healthz";
/// `[defaults.health] interval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// `[defaults.health] timeout`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(800);
/// `[defaults.health] rise`.
pub const HEALTH_RISE: u32 = 2;
/// `[defaults.health] fall`.
pub const HEALTH_FALL: u32 = 2;
/// `[defaults.health] expect_status`.
pub const HEALTH_EXPECT_STATUS: &str = "200-399";

/// `[defaults.passive] consecutive_failures`.
pub const CONSECUTIVE_FAILURES: u32 = 3;
/// `[defaults.passive] ejection`.
pub const EJECTION: Duration = Duration::from_secs(10);
/// `[defaults.passive] failure_rate`.
pub const FAILURE_RATE: f64 = 0.5;
/// `[defaults.passive] min_requests`.
pub const MIN_REQUESTS: u32 = 20;
/// `[defaults.passive] window`.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The longest `[defaults.passive] window`: the counting ring holds this many seconds.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// `[[routes]] path_prefix`.
pub const PATH_PREFIX: &str = "/";
/// `[[routes]] failback_delay`.
pub const FAILBACK_DELAY: Duration = Duration::from_secs(10);
/// `[[routes]] standby_share`.
pub const STANDBY_SHARE: f64 = 0.0;
/// `[routes.retry] attempts`.
pub const RETRY_ATTEMPTS: u32 = 3;
/// `[routes.retry] on_status`: 502–504 and 520–530, as inclusive ranges.
pub const RETRY_ON_STATUS: [(u16, u16); 2] = [(502, 504), (520, 530)];
/// `[routes.retry] buffer_body`: 64 KiB.
pub const BUFFER_BODY: u64 = 64 << 10;
/// `[routes.retry] budget`: retries after sending, and hedges, add at most this share.
pub const RETRY_BUDGET: f64 = 0.2;
/// `[routes.retry] budget_min_per_sec`.
pub const RETRY_BUDGET_MIN_PER_SEC: u32 = 10;
/// `[routes.retry] hedge_after = "auto"`: the least delay it picks.
pub const HEDGE_AUTO_MIN: Duration = Duration::from_millis(50);
/// `[routes.retry] hedge_after = "auto"`: the greatest delay it picks (and the delay while an
/// upstream has too few recent samples).
pub const HEDGE_AUTO_MAX: Duration = Duration::from_secs(1);
