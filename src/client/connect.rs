//! Dialling one upstream: its configured address whatever the request says (resolved through
//! the DNS cache), TCP with TCP_NODELAY, then TLS with the upstream's SNI, trust roots and ALPN
//! (h2, http/1.1), all within `connect_timeout` — which a reload may retune in place.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{ConnectError, Dns};
use crate::config::{Scheme, UpstreamSpec};

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

impl Connector {
    /// A new connection to the upstream: DNS, TCP (TCP_NODELAY) and TLS, all within
    /// `connect_timeout`.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        let deadline = Duration::from_millis(self.0.connect_timeout_ms.load(Ordering::Relaxed));
        tokio::time::timeout(deadline, self.0.connect())
            .await
            .map_err(|_| ConnectError::Timeout)?
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

impl Conn {
    /// Whether TLS's ALPN chose HTTP/2.
    pub fn is_h2(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Tls(s) => s.inner().get_ref().1.alpn_protocol() == Some(b"h2"),
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
