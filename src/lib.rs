//! bascule: an edge reverse proxy that keeps a site online when its CDN fails, by sending each
//! request through the primary CDN, else a secondary CDN, else straight to the origin.
//!
//! Architecture (arrows point one way, from user to used; nothing depends on `app` or `main`):
//!
//! ```text
//! main ──► app, demo, admin::{client, command} (status, health, drain, pin), config (check), memory
//! app ──┬─► server ──► proxy ──┬─► select::{plan, is_standby} (pure) ─► config
//!       │                      ├─► routing ──┬─► client ──► config, resources
//!       │                      │             ├─► health ──► events, config
//!       │                      │             ├─► cache (the store outlives reloads)
//!       │                      │             └─► metrics, tls, events
//!       │                      ├─► cache (store, rules: pure) ─► config
//!       │                      └─► client::body, health, metrics
//!       ├─► reload ──► config (──► tls), routing::Registry, checker, events, resources
//!       ├─► steering ──► select::steer (pure), routing::RouteState, events, metrics
//!       ├─► checker ──► routing::LiveUpstream (its pooled client), health
//!       ├─► memory ──► client (the pool's idle timeout)
//!       ├─► resources (open-files limit), tls (server settings)
//!       └─► admin ──► routing, events, health, metrics, cache (purge), demo::{Mode, DemoControl}
//! demo (simulated upstreams: a leaf) ◄── admin, app, main, and the tests and benches
//! ```
//!
//! - [`config`]: the file format, value parsers, upstreams as configured (`config::upstream`,
//!   re-exported) and validation into a typed `Config`, with `FILE:LINE:COL` errors.
//! - [`routing`]: the immutable `RoutingTable` snapshot (held in an `ArcSwap`, loaded once per
//!   request), the host/path matcher, and the `Registry` of live objects (upstreams with their
//!   pools and health, route states with their active tier and pin) that outlive reloads.
//! - [`health`]: live upstream state as reason flags (atomics), the rise/fall counter, and
//!   passive ejection (a run of failures, or the failure rate over a lock-free ring of
//!   per-second buckets, `health::rate`).
//! - [`events`]: typed changes (upstream states, active tiers, reloads, operator actions), the
//!   lock-free channel they travel on, and the bounded log `/status` shows.
//! - [`select`]: the failover policy as pure functions: `steer` (a route's active tier, with
//!   failback delay, its damping after relapses, and pins) and `plan` (the upstreams to try
//!   for one request, a warm-standby attempt first for the share `is_standby` spreads).
//! - [`steering`]: the task that applies `steer` on every health change and failback timer.
//! - [`checker`]: active probes, one task per live upstream.
//! - [`proxy`]: the request path — head checks (Host, target length, Content-Length), path
//!   normalization, route, rewrite headers, the origin shield (`proxy::shield`: serve from
//!   the cache, coalesce misses, stale-if-error, store while streaming), walk the plan (at
//!   most two attempts in flight: a slow replay-safe attempt is hedged on the next tier, the
//!   first answer wins; one attempt: `proxy::attempt`, with admission: `routing::admission`,
//!   `max_in_flight`), replay safety, the route's retry budget (`routing::budget`) and each
//!   upstream's recent time to response head (`health::head_times`, for `hedge_after =
//!   "auto"`).
//! - [`cache`]: the origin shield's RFC 9111 rules as pure functions (`cache::rules`) and the
//!   size-bounded store shared by every route, with coalescing and purges (`cache::store`).
//! - [`client`]: pooled upstream connections: DNS cache, connect deadline, TLS.
//! - [`server`]: listeners, connection limits and timeouts, graceful shutdown.
//! - [`reload`]: reload triggers (file watch, poll, SIGHUP, admin) and the validate-then-swap.
//! - [`admin`], [`metrics`]: the admin API (`/status`, `/ready`, `/metrics`, `/reload`,
//!   overrides), its guard against browsers it did not serve (`admin::guard`), the bearer
//!   token, the token-free metrics-only listener, the client side the operator commands use
//!   (`admin::client`, `admin::command`); the rate history (`admin::history`, `/history`: the
//!   counters read once a second, ten minutes kept) and the dashboard page that draws it
//!   (`admin::dashboard`).
//! - [`memory`]: glibc malloc's settings, and trimming the heap after bursts of connections.
//! - [`resources`]: the open-files limit, and telling local resource exhaustion from an
//!   upstream's failure.
//! - [`demo`]: `bascule demo`'s simulated origin and CDNs, on one switchable simulated
//!   upstream (`demo::SimUpstream`, a plain `demo::Mode`) that the integration tests and the
//!   benches use as their fake upstream too; the admin API's `/demo` switches it by `Mode`.
//! - [`app`]: wiring and process lifecycle: bind everything first, then serve; at shutdown,
//!   readiness fails and the listeners close while the admin API answers to the end. Why a
//!   start failed (`app::RunError`, each listener named by its `app::Role`) is its own file.
//!
//! The binary (`main.rs`, its argument shapes in `cli.rs`) is a thin layer over [`app`],
//! [`admin`]'s operator commands and [`demo`].

pub mod admin;
pub mod app;
pub mod cache;
pub mod cdn;
pub mod checker;
pub mod client;
pub mod config;
pub mod demo;
pub mod events;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod resources;
pub mod routing;
pub mod select;
pub mod server;
pub mod steering;
pub mod tls;
