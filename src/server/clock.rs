//! The connection clock that enforces `header_timeout`, `idle_timeout` and `send_timeout`
//! (nginx's client_header_timeout / keepalive_timeout / send_timeout): a new connection must
//! deliver a complete request head within `header_timeout`; after a response, the next request
//! may wait up to `idle_timeout` for its first byte, and from that byte it has `header_timeout`
//! to complete its head. A connection with a request in flight is never cut by those two timers.
//! A client that accepts no response bytes for `send_timeout` is cut, whatever is in flight:
//! either its socket takes no bytes (a stalled HTTP/1.1 or TCP reader), or a response body has
//! data ready that the connection does not come back for (an HTTP/2 stream with a zero window)
//! while no other response on it makes progress. Also the socket and body wrappers that feed it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::config::Limits;
use crate::proxy::body::ProxyBody;

/// Why the clock closes a connection.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Expiry {
    /// Idle between requests too long: close politely.
    Idle,
    /// A request head took too long: close at once.
    Head,
    /// The client accepted no response bytes for `send_timeout`: close at once.
    Send,
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
pub(super) struct Clock {
    in_flight: AtomicU32,
    /// When the connection became idle (accepted, or its last response finished).
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived; 0: none yet.
    head_since: AtomicU64,
    /// No request has completed yet.
    first: AtomicBool,
    /// The connection is closing politely: only `send_timeout` still applies.
    closing: AtomicBool,
    /// When the connection task's timer fires (ms, as `now_ms`).
    armed: AtomicU64,
    /// `limits.header_timeout` in ms.
    header_ms: u64,
    /// `limits.idle_timeout` in ms.
    idle_ms: u64,
    /// `limits.send_timeout` in ms.
    send_ms: u64,
    /// When a write to the socket last found it full and has not gone through since; 0: none.
    write_blocked: AtomicU64,
    /// Response bodies that handed over data the connection has not come back for.
    bodies_waiting: AtomicU32,
    /// When the oldest such wait began, or the last progress while some wait; 0: none.
    waiting_since: AtomicU64,
    /// Woken when a new deadline is earlier than `armed`.
    pub(super) rearm: Notify,
}

impl Clock {
    pub(super) fn new(limits: &Limits) -> Clock {
        Clock {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now_ms()),
            head_since: AtomicU64::new(0),
            first: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            armed: AtomicU64::new(u64::MAX),
            header_ms: millis(limits.header_timeout),
            idle_ms: millis(limits.idle_timeout),
            send_ms: millis(limits.send_timeout),
            write_blocked: AtomicU64::new(0),
            bodies_waiting: AtomicU32::new(0),
            waiting_since: AtomicU64::new(0),
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

    /// A write found the socket full (`blocked`) or went through.
    fn on_write(&self, blocked: bool) {
        let since = self.write_blocked.load(Ordering::Relaxed);
        match (blocked, since) {
            (true, 0) => {
                let now = now_ms();
                self.write_blocked.store(now, Ordering::Relaxed);
                self.rearm_if_before(now.saturating_add(self.send_ms));
            }
            (false, s) if s != 0 => self.write_blocked.store(0, Ordering::Relaxed),
            _ => {}
        }
    }

    /// A response body handed over a frame: it now waits for the connection to take it.
    fn body_waits(&self) {
        if self.bodies_waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            let now = now_ms();
            self.waiting_since.store(now, Ordering::Relaxed);
            self.rearm_if_before(now.saturating_add(self.send_ms));
        }
    }

    /// The connection came back to a waiting body: the client accepted data.
    fn body_progressed(&self) {
        if self.bodies_waiting.fetch_sub(1, Ordering::Relaxed) > 1 {
            // Others still wait: their clock starts over from this progress.
            self.waiting_since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// When the client will have accepted nothing for `send_timeout`, if it is being waited on.
    fn send_deadline(&self) -> Option<u64> {
        let write = self.write_blocked.load(Ordering::Relaxed);
        let body = match self.bodies_waiting.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.waiting_since.load(Ordering::Relaxed),
        };
        [write, body]
            .into_iter()
            .filter(|t| *t != 0)
            .min()
            .map(|t| t.saturating_add(self.send_ms))
    }

    fn deadline(&self) -> Option<(u64, Expiry)> {
        let send = self.send_deadline().map(|at| (at, Expiry::Send));
        match (self.head_deadline(), send) {
            (Some(h), Some(s)) => Some(if s.0 < h.0 { s } else { h }),
            (h, s) => h.or(s),
        }
    }

    /// The connection is closing politely (idle, or shutdown): from now on only a client that
    /// stops accepting bytes is cut.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    fn head_deadline(&self) -> Option<(u64, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.closing.load(Ordering::Relaxed) {
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
    pub(super) fn arm(&self) -> tokio::time::Instant {
        let now = now_ms();
        let at = match self.deadline() {
            Some((at, _)) => at.max(now + 5),
            None => now.saturating_add(self.idle_ms.min(self.header_ms)),
        };
        self.armed.store(at, Ordering::Relaxed);
        tokio::time::Instant::from_std(base() + Duration::from_millis(at))
    }

    pub(super) fn expired(&self) -> Option<Expiry> {
        let (at, why) = self.deadline()?;
        (now_ms() >= at).then_some(why)
    }
}

/// Marks a request in flight on its connection until the response body is done.
pub(super) struct ActiveRequest(Arc<Clock>);

impl ActiveRequest {
    pub(super) fn begin(clock: Arc<Clock>) -> ActiveRequest {
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

/// A response body that keeps its request counted as in flight until it ends, and tells the
/// clock when it waits for the client to take its data.
pub(super) struct Tracked {
    inner: ProxyBody,
    active: ActiveRequest,
    /// A frame was handed over and the connection has not come back for the next.
    waiting: bool,
}

impl Tracked {
    pub(super) fn new(inner: ProxyBody, active: ActiveRequest) -> Tracked {
        Tracked {
            inner,
            active,
            waiting: false,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.waiting {
            self.active.0.body_progressed();
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.waiting {
            this.waiting = false;
            this.active.0.body_progressed();
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &r {
            if frame.is_data() && !this.inner.is_end_stream() {
                this.waiting = true;
                this.active.0.body_waits();
            }
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client socket that tells the clock when request bytes arrive.
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) clock: Arc<Clock>,
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
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.clock.on_write(r.is_pending());
        r
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
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.clock.on_write(r.is_pending());
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
