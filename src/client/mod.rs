//! Upstream connections: one pooled hyper client per upstream, whose connector always dials
//! that upstream's configured address (resolved through a TTL-respecting DNS cache), with a
//! connect deadline, TCP_NODELAY, and TLS with the upstream's SNI and trust roots. HTTP/2 is
//! used when the upstream's ALPN picks it.
//!
//! Because the connector ignores the request URI's authority, the URI can carry the Host the
//! upstream should see (which HTTP/2 sends as `:authority`) while connections go to the address.
//! The connect deadline can be retuned in place by a reload (DESIGN §7.5).

pub mod body;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{Scheme, UpstreamSpec};
use body::UpstreamBody;

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

/// Dials one upstream's address, whatever the request URI says.
#[derive(Clone)]
pub struct Connector(Arc<Target>);

struct Target {
    host: String,
    ip: Option<IpAddr>,
    port: u16,
    /// `connect_timeout` in ms, retunable by a reload.
    connect_timeout_ms: AtomicU64,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    dns: Dns,
}

/// Why an upstream's client could not be built (the config checks make these rare).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The TLS server name is not a valid DNS name.
    #[error("TLS server name {name:?}: {what}")]
    ServerName {
        /// The name.
        name: String,
        /// Why it is invalid.
        what: String,
    },
    /// A `ca_file` certificate is not a usable trust root.
    #[error("ca_file {path}: {what}")]
    TrustRoot {
        /// The file.
        path: String,
        /// What rustls said.
        what: String,
    },
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Connector {
    /// A connector for `spec`.
    pub fn new(spec: &UpstreamSpec, dns: Dns) -> Result<Connector, BuildError> {
        let tls = match spec.address.scheme {
            Scheme::Http => None,
            Scheme::Https => Some(tls_client(spec)?),
        };
        Ok(Connector(Arc::new(Target {
            host: spec.address.host.clone(),
            ip: spec.address.host.parse().ok(),
            port: spec.address.port,
            connect_timeout_ms: AtomicU64::new(millis(spec.connect_timeout)),
            tls,
            dns,
        })))
    }

    /// Applies a reloaded `connect_timeout` to connections made from now on.
    pub fn retune(&self, connect_timeout: Duration) {
        self.0
            .connect_timeout_ms
            .store(millis(connect_timeout), Ordering::Relaxed);
    }
}

/// rustls client settings for an HTTPS upstream: public roots plus `ca_file`, ALPN h2 and
/// http/1.1, SNI per the config rules (none for an IP address).
fn tls_client(spec: &UpstreamSpec) -> Result<(TlsConnector, ServerName<'static>), BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &spec.ca {
        for c in &ca.certs {
            roots.add(c.clone()).map_err(|e| BuildError::TrustRoot {
                path: ca.path.display().to_string(),
                what: e.to_string(),
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let invalid = |name: &str, e: rustls::pki_types::InvalidDnsNameError| BuildError::ServerName {
        name: name.to_owned(),
        what: e.to_string(),
    };
    let name = match &spec.sni {
        Some(sni) => ServerName::try_from(sni.clone()).map_err(|e| invalid(sni, e))?,
        None => match spec.address.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(spec.address.host.clone())
                .map_err(|e| invalid(&spec.address.host, e))?,
        },
    };
    Ok((TlsConnector::from(Arc::new(config)), name))
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let target = self.0.clone();
        Box::pin(async move {
            let deadline = Duration::from_millis(target.connect_timeout_ms.load(Ordering::Relaxed));
            tokio::time::timeout(deadline, target.connect())
                .await
                .map_err(|_| ConnectError::Timeout)?
        })
    }
}

impl Target {
    async fn connect(&self) -> Result<Conn, ConnectError> {
        let ips = match self.ip {
            Some(ip) => vec![ip],
            // A resolver that cannot open its socket reports a DNS failure: when the process
            // is out of descriptors, it is bascule's own.
            None => self.dns.resolve(&self.host).await.map_err(|e| {
                if crate::resources::fds_exhausted() {
                    ConnectError::Local(io::Error::from_raw_os_error(libc::EMFILE))
                } else {
                    e
                }
            })?,
        };
        let mut last = None;
        let mut tcp = None;
        for ip in ips {
            match TcpStream::connect(SocketAddr::new(ip, self.port)).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match (tcp, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(ConnectError::io(e)),
            (None, None) => return Err(ConnectError::Dns("no addresses".into())),
        };
        tcp.set_nodelay(true).map_err(ConnectError::io)?;
        match &self.tls {
            None => Ok(Conn::Plain(TokioIo::new(tcp))),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    if crate::resources::is_exhaustion(&e) {
                        ConnectError::Local(e)
                    } else {
                        ConnectError::Tls(e)
                    }
                })?;
                Ok(Conn::Tls(TokioIo::new(Box::new(tls))))
            }
        }
    }
}

/// An upstream connection, plain or TLS.
pub enum Conn {
    /// Plain TCP.
    Plain(TokioIo<TcpStream>),
    /// TLS over TCP.
    Tls(TokioIo<Box<TlsStream<TcpStream>>>),
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(_) => Connected::new(),
            Conn::Tls(s) => {
                let h2 = s.inner().get_ref().1.alpn_protocol() == Some(b"h2");
                if h2 {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The pooled client of one upstream.
pub type UpstreamClient = Client<Connector, UpstreamBody>;

/// How long an upstream connection may sit idle in its pool; the pool closes it between one
/// and two of these after its last use (its reaper runs this often).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds the pooled keep-alive client for `spec`, and its connector (for retuning).
pub fn build(spec: &UpstreamSpec, dns: Dns) -> Result<(UpstreamClient, Connector), BuildError> {
    let connector = Connector::new(spec, dns)?;
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(1024)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .set_host(false)
        .build(connector.clone());
    Ok((client, connector))
}

/// Whether `e` (or one of its causes) is bascule's own resource exhaustion.
pub fn is_local(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(ConnectError::Local(_)) = s.downcast_ref::<ConnectError>() {
            return true;
        }
        source = s.source();
    }
    false
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
