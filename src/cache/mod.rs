//! The origin shield's cache (DESIGN §7.3): the RFC 9111 rules as pure functions (`rules`),
//! and the size-bounded store with coalescing and purges (`store`). The request path's use of
//! them is `proxy::shield`.

mod filling;
pub mod rules;
pub mod store;

pub use store::{Entry, Filling, Join, Store};

/// How the store took part in answering a request: the `x-bascule-cache` header and the
/// `result` label of `bascule_cache_requests_total` (DESIGN §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// A fresh stored copy served.
    Hit,
    /// A stored copy served because every tier failed.
    Stale,
    /// Served from the one request in flight.
    Coalesced,
    /// Fetched upstream; stored if cacheable.
    Miss,
    /// Not served from the store: not cacheable, or the route's `cache` mode does not serve
    /// stored copies right now.
    Bypass,
}

impl CacheResult {
    /// Every result, in label-index order.
    pub const ALL: [CacheResult; 5] = [
        CacheResult::Hit,
        CacheResult::Stale,
        CacheResult::Coalesced,
        CacheResult::Miss,
        CacheResult::Bypass,
    ];

    /// The label and header value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Stale => "stale",
            CacheResult::Coalesced => "coalesced",
            CacheResult::Miss => "miss",
            CacheResult::Bypass => "bypass",
        }
    }
}
