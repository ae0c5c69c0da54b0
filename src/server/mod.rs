//! Client-facing listeners: accept loops bounded by `max_connections`; plain listeners serve
//! HTTP/1.1 and HTTP/2 with prior knowledge (h2c) through hyper-util's auto builder, TLS
//! listeners complete the handshake (bounded by `header_timeout`) and serve the protocol ALPN
//! chose; the connection clock (`clock`) enforces `header_timeout` and `idle_timeout`; graceful
//! shutdown.

mod clock;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::proxy::{Proxy, Reset};
use crate::routing::RoutingTable;
use clock::{ActiveRequest, Clock, Expiry, Tracked, Watched};

/// Binds a listening socket with a deep backlog and SO_REUSEADDR.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// Serves client connections until `shutdown` turns true, then lets open connections finish
/// their requests within `limits.shutdown_grace`.
pub struct Server {
    proxy: Proxy,
    limits: Limits,
    builders: Arc<Builders>,
    slots: Arc<Semaphore>,
}

/// The HTTP servers a connection may need: auto-detecting (plain, or TLS without ALPN), and
/// one per protocol that ALPN can choose.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Server {
    /// A server for `proxy` with the connection limits `limits` (fixed until restart).
    pub fn new(proxy: Proxy, limits: Limits) -> Server {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_headers(max_headers(limits.max_header_bytes))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            // Response data queued per stream beyond the client's window (hyper's default is
            // 400 KiB): a client that opens many streams and never reads holds at most this
            // much per stream until `send_timeout` cuts it.
            .max_send_buf_size(64 << 10)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(Some(64))
            .max_local_error_reset_streams(Some(256));
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        let builders = Builders {
            h1: builder.clone().http1_only(),
            h2: builder.clone().http2_only(),
            auto: builder,
        };
        Server {
            proxy,
            limits,
            builders: Arc::new(builders),
            slots,
        }
    }

    /// Accepts on `listener` until shutdown; with `tls`, each connection's TLS handshake
    /// comes first and its requests are marked as HTTPS.
    pub async fn accept_loop(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::default();
        loop {
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors or memory: the pending connection stays queued;
                        // back off exponentially rather than spin, and say so once per burst.
                        if crate::resources::is_exhaustion(&e) {
                            self.proxy.metrics().local_error("accept");
                        }
                        if let Some(pause) = backoff.failed(&e) {
                            tokio::time::sleep(pause).await;
                        }
                        continue;
                    }
                },
                _ = shutdown.cancelled() => break,
            };
            backoff.succeeded();
            let conn = ConnTask {
                proxy: self.proxy.clone(),
                limits: self.limits.clone(),
                builders: self.builders.clone(),
                shutdown: shutdown.clone(),
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                conn.start(stream, peer, tls).await;
                drop(permit);
            });
        }
        // Dropping the listener closes the socket: new connections are refused from now on.
        drop(listener);
    }

    /// Client connections open now (those holding a `max_connections` slot).
    pub fn open_connections(&self) -> usize {
        self.limits
            .max_connections
            .saturating_sub(self.slots.available_permits())
    }

    /// Waits until every connection has closed, at most `grace`; returns whether all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Accept failures in a burst: local exhaustion backs off exponentially (10 ms doubling to
/// 1 s); the first failure of a burst is logged, the rest counted and summed up when accepting
/// works again.
#[derive(Debug, Default)]
struct Backoff {
    failures: u64,
    pause: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    /// Records a failed accept; returns how long to pause before the next one.
    fn failed(&mut self, e: &io::Error) -> Option<Duration> {
        self.failures += 1;
        let local = crate::resources::is_exhaustion(e);
        if self.failures == 1 {
            if local {
                warn!(error = %e, "accept failed: bascule is out of file descriptors or memory; backing off (further failures are counted, not logged)");
            } else {
                debug!(error = %e, "accept failed");
            }
        }
        if !local {
            // A connection reset before it was accepted, say: nothing to wait for.
            return None;
        }
        self.pause = (self.pause * 2).clamp(Self::FIRST, Self::MAX);
        Some(self.pause)
    }

    /// Records a successful accept, ending a burst of failures.
    fn succeeded(&mut self) {
        if self.failures > 1 {
            warn!(
                failures = self.failures,
                "accepting again after a burst of accept failures"
            );
        }
        self.failures = 0;
        self.pause = Duration::ZERO;
    }
}

/// HTTP/1 header-count limit for `max_header_bytes`: one header per 32 bytes of head, and at
/// least hyper's default of 100, so the byte limit is what a real client meets first (431
/// either way). hyper then sizes its parse table per request on the heap, not the stack.
fn max_headers(max_header_bytes: usize) -> usize {
    (max_header_bytes / 32).max(100)
}

/// Picks the HTTPS listeners' certificates from the serving routing table, so a reload
/// rotates them for new handshakes.
#[derive(Debug)]
pub struct TableCerts(pub Arc<ArcSwap<RoutingTable>>);

impl ResolvesServerCert for TableCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().certs.resolve(hello.server_name())
    }
}

/// What a connection speaks.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// Plain, or TLS without ALPN: HTTP/1.1, or HTTP/2 if the client starts with its preface.
    Detect,
    /// ALPN chose http/1.1.
    H1,
    /// ALPN chose h2.
    H2,
}

struct ConnTask {
    proxy: Proxy,
    limits: Limits,
    builders: Arc<Builders>,
    shutdown: CancellationToken,
}

impl ConnTask {
    /// Completes the TLS handshake when there is one, then serves the connection.
    async fn start(self, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay failed");
        }
        let Some(acceptor) = tls else {
            return self.serve(stream, peer, false, Protocol::Detect).await;
        };
        let handshake = tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream));
        let tls = match handshake.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "TLS handshake not completed within header_timeout");
                return;
            }
        };
        let protocol = match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::H2,
            Some(b"http/1.1") => Protocol::H1,
            _ => Protocol::Detect,
        };
        self.serve(tls, peer, true, protocol).await;
    }

    async fn serve<S>(self, stream: S, peer: SocketAddr, https: bool, protocol: Protocol)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let clock = Arc::new(Clock::new(&self.limits));
        let io = TokioIo::new(Watched {
            inner: stream,
            clock: clock.clone(),
        });
        let proxy = self.proxy.clone();
        let svc_clock = clock.clone();
        let client = Arc::new(proxy.connection(peer, https));
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            let client = client.clone();
            let active = ActiveRequest::begin(svc_clock.clone());
            async move {
                let resp = proxy.handle(req, &client).await?;
                Ok::<_, Reset>(resp.map(|b| Tracked::new(b, active)))
            }
        });
        let builder = match protocol {
            Protocol::Detect => &self.builders.auto,
            Protocol::H1 => &self.builders.h1,
            Protocol::H2 => &self.builders.h2,
        };
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        // One timer per connection, re-armed only when it fires or when a new deadline falls
        // before the armed time; requests themselves never touch it.
        let sleep = tokio::time::sleep_until(clock.arm());
        tokio::pin!(sleep);
        let mut closing = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(error = %e, %peer, "connection ended with an error");
                    }
                    return;
                }
                _ = clock.rearm.notified() => {
                    sleep.as_mut().reset(clock.arm());
                }
                _ = sleep.as_mut() => {
                    match clock.expired() {
                        Some(Expiry::Head) => {
                            debug!(%peer, "request head not received in time; closing");
                            return;
                        }
                        Some(Expiry::Idle) => {
                            conn.as_mut().graceful_shutdown();
                            clock.close();
                            closing = true;
                            sleep.as_mut().reset(clock.arm());
                        }
                        Some(Expiry::Send) => {
                            // Dropping the connection drops its responses' bodies, which frees
                            // the upstream connections serving them.
                            debug!(%peer, "client accepted no response bytes within send_timeout; closing");
                            return;
                        }
                        None => sleep.as_mut().reset(clock.arm()),
                    }
                }
                _ = self.shutdown.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    clock.close();
                    closing = true;
                }
            }
        }
    }
}
