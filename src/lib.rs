//! bascule: an edge reverse proxy that keeps a site online when its CDN fails, by sending each
//! request through the primary CDN, else a secondary CDN, else straight to the origin.
//!
//! Architecture (arrows point one way; nothing depends on `app`):
//!
//! ```text
//! main ──► app ──► server ──► proxy ──► select (pure plan) ──► routing ──► client
//!           │                   │                                 │
//!           └──► config ◄───────┴──── headers (pure)              └──► health (atomics)
//! ```
//!
//! - [`config`]: the file format, value parsers and validation into a typed `Config`, with
//!   `FILE:LINE:COL` errors.
//! - [`routing`]: the immutable `RoutingTable` snapshot (held in an `ArcSwap`, loaded once per
//!   request), the host/path matcher, and long-lived `Upstream` objects handed out by a registry
//!   so that live state survives reloads.
//! - [`health`]: live upstream state as reason flags and counters (atomics).
//! - [`select`]: the failover policy, a pure function from a route and health to an attempt plan.
//! - [`proxy`]: the request path — route, rewrite headers, walk the plan, replay safety.
//! - [`client`]: pooled upstream connections: DNS cache, connect deadline, TLS.
//! - [`server`]: listeners, connection limits and timeouts, graceful shutdown.
//! - [`app`]: wiring and process lifecycle (signals, reload, shutdown).

pub mod admin;
pub mod app;
pub mod checker;
pub mod client;
pub mod config;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod select;
pub mod server;
pub mod steering;
