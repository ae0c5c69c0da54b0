//! Client-facing listeners: accept loop bounded by `max_connections`, HTTP/1.1 and HTTP/2
//! (prior knowledge) through hyper-util's auto builder, the connection clock that enforces
//! `header_timeout` and `idle_timeout`, and graceful shutdown.
//!
//! Timeouts per connection (nginx's client_header_timeout / keepalive_timeout): a new
//! connection must deliver a complete request head within `header_timeout`; after a response,
//! the next request may wait up to `idle_timeout` for its first byte, and from that byte it has
//! `header_timeout` to complete its head. A connection with a request in flight is never cut by
//! these timers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, warn};

use crate::config::Limits;
use crate::proxy::body::ProxyBody;
use crate::proxy::headers::Peer;
use crate::proxy::Proxy;

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
    builder: Arc<auto::Builder<TokioExecutor>>,
    slots: Arc<Semaphore>,
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
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(Some(64))
            .max_local_error_reset_streams(Some(256));
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        Server {
            proxy,
            limits,
            builder: Arc::new(builder),
            slots,
        }
    }

    /// Accepts on `listener` until shutdown; `https` marks the requests as having come over TLS.
    pub async fn accept_loop(&self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stopping(&mut shutdown) => break,
            };
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off briefly rather than spin.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                _ = stopping(&mut shutdown) => break,
            };
            let conn = ConnTask {
                proxy: self.proxy.clone(),
                limits: self.limits.clone(),
                builder: self.builder.clone(),
                shutdown: shutdown.clone(),
            };
            tokio::spawn(async move {
                conn.run(stream, peer).await;
                drop(permit);
            });
        }
        // Dropping the listener closes the socket: new connections are refused from now on.
        drop(listener);
    }

    /// Waits until every connection has closed, at most `grace`; returns whether all did.
    pub async fn drain(&self, grace: Duration) -> bool {
        let all = u32::try_from(self.limits.max_connections).unwrap_or(u32::MAX);
        tokio::time::timeout(grace, self.slots.acquire_many(all))
            .await
            .is_ok()
    }
}

/// Resolves once shutdown has begun (or the sender is gone).
pub async fn stopping(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The sender is gone: the process is going down anyway.
    }
}

struct ConnTask {
    proxy: Proxy,
    limits: Limits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: watch::Receiver<bool>,
}

impl ConnTask {
    async fn run(mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream.set_nodelay(true) {
            debug!(error = %e, "set_nodelay failed");
        }
        let clock = Arc::new(Clock::new(&self.limits));
        let io = TokioIo::new(Watched {
            inner: stream,
            clock: clock.clone(),
        });
        let proxy = self.proxy.clone();
        let svc_clock = clock.clone();
        let client = Arc::new(Peer::new(peer, false));
        let service = service_fn(move |req: Request<Incoming>| {
            let proxy = proxy.clone();
            let client = client.clone();
            let active = ActiveRequest::begin(svc_clock.clone());
            async move {
                let resp = proxy.handle(req, &client).await;
                Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked {
                    inner: b,
                    _active: active,
                }))
            }
        });
        let conn = self.builder.serve_connection(io, service);
        tokio::pin!(conn);
        // One timer per connection, re-armed only when it fires or when a head begins before
        // the armed time; requests themselves never touch it.
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
                _ = clock.rearm.notified(), if !closing => {
                    sleep.as_mut().reset(clock.arm());
                }
                _ = sleep.as_mut(), if !closing => {
                    match clock.expired() {
                        Some(Expiry::Head) => {
                            debug!(%peer, "request head not received in time; closing");
                            return;
                        }
                        Some(Expiry::Idle) => {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                        None => sleep.as_mut().reset(clock.arm()),
                    }
                }
                _ = stopping(&mut self.shutdown), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// Why the clock closes a connection.
#[derive(Debug, PartialEq, Eq)]
enum Expiry {
    /// Idle between requests too long: close politely.
    Idle,
    /// A request head took too long: close at once.
    Head,
}

/// Milliseconds since the first call (never 0, which the clock uses for "none").
fn now_ms() -> u64 {
    u64::try_from(base().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Per-connection activity state, written by the socket wrapper and the service.
///
/// The connection task sleeps until `armed`. When a request ends or a head begins, the new
/// deadline is compared with `armed` and the task is woken only if it is earlier (with the
/// defaults it never is: a 60 s idle deadline after a request ends, a 10 s head deadline armed
/// while it was in flight); a timer that fires early is simply re-armed.
struct Clock {
    in_flight: AtomicU32,
    /// When the connection became idle (accepted, or its last response finished).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived; 0: none yet.
    head_since: AtomicU64,
    /// No request has completed yet.
    first: AtomicBool,
    /// When the connection task's timer fires (ms, as `now_ms`).
    armed: AtomicU64,
    /// `limits.header_timeout` in ms.
    header_ms: u64,
    /// `limits.idle_timeout` in ms.
    idle_ms: u64,
    /// Woken when a new deadline is earlier than `armed`.
    rearm: Notify,
}

impl Clock {
    fn new(limits: &Limits) -> Clock {
        Clock {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            head_since: AtomicU64::new(0),
            first: AtomicBool::new(true),
            armed: AtomicU64::new(u64::MAX),
            header_ms: millis(limits.header_timeout),
            idle_ms: millis(limits.idle_timeout),
            rearm: Notify::new(),
        }
    }

    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            let now = now_ms();
            self.head_since.store(now, Ordering::Relaxed);
            self.rearm_if_before(now.saturating_add(self.header_ms));
        }
    }

    fn rearm_if_before(&self, deadline: u64) {
        if deadline < self.armed.load(Ordering::Relaxed) {
            self.rearm.notify_one();
        }
    }

    fn deadline(&self) -> Option<(u64, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Relaxed);
        if head != 0 {
            return Some((head.saturating_add(self.header_ms), Expiry::Head));
        }
        let idle = self.idle_since.load(Ordering::Relaxed);
        if self.first.load(Ordering::Relaxed) {
            Some((idle.saturating_add(self.header_ms), Expiry::Head))
        } else {
            Some((idle.saturating_add(self.idle_ms), Expiry::Idle))
        }
    }

    /// Records and returns when the connection task should next check: the current deadline,
    /// or, with a request in flight, the shortest time in which a new deadline could fall due.
    fn arm(&self) -> tokio::time::Instant {
        let now = now_ms();
        let at = match self.deadline() {
            Some((at, _)) => at.max(now + 5),
            None => now.saturating_add(self.idle_ms.min(self.header_ms)),
        };
        self.armed.store(at, Ordering::Relaxed);
        tokio::time::Instant::from_std(base() + Duration::from_millis(at))
    }

    fn expired(&self) -> Option<Expiry> {
        let (at, why) = self.deadline()?;
        (now_ms() >= at).then_some(why)
    }
}

/// Marks a request in flight on its connection until the response body is done.
struct ActiveRequest(Arc<Clock>);

impl ActiveRequest {
    fn begin(clock: Arc<Clock>) -> ActiveRequest {
        clock.in_flight.fetch_add(1, Ordering::Relaxed);
        clock.head_since.store(0, Ordering::Relaxed);
        ActiveRequest(clock)
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let c = &self.0;
        let now = now_ms();
        c.idle_since.store(now, Ordering::Relaxed);
        c.first.store(false, Ordering::Relaxed);
        if c.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            c.rearm_if_before(now.saturating_add(c.idle_ms));
        }
    }
}

/// A response body that keeps its request counted as in flight until it ends.
struct Tracked {
    inner: ProxyBody,
    _active: ActiveRequest,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client socket that tells the clock when request bytes arrive.
struct Watched<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.on_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
