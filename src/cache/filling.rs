//! A response being stored while it streams to its client (`ProxyBody` feeds it): chunks are
//! copied into compact buffers (an upstream's chunk may pin a much larger read buffer, which
//! would break the size bound), and storing stops once the body passes `max_object`.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::rules::Freshness;
use super::store::{Entry, Flight, Leader, Store, CHUNK, ENTRY_OVERHEAD, FIRST_CHUNK};

/// A response being stored while it streams to its client.
pub struct Filling {
    store: Arc<Store>,
    key: Box<str>,
    status: StatusCode,
    headers: HeaderMap,
    freshness: Freshness,
    vary_values: Vec<Option<HeaderValue>>,
    leader: Option<Leader>,
    chunks: Vec<Bytes>,
    buf: BytesMut,
    len: u64,
    announced: Option<u64>,
    max_object: u64,
    /// When the response head arrived (freshness counts from there).
    received: Instant,
}

impl std::fmt::Debug for Filling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filling")
            .field("key", &self.key)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Filling {
    /// A filling of `key` with the response head (status, headers without `Age`), told to
    /// `leader` when done; `limits`: the announced length, if any, and `max_object`.
    pub(super) fn new(
        store: Arc<Store>,
        key: Box<str>,
        head: (StatusCode, HeaderMap),
        freshness: Freshness,
        vary_values: Vec<Option<HeaderValue>>,
        leader: Option<Leader>,
        limits: (Option<u64>, u64),
    ) -> Filling {
        Filling {
            store,
            key,
            status: head.0,
            headers: head.1,
            freshness,
            vary_values,
            leader,
            chunks: Vec::new(),
            buf: BytesMut::new(),
            len: 0,
            announced: limits.0,
            max_object: limits.1,
            received: Instant::now(),
        }
    }

    /// Adds a piece of the body; false once it is past `max_object` (then drop this: nothing
    /// is stored and the waiters go upstream).
    pub fn push(&mut self, data: &[u8]) -> bool {
        self.len += data.len() as u64;
        if self.len > self.max_object {
            return false;
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.buf.capacity() == self.buf.len() {
                if !self.buf.is_empty() {
                    self.chunks.push(std::mem::take(&mut self.buf).freeze());
                }
                let left = self
                    .announced
                    .map_or(FIRST_CHUNK << self.chunks.len().min(4), |n| {
                        usize::try_from(n.saturating_sub(self.len - rest.len() as u64))
                            .unwrap_or(CHUNK)
                    });
                self.buf = BytesMut::with_capacity(left.clamp(rest.len().min(CHUNK), CHUNK));
            }
            let n = rest.len().min(self.buf.capacity() - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        true
    }

    /// The body ended whole: stores the entry and hands it to the waiters.
    pub fn finish(mut self) {
        if !self.buf.is_empty() {
            // A last buffer mostly empty is copied to its size, so the weight is what it holds.
            let last = if self.buf.capacity() > self.buf.len() + self.buf.len() / 4 {
                Bytes::copy_from_slice(&self.buf)
            } else {
                std::mem::take(&mut self.buf).freeze()
            };
            self.chunks.push(last);
        }
        let header_bytes: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let weight = self.chunks.iter().map(|c| c.len() as u64).sum::<u64>()
            + header_bytes as u64
            + ENTRY_OVERHEAD;
        let entry = Arc::new(Entry {
            status: self.status,
            headers: std::mem::take(&mut self.headers),
            chunks: std::mem::take(&mut self.chunks),
            len: self.len,
            stored_at: self.received,
            freshness: self.freshness.clone(),
            vary_values: std::mem::take(&mut self.vary_values),
            weight,
        });
        self.store
            .insert(std::mem::take(&mut self.key), Arc::clone(&entry));
        if let Some(leader) = self.leader.take() {
            leader.land(Flight::Stored(entry));
        }
    }
}
