//! The client's request body as the forwarder holds it: read before the first attempt and,
//! when it is small, buffered whole so that it can be replayed — each piece within
//! `body_timeout`, and all buffers of one connection within `body_buffer_per_connection` (past
//! it the body is streamed instead of refused).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::client::body::{BodyError, Returned, Stream, UpstreamBody};

/// The client connection's limits on request bodies.
#[derive(Debug)]
pub struct BodyLimits<'a> {
    /// Longest gap between two pieces of a body (`limits.body_timeout`).
    pub timeout: Duration,
    /// Bytes of bodies the connection holds buffered right now.
    pub buffered: &'a AtomicUsize,
    /// Most bytes the connection may hold buffered (`limits.body_buffer_per_connection`).
    pub cap: usize,
}

/// Bytes counted in a connection's buffered total until dropped.
pub(super) struct Reserved<'a> {
    counter: &'a AtomicUsize,
    bytes: usize,
}

impl Reserved<'_> {
    /// Counts `n` more bytes; returns whether the connection is still within `cap`.
    fn add(&mut self, n: usize, cap: usize) -> bool {
        self.bytes += n;
        self.counter.fetch_add(n, Ordering::Relaxed) + n <= cap
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

/// The client's request body as the forwarder holds it.
pub(super) enum ClientBody {
    /// None at all.
    Empty,
    /// Wholly buffered: replayable.
    Full(Bytes),
    /// Streamed; `None` once an attempt consumed it.
    Stream(Option<Stream>),
}

impl ClientBody {
    /// The body for the next attempt, with the receivers that get a streamed body back (if
    /// the attempt never read it) and word once it was sent; None once a stream is gone.
    pub(super) fn for_attempt(&mut self) -> Option<(UpstreamBody, Option<Returned>)> {
        Some(match self {
            ClientBody::Empty => (UpstreamBody::Empty, None),
            ClientBody::Full(b) => (UpstreamBody::Full(Some(b.clone())), None),
            ClientBody::Stream(slot) => {
                let (b, r) = UpstreamBody::returnable(slot.take()?);
                (b, Some(r))
            }
        })
    }
}

/// Reads up to `limit` bytes of `body`, so that small bodies can be replayed; each piece must
/// come within `limits.timeout`, and the connection's buffered total stays within `limits.cap`
/// (past it, the body is streamed instead).
pub(super) async fn prepare<'a>(
    mut body: Incoming,
    limit: usize,
    limits: &BodyLimits<'a>,
) -> Result<(ClientBody, Reserved<'a>), BodyError> {
    let mut reserved = Reserved {
        counter: limits.buffered,
        bytes: 0,
    };
    if body.is_end_stream() {
        return Ok((ClientBody::Empty, reserved));
    }
    let stream = |prefix, rest| ClientBody::Stream(Some(Stream::new(prefix, rest, limits.timeout)));
    if body.size_hint().lower() > limit as u64 {
        return Ok((stream(VecDeque::new(), body), reserved));
    }
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout(limits.timeout, body.frame()).await {
            Err(_elapsed) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(frame)) => frame?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        let within_cap = reserved.add(data.len(), limits.cap);
        chunks.push_back(data);
        if total > limit || !within_cap {
            return Ok((stream(chunks, body), reserved));
        }
    }
    let body = match chunks.len() {
        0 => ClientBody::Empty,
        1 => ClientBody::Full(chunks.pop_front().unwrap_or_default()),
        _ => {
            let mut all = BytesMut::with_capacity(total);
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            ClientBody::Full(all.freeze())
        }
    };
    Ok((body, reserved))
}
