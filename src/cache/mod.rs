//! The origin shield's cache (DESIGN §7.3): the RFC 9111 rules as pure functions (`rules`),
//! and the size-bounded store with coalescing and purges (`store`). The request path's use of
//! them is `proxy::shield`.

pub mod rules;
pub mod store;

pub use store::{Entry, Filling, Join, Store};
