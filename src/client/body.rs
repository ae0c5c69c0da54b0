//! The request body of one upstream attempt: nothing, a buffered (replayable) body, or the
//! client's stream handed over once.
//!
//! A streamed request body that an attempt never started reading comes back to the forwarder
//! when that attempt's request is dropped (the connect failed), so the next attempt can send it.
//! A streamed body that delivers no bytes for `body_timeout` fails with [`BodyError::Timeout`]
//! (the client's fault, never the upstream's), and tells the forwarder when it has been sent
//! whole, so that `response_timeout` runs from the end of the request body.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// Why a client's request body could not be passed on: the client's doing, not the upstream's.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The client's stream broke (reset, malformed chunking, closed early).
    #[error("client request body: {0}")]
    Client(#[from] hyper::Error),
    /// The client sent no body bytes for `limits.body_timeout`.
    #[error("client request body: no bytes within body_timeout")]
    Timeout,
}

/// A client body not (wholly) buffered: chunks already read, then the rest of the stream.
#[derive(Debug)]
pub struct Stream {
    /// Chunks read while trying to buffer, sent first.
    pub prefix: VecDeque<Bytes>,
    /// The remainder of the client's body.
    pub rest: Incoming,
    /// Longest wait for the next piece of `rest`.
    pub timeout: Duration,
    /// Armed while `rest` has nothing to give.
    idle: Option<Pin<Box<Sleep>>>,
}

impl Stream {
    /// `rest` after the chunks `prefix` already read, cut after `timeout` without bytes.
    pub fn new(prefix: VecDeque<Bytes>, rest: Incoming, timeout: Duration) -> Stream {
        Stream {
            prefix,
            rest,
            timeout,
            idle: None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(chunk) = self.prefix.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match Pin::new(&mut self.rest).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(idle) = self.idle.as_mut() {
                    idle.as_mut().reset(Instant::now() + self.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Client(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = self.timeout;
                let idle = self
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Timeout))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

/// A request body for one attempt.
#[derive(Debug)]
pub enum UpstreamBody {
    /// No body.
    Empty,
    /// A whole body in memory; each attempt gets a cheap clone.
    Full(Option<Bytes>),
    /// The client's stream; given back through `back` if dropped before it was read.
    Stream {
        /// The stream, until polled or returned.
        stream: Option<Stream>,
        /// Whether any frame was requested (then it can no longer be given back).
        polled: bool,
        /// Where an unread stream goes back to.
        back: Option<oneshot::Sender<Stream>>,
        /// Told once the body has been sent whole (or failed).
        done: Option<oneshot::Sender<()>>,
    },
}

/// The forwarder's ends of a streamed attempt body: the stream back if it was never read, and
/// word that it was sent whole.
#[derive(Debug)]
pub struct Returned {
    /// The unread stream, if the attempt dropped it without reading.
    pub back: oneshot::Receiver<Stream>,
    /// Resolves once the body has been sent whole, failed, or was dropped.
    pub done: oneshot::Receiver<()>,
}

impl UpstreamBody {
    /// Wraps `stream` for one attempt; the receivers get it back if the attempt never read it,
    /// and word once it has been sent.
    pub fn returnable(stream: Stream) -> (UpstreamBody, Returned) {
        let (tx, back) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        (
            UpstreamBody::Stream {
                stream: Some(stream),
                polled: false,
                back: Some(tx),
                done: Some(done_tx),
            },
            Returned { back, done },
        )
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let UpstreamBody::Stream {
            stream,
            polled: false,
            back,
            ..
        } = self
        {
            if let (Some(s), Some(tx)) = (stream.take(), back.take()) {
                // The receiver may be gone (the forwarder gave up): then the body is dropped.
                let _unwanted = tx.send(s);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpstreamBody::Stream {
                stream,
                polled,
                done,
                ..
            } => {
                *polled = true;
                let Some(s) = stream.as_mut() else {
                    return Poll::Ready(None);
                };
                let r = s.poll_next(cx);
                if matches!(r, Poll::Ready(None | Some(Err(_)))) {
                    if let Some(done) = done.take() {
                        let _forwarder_may_be_gone = done.send(());
                    }
                }
                r
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Empty => true,
            UpstreamBody::Full(b) => b.is_none(),
            UpstreamBody::Stream { stream, .. } => stream
                .as_ref()
                .is_none_or(|s| s.prefix.is_empty() && s.rest.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpstreamBody::Stream { stream: None, .. } => SizeHint::with_exact(0),
            UpstreamBody::Stream {
                stream: Some(s), ..
            } => {
                let pre: u64 = s.prefix.iter().map(|b| b.len() as u64).sum();
                let rest = s.rest.size_hint();
                let mut h = SizeHint::new();
                h.set_lower(rest.lower() + pre);
                if let Some(u) = rest.upper() {
                    h.set_upper(u + pre);
                }
                h
            }
        }
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
pub(crate) mod tests;
