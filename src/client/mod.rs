//! Upstream connections: one [`Pool`] per upstream (our own, over `hyper::client::conn`),
//! whose connector always dials that upstream's configured address (resolved through a
//! TTL-respecting DNS cache), with a connect deadline, TCP_NODELAY, and TLS with the upstream's
//! SNI and trust roots. HTTP/2 is used when the upstream's ALPN picks it.
//!
//! Because the connector ignores the request URI's authority, the URI can carry the Host the
//! upstream should see (which HTTP/2 sends as `:authority`) while connections go to the address.
//! The connect deadline can be retuned in place by a reload (DESIGN §7.5).

pub mod body;
mod connect;
mod pool;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;

pub use connect::{BuildError, Conn, Connector};
pub use pool::{Body, Pool, H2_STREAMS};

use crate::config::UpstreamSpec;

/// Shared asynchronous DNS resolver with a cache that honours record TTLs.
#[derive(Clone)]
pub struct Dns(Option<Arc<TokioResolver>>);

impl Dns {
    /// The system resolver (`/etc/resolv.conf`, read directly: no NSS, so a static binary
    /// resolves too), answers cached for their TTL but at most 60 s, failures at most 2 s;
    /// without a resolv.conf, names cannot be resolved and only IP-literal upstreams work
    /// (logged).
    pub fn system() -> Dns {
        let built = TokioResolver::builder_tokio().and_then(|mut b| {
            let opts = b.options_mut();
            // CDN edges and container addresses move: use an answer at most a minute, and
            // forget a failed lookup (a stopped container's name) after two seconds.
            opts.positive_max_ttl = Some(Duration::from_secs(60));
            opts.negative_max_ttl = Some(Duration::from_secs(2));
            b.build()
        });
        match built {
            Ok(r) => Dns(Some(Arc::new(r))),
            Err(e) => {
                tracing::warn!(error = %e, "no DNS configuration; upstream host names will not resolve");
                Dns(None)
            }
        }
    }

    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, ConnectError> {
        let resolver = self
            .0
            .as_ref()
            .ok_or_else(|| ConnectError::Dns("no DNS resolver configured".into()))?;
        let lookup = resolver
            .lookup_ip(host)
            .await
            .map_err(|e| ConnectError::Dns(e.to_string()))?;
        let ips: Vec<IpAddr> = lookup.iter().collect();
        if ips.is_empty() {
            return Err(ConnectError::Dns(format!("{host}: no addresses")));
        }
        Ok(ips)
    }
}

/// Why a connection to an upstream could not be made; nothing was sent in every case.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Name resolution failed.
    #[error("dns: {0}")]
    Dns(String),
    /// TCP connect failed (refused, unreachable, reset).
    #[error("connect: {0}")]
    Io(io::Error),
    /// TCP connect plus TLS handshake took longer than `connect_timeout`.
    #[error("connect timed out")]
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    #[error("tls: {0}")]
    Tls(io::Error),
    /// bascule itself is out of file descriptors or memory: not the upstream's fault.
    #[error("local resource exhausted: {0}")]
    Local(io::Error),
}

impl ConnectError {
    /// A socket-level error, told apart as local exhaustion or a failure to reach the peer.
    fn io(e: io::Error) -> ConnectError {
        if crate::resources::is_exhaustion(&e) {
            ConnectError::Local(e)
        } else {
            ConnectError::Io(e)
        }
    }
}

/// The pooled client of one upstream.
pub type UpstreamClient = Pool;

/// How long an upstream connection may sit idle in its pool: it is not reused after that, and
/// the reaper ([`REAP_EVERY`]) closes it within that much longer.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the app asks every pool to close its expired idle connections.
pub const REAP_EVERY: Duration = Duration::from_secs(30);

/// Why a request got no response head from an upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made: nothing was sent.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange failed after the request went to a connection: it may have been processed.
    #[error("upstream exchange failed")]
    Exchange(#[source] hyper::Error),
    /// A new connection closed before the request could be written: nothing was sent.
    #[error("upstream closed the connection before the request was sent")]
    Closed,
}

impl Error {
    /// Whether it is bascule's own resource exhaustion (descriptors, memory), not the
    /// upstream's failure.
    pub fn is_local(&self) -> bool {
        matches!(self, Error::Connect(ConnectError::Local(_)))
    }
}

/// Builds the connection pool for `spec`, and its connector (for retuning).
pub fn build(spec: &UpstreamSpec, dns: Dns) -> Result<(UpstreamClient, Connector), BuildError> {
    let connector = Connector::new(spec, dns)?;
    Ok((Pool::new(connector.clone()), connector))
}

/// An error and its causes, `a: b: c` (hyper-util's top-level messages say little alone; the
/// cause of a certificate failure is in the chain).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Many errors print their source already; say each cause once.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
