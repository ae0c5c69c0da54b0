//! The store shared by every route: entries (status, headers, body chunks, freshness) in a
//! size-bounded map on `quick_cache` (its eviction decides what goes when `max_size` is
//! reached), the responses in flight that concurrent misses wait for (coalescing), and purges.
//!
//! A response is stored while it streams to its client ([`Filling`], fed by the client's
//! body): chunks are copied into compact buffers (an upstream's chunk may pin a much larger
//! read buffer, which would break the size bound), and storing stops — the entry is dropped —
//! once the body passes `max_object`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};
use tokio::sync::watch;

pub use super::filling::Filling;
use super::rules::{self, Freshness};
use crate::config::CacheSpec;

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// Its status.
    pub status: StatusCode,
    /// Its headers (hop-by-hop ones already removed; `Age` is set when served).
    pub headers: HeaderMap,
    /// Its body.
    pub chunks: Vec<Bytes>,
    /// The body's length in bytes.
    pub len: u64,
    /// When it was received.
    pub stored_at: Instant,
    /// Its freshness, stale limit and `Vary` names, as received.
    pub freshness: Freshness,
    /// The values its `Vary` names had in the request that fetched it.
    pub vary_values: Vec<Option<HeaderValue>>,
    /// What it counts for against `max_size`.
    pub(super) weight: u64,
}

/// Bytes an entry costs beyond its body and headers (the map's slot, the `Arc`, the key).
pub(super) const ENTRY_OVERHEAD: u64 = 256;
/// Largest buffer body bytes are copied into.
pub(super) const CHUNK: usize = 64 << 10;
/// First buffer for a body of unknown length.
pub(super) const FIRST_CHUNK: usize = 4 << 10;

impl Entry {
    /// Whether it is fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.freshness.fresh_for
    }

    /// Whether more than half of its freshness is left at `now` (a new answer for its key
    /// need not replace it).
    pub fn fresh_for_a_while(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at) < self.freshness.fresh_for / 2
    }

    /// Whether it may serve at `now` because every tier failed (fresh, or within its stale
    /// limit).
    pub fn may_serve_stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored_at)
            < self.freshness.fresh_for + self.freshness.stale_for
    }

    /// Its `Age` at `now`, in seconds.
    pub fn age(&self, now: Instant) -> u64 {
        (self.freshness.age + now.saturating_duration_since(self.stored_at)).as_secs()
    }

    /// Whether it answers a request with `headers` (`authorized`: it carries Authorization).
    pub fn matches(&self, headers: &HeaderMap, authorized: bool) -> bool {
        (!authorized || self.freshness.shared_with_authorized)
            && rules::vary_values(&self.freshness.vary, headers) == self.vary_values
    }
}

/// Weighs entries by what they hold.
#[derive(Debug, Clone, Copy)]
struct ByWeight;

impl Weighter<Box<str>, Arc<Entry>> for ByWeight {
    fn weight(&self, key: &Box<str>, e: &Arc<Entry>) -> u64 {
        e.weight + key.len() as u64
    }
}

/// How a request in flight for a key ended, as its waiters see it.
#[derive(Debug, Clone)]
pub enum Flight {
    /// Still in flight.
    Pending,
    /// Stored: the waiters are served this.
    Stored(Arc<Entry>),
    /// Failed, and a stale copy was served instead: the waiters are served it too.
    Stale(Arc<Entry>),
    /// Failed, or not storable: the waiters go upstream themselves.
    Failed,
}

/// How long a key whose answer could not be stored is passed straight upstream (Varnish's
/// hit-for-miss): no coalescing and no copy of the request's headers for it meanwhile.
pub const PASS_FOR: Duration = Duration::from_secs(60);
/// Keys remembered as not storable, at most.
const PASSES: usize = 16 << 10;

/// The store.
pub struct Store {
    entries: Cache<Box<str>, Arc<Entry>, ByWeight>,
    /// Keys whose last answer was not storable, until when.
    passes: Cache<Box<str>, Instant>,
    flights: Mutex<HashMap<Box<str>, watch::Receiver<Flight>>>,
    max_object: AtomicU64,
    max_size: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.entries.len())
            .field("bytes", &self.entries.weight())
            .finish_non_exhaustive()
    }
}

/// The store key of a request: its host (lower-case, no port) then its path and query.
pub fn key(host: &str, path_and_query: &str) -> Box<str> {
    let host = crate::config::strip_port(host);
    let mut k = String::with_capacity(host.len() + path_and_query.len());
    k.push_str(host);
    k.make_ascii_lowercase();
    k.push_str(path_and_query);
    k.into_boxed_str()
}

/// What a miss does: lead the request upstream, or wait for the one leading.
pub enum Join {
    /// No request in flight for the key: this one goes upstream and lands the result.
    Leader(Leader),
    /// One is in flight: wait for it.
    Waiter(watch::Receiver<Flight>),
}

/// The request in flight for a key; its waiters are told `Failed` if it is dropped unlanded.
pub struct Leader {
    store: Arc<Store>,
    key: Box<str>,
    tx: watch::Sender<Flight>,
}

impl Leader {
    /// Every tier failed and `stale` was served instead: the waiters get it too (rather than
    /// each asking the failing upstreams again).
    pub fn served_stale(self, stale: Arc<Entry>) {
        self.land(Flight::Stale(stale));
    }

    /// Ends the flight with `how` and lets the next miss lead.
    pub(super) fn land(&self, how: Flight) {
        {
            let mut flights = self.store.flights.lock().unwrap_or_else(|p| p.into_inner());
            if flights
                .get(&self.key)
                .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
            {
                flights.remove(&self.key);
            }
        }
        self.tx.send_replace(how);
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if matches!(*self.tx.borrow(), Flight::Pending) {
            self.land(Flight::Failed);
        }
    }
}

/// Waits at most `timeout` for the flight `rx` to land: the entry it stored (`false`) or the
/// stale copy it served (`true`); None: it failed or took too long (go upstream yourself).
pub async fn wait(
    mut rx: watch::Receiver<Flight>,
    timeout: Duration,
) -> Option<(Arc<Entry>, bool)> {
    let landed = tokio::time::timeout(timeout, rx.wait_for(|f| !matches!(f, Flight::Pending)));
    match landed.await {
        Ok(Ok(f)) => match &*f {
            Flight::Stored(e) => Some((Arc::clone(e), false)),
            Flight::Stale(e) => Some((Arc::clone(e), true)),
            Flight::Pending | Flight::Failed => None,
        },
        Ok(Err(_)) | Err(_) => None,
    }
}

impl Store {
    /// A store bounded by `spec.max_size` bytes (which must not be 0: no store then).
    pub fn new(spec: &CacheSpec) -> Arc<Store> {
        // Shards small enough to spread contention, large enough for a max_object entry.
        let per_shard = spec.max_object.saturating_mul(4).max(1);
        let shards = (spec.max_size / per_shard).clamp(1, 16).next_power_of_two() as usize;
        let estimated = usize::try_from(spec.max_size / (16 << 10)).unwrap_or(1 << 16);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(estimated.clamp(64, 1 << 16))
            .weight_capacity(spec.max_size)
            .shards(shards)
            .build();
        let entries = match options {
            Ok(o) => Cache::with_options(o, ByWeight, Default::default(), Default::default()),
            // The options above are always valid; a minimal store if the crate disagrees.
            Err(_) => Cache::with_weighter(64, spec.max_size, ByWeight),
        };
        Arc::new(Store {
            entries,
            passes: Cache::new(PASSES),
            flights: Mutex::default(),
            max_object: AtomicU64::new(spec.max_object),
            max_size: spec.max_size,
        })
    }

    /// Applies a reloaded `[cache]` (max_object; max_size takes a restart).
    pub fn retune(&self, spec: &CacheSpec) {
        self.max_object.store(spec.max_object, Ordering::Relaxed);
    }

    /// The configured bound, in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The stored response for `key`, if any (fresh or not).
    pub fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// Whether `key`'s last answer was not storable, less than [`PASS_FOR`] ago.
    pub fn passing(&self, key: &str, now: Instant) -> bool {
        self.passes.get(key).is_some_and(|until| now < until)
    }

    /// Remembers that `key`'s answer was not storable (for [`PASS_FOR`]).
    pub fn pass(&self, key: Box<str>, now: Instant) {
        self.passes.insert(key, now + PASS_FOR);
    }

    /// Forgets `key`'s pass: its next miss may be stored again.
    pub fn forget_pass(&self, key: &str) {
        self.passes.remove(key);
    }

    /// Stores `entry` under `key` (a filling that ended whole).
    pub(super) fn insert(&self, key: Box<str>, entry: Arc<Entry>) {
        self.entries.insert(key, entry);
    }

    /// Bytes held (bodies, headers, keys and per-entry overhead).
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Leads the request for `key` upstream, or waits for the one that does.
    pub fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = flights.get(key) {
            return Join::Waiter(rx.clone());
        }
        let (tx, rx) = watch::channel(Flight::Pending);
        let key: Box<str> = key.into();
        flights.insert(key.clone(), rx);
        Join::Leader(Leader {
            store: Arc::clone(self),
            key,
            tx,
        })
    }

    /// Starts storing a response for `key` while it streams, or None when its announced
    /// length is over `max_object`. `leader` is told the result.
    pub fn filling(
        self: &Arc<Self>,
        key: Box<str>,
        response: (StatusCode, &HeaderMap),
        freshness: Freshness,
        vary_values: Vec<Option<HeaderValue>>,
        leader: Option<Leader>,
    ) -> Option<Filling> {
        let max_object = self.max_object.load(Ordering::Relaxed);
        let (status, headers) = response;
        let announced = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > max_object) {
            return None;
        }
        self.passes.remove(&*key);
        let mut stored = headers.clone();
        stored.remove(http::header::AGE);
        Some(Filling::new(
            Arc::clone(self),
            key,
            (status, stored),
            freshness,
            vary_values,
            leader,
            (announced, max_object),
        ))
    }

    /// Removes `path` of `host` (a `path` ending in `*`: every path with that prefix, query
    /// strings included); returns how many entries went.
    pub fn purge(&self, host: &str, path: &str) -> usize {
        match path.strip_suffix('*') {
            Some(prefix) => {
                let prefix = key(host, prefix);
                let before = self.entries.len();
                self.entries.retain(|k, _| !k.starts_with(&*prefix));
                before.saturating_sub(self.entries.len())
            }
            None => {
                let k = key(host, path);
                self.passes.remove(&*k);
                usize::from(self.entries.remove(&*k).is_some())
            }
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
