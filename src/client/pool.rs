//! One upstream's connection pool, over `hyper::client::conn`:
//!
//! - **HTTP/1.1**: idle connections wait in a lock-free bounded queue (`crossbeam` `ArrayQueue`;
//!   checkout and return are one CAS each: no mutex, no hash map). A connection is driven by
//!   the request that uses it — the exchange future until the response head, then the response
//!   body — rather than by a task of its own, so there is no hop to a connection task and no
//!   wake-up between them. When its response body has been read to the end it goes back to the
//!   queue; dropped early (the client went away, a hedge lost), it is closed.
//! - **HTTP/2** (when ALPN picks it): connections are shared, each by at most
//!   [`H2_STREAMS`] requests at once, and driven by a task (HTTP/2 needs one for its own frames).
//!
//! A pooled connection is checked before reuse: one that closed while idle, or went unused past
//! [`POOL_IDLE_TIMEOUT`](super::POOL_IDLE_TIMEOUT), is dropped; a request a reused HTTP/1.1
//! connection refused unsent (it closed just then) is sent once more on a new connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http::{Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::UpstreamBody;
use super::{Conn, Connector, Error, POOL_IDLE_TIMEOUT};

/// Idle HTTP/1.1 connections kept per upstream at most; more are closed when they finish.
const MAX_IDLE: usize = 512;

/// Requests at once on one shared HTTP/2 connection before another is opened.
pub const H2_STREAMS: usize = 100;

/// A handle to one upstream's pool (cheap to clone).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

struct Inner {
    connector: Connector,
    idle: ArrayQueue<Idle>,
    /// Shared HTTP/2 connections, replaced whole (RCU) when one is added or found closed.
    h2: ArcSwap<Vec<Arc<H2>>>,
}

/// An HTTP/1.1 connection: the handle requests go in by, and the connection itself, polled by
/// whoever holds it.
struct H1 {
    send: http1::SendRequest<UpstreamBody>,
    conn: http1::Connection<Conn, UpstreamBody>,
    /// The connection future has completed (closed, or failed): it must not be polled again.
    done: bool,
}

impl H1 {
    /// Drives the connection; true once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.done && Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.done = true;
        }
        self.done
    }

    /// Drives the connection once without a waker to register (it is about to be parked or
    /// checked); true if it is still usable.
    fn settle(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.drive(&mut cx) && !self.send.is_closed()
    }
}

/// A parked HTTP/1.1 connection (boxed: a hyper connection is several hundred bytes, moved
/// between the queue, the exchange and the response body).
struct Idle {
    h1: Box<H1>,
    since: Instant,
}

/// A shared HTTP/2 connection.
struct H2 {
    send: http2::SendRequest<UpstreamBody>,
    /// Requests on it now.
    streams: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.0.idle.len())
            .field("h2", &self.0.h2.load().len())
            .finish()
    }
}

impl Pool {
    /// An empty pool dialling through `connector`.
    pub fn new(connector: Connector) -> Pool {
        Pool(Arc::new(Inner {
            connector,
            idle: ArrayQueue::new(MAX_IDLE),
            h2: ArcSwap::from_pointee(Vec::new()),
        }))
    }

    /// Sends `req` on a pooled or new connection; resolves with the response head (its body
    /// streams afterwards).
    pub async fn request(&self, mut req: Request<UpstreamBody>) -> Result<Response<Body>, Error> {
        if let Some(h2) = self.shared_h2() {
            return self.send_h2(h2, req).await;
        }
        // A parked connection may have closed just now: its refusal returns the request unsent.
        while let Some(h1) = self.checkout() {
            match self.send_h1(h1, req).await {
                Ok(resp) => return Ok(resp),
                Err(Refused::Unsent(back)) => req = back,
                Err(Refused::Failed(e)) => return Err(e),
            }
        }
        let conn = self.0.connector.connect().await?;
        if conn.is_h2() {
            let h2 = self.add_h2(conn).await?;
            return self.send_h2(h2, req).await;
        }
        let (send, conn) = http1::Builder::new()
            .handshake(conn)
            .await
            .map_err(Error::Exchange)?;
        let h1 = Box::new(H1 {
            send,
            conn,
            done: false,
        });
        match self.send_h1(h1, req).await {
            Ok(resp) => Ok(resp),
            Err(Refused::Unsent(_)) => Err(Error::Closed),
            Err(Refused::Failed(e)) => Err(e),
        }
    }

    /// A parked HTTP/1.1 connection that is still usable, if any.
    fn checkout(&self) -> Option<Box<H1>> {
        while let Some(mut idle) = self.0.idle.pop() {
            if idle.since.elapsed() < POOL_IDLE_TIMEOUT && idle.h1.settle() {
                return Some(idle.h1);
            }
        }
        None
    }

    /// Parks `h1` for reuse unless it has ended (it is then dropped: closed). Its liveness is
    /// checked when it is taken again (checkout polls it once), not here.
    fn park(&self, h1: Box<H1>) {
        if !h1.done && !h1.send.is_closed() {
            let _full_so_closed = self.0.idle.push(Idle {
                h1,
                since: Instant::now(),
            });
        }
    }

    /// Sends on `h1`, driving it until the response head arrives.
    async fn send_h1(
        &self,
        mut h1: Box<H1>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, Refused> {
        // HTTP/1.1 to an origin server takes the origin form (`/path?query`); the authority
        // travels in Host. (HTTP/2 keeps the absolute form: it becomes :scheme and :authority.)
        let mut req = req;
        if req.uri().authority().is_some() {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            *req.uri_mut() = http::Uri::from(path);
        }
        let mut sent = std::pin::pin!(h1.send.try_send_request(req));
        let head = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = sent.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            // The connection ending first settles the exchange on the next poll of `sent`.
            if h1.drive(cx) {
                return sent.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await;
        match head {
            Ok(resp) => Ok(resp.map(|inner| Body {
                inner,
                conn: Some(Held::H1(h1, self.clone())),
            })),
            Err(mut e) => match e.take_message() {
                Some(req) => Err(Refused::Unsent(req)),
                None => Err(Refused::Failed(Error::Exchange(e.into_error()))),
            },
        }
    }

    /// A shared HTTP/2 connection with room for one more request, if any.
    fn shared_h2(&self) -> Option<Arc<H2>> {
        let conns = self.0.h2.load();
        if conns.is_empty() {
            return None;
        }
        if conns.iter().any(|c| c.send.is_closed()) {
            self.0.h2.rcu(|cs| {
                cs.iter()
                    .filter(|c| !c.send.is_closed())
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
        let found = conns
            .iter()
            .find(|c| !c.send.is_closed() && c.streams.load(Ordering::Relaxed) < H2_STREAMS)
            .cloned();
        found
    }

    /// Completes an HTTP/2 handshake on `conn`, runs its connection task, and shares it.
    async fn add_h2(&self, conn: Conn) -> Result<Arc<H2>, Error> {
        let (send, task) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(conn)
            .await
            .map_err(Error::Exchange)?;
        tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        let h2 = Arc::new(H2 {
            send,
            streams: AtomicUsize::new(0),
        });
        self.0.h2.rcu(|cs| {
            let mut next = Vec::clone(cs);
            next.push(Arc::clone(&h2));
            next
        });
        Ok(h2)
    }

    async fn send_h2(
        &self,
        h2: Arc<H2>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Body>, Error> {
        h2.streams.fetch_add(1, Ordering::Relaxed);
        let stream = Stream(h2);
        let mut send = stream.0.send.clone();
        let resp = send.send_request(req).await.map_err(Error::Exchange)?;
        Ok(resp.map(|inner| Body {
            inner,
            conn: Some(Held::H2 { _stream: stream }),
        }))
    }

    /// Closes parked connections that went unused past the idle timeout or closed while
    /// parked, keeping the others in their order; the app calls it periodically.
    pub fn reap(&self) {
        for _ in 0..self.0.idle.len() {
            let Some(mut idle) = self.0.idle.pop() else {
                break;
            };
            if idle.since.elapsed() < POOL_IDLE_TIMEOUT && idle.h1.settle() {
                let _full_so_closed = self.0.idle.push(idle);
            }
        }
        if self.0.h2.load().iter().any(|c| c.send.is_closed()) {
            self.0.h2.rcu(|cs| {
                cs.iter()
                    .filter(|c| !c.send.is_closed())
                    .cloned()
                    .collect::<Vec<_>>()
            });
        }
    }

    /// HTTP/1.1 connections parked now.
    pub fn idle(&self) -> usize {
        self.0.idle.len()
    }
}

/// Why a request was not answered on an HTTP/1.1 connection (short-lived: its size is moot).
#[allow(clippy::large_enum_variant)]
enum Refused {
    /// The connection closed before the request was written: it comes back, unsent.
    Unsent(Request<UpstreamBody>),
    /// It failed after (perhaps part of) the request was written.
    Failed(Error),
}

/// Counts one request on a shared HTTP/2 connection until dropped.
struct Stream(Arc<H2>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a response body holds of its connection.
enum Held {
    /// The HTTP/1.1 connection, driven by the body and parked when the body ends.
    H1(Box<H1>, Pool),
    /// A stream of a shared HTTP/2 connection (counted until the body is dropped).
    H2 { _stream: Stream },
}

/// An upstream response body. Reading it drives its HTTP/1.1 connection; read to the end, the
/// connection is parked for reuse, dropped early it is closed.
pub struct Body {
    inner: Incoming,
    conn: Option<Held>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl Body {
    /// A body that holds no pooled connection (unit tests build one over a loopback).
    #[cfg(test)]
    pub(crate) fn detached(inner: Incoming) -> Body {
        Body { inner, conn: None }
    }

    /// The body is complete: park an HTTP/1.1 connection.
    fn finish(&mut self) {
        if let Some(Held::H1(h1, pool)) = self.conn.take() {
            pool.park(h1);
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        // A body that ended but was never read to its end (a HEAD answer, a 204) still leaves a
        // reusable connection; one cut short does not (dropping it closes the connection).
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some(Held::H1(h1, _)) = &mut this.conn {
            // Reads the next bytes into the body (and sends what remains of the request).
            h1.drive(cx);
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.finish();
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
