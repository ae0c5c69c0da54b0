//! The origin shield around [`forward`] (DESIGN §7.3): a GET or HEAD is answered from the
//! store when the route's `cache` mode serves fresh copies right now; otherwise concurrent
//! misses for one key go upstream once (the others wait at most `lock_timeout` for that
//! response, and go upstream themselves if it fails or is not storable); when every attempt
//! fails, a stored copy within its stale limit is served instead of the error, whatever the
//! mode; a storable answer from any tier is stored while it streams to the client.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::client_body::BodyLimits;
use super::error::Failure;
use super::forward::{forward, Report};
use crate::cache::rules::{self, Lookup};
use crate::cache::store::{self, Entry, Join};
use crate::cache::{CacheResult, Store};
use crate::config::{CacheMode, CacheSpec, Role};
use crate::routing::Route;

/// Forwards one request over `route` through the shield; `store` is None when the cache is
/// off (then this is [`forward`] and the result is None). `host` is the request's host,
/// `arrived` when it arrived.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    route: &Route,
    parts: Parts,
    body: Incoming,
    received_host: Option<HeaderValue>,
    limits: &BodyLimits<'_>,
    store: Option<&Arc<Store>>,
    spec: &CacheSpec,
    host: &str,
    arrived: Instant,
) -> (Response<ProxyBody>, Report, Option<CacheResult>) {
    let Some(store) = store else {
        let (resp, report) = forward(route, parts, body, received_host, limits, arrived).await;
        return (resp, report, None);
    };
    let authorized = match rules::lookup(&parts.method, &parts.headers) {
        Lookup::Use { authorized } => authorized,
        Lookup::Bypass => {
            let (resp, report) = forward(route, parts, body, received_host, limits, arrived).await;
            return (resp, report, Some(CacheResult::Bypass));
        }
    };
    let head = parts.method == Method::HEAD;
    let key = store::key(host, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let found = store
        .get(&key)
        .filter(|e| e.matches(&parts.headers, authorized));
    let serves = serves_fresh(route);
    if serves {
        if let Some(e) = found.as_ref().filter(|e| e.is_fresh(Instant::now())) {
            return (answer(e, head), Report::default(), Some(CacheResult::Hit));
        }
    }
    // No tier is usable (every one fails its checks): a copy within its stale limit serves
    // without asking them again, so a failing origin is not sent every reader.
    if route.state.active().is_none() {
        if let Some(e) = found.as_ref().filter(|e| e.may_serve_stale(Instant::now())) {
            return (answer(e, head), Report::default(), Some(CacheResult::Stale));
        }
    }
    // A key whose last answer could not be stored goes straight upstream for a while.
    if found.is_none() && store.passing(&key, Instant::now()) {
        let (resp, report) = forward(route, parts, body, received_host, limits, arrived).await;
        let resp = passed(store, key, resp, &report);
        return (resp, report, Some(CacheResult::Bypass));
    }
    // Concurrent GET misses go upstream once (a HEAD is answered by its own request).
    let mut leader = None;
    if serves && !head {
        match store.join(&key) {
            Join::Leader(l) => leader = Some(l),
            Join::Waiter(rx) => {
                if let Some((e, stale)) = store::wait(rx, spec.lock_timeout)
                    .await
                    .filter(|(e, _)| e.matches(&parts.headers, authorized))
                {
                    let result = if stale {
                        CacheResult::Stale
                    } else {
                        CacheResult::Coalesced
                    };
                    return (answer(&e, false), Report::default(), Some(result));
                }
            }
        }
    }
    let result = if serves {
        CacheResult::Miss
    } else {
        CacheResult::Bypass
    };
    let method = parts.method.clone();
    // A copy with more than half of its freshness left is not replaced by this answer (hot
    // pages fetched through a CDN are not copied into the store on every request).
    let refresh = !head
        && !found
            .as_ref()
            .is_some_and(|e| e.fresh_for_a_while(Instant::now()));
    // The request's headers, for the values its answer's Vary names.
    let request_headers = refresh.then(|| parts.headers.clone());
    let (mut resp, mut report) = forward(route, parts, body, received_host, limits, arrived).await;
    if let Some(failure) = report.failure {
        if failure != Failure::ClientBody {
            // Every attempt failed: a stored copy within its stale limit answers instead.
            let copy = store
                .get(&key)
                .filter(|e| {
                    request_headers
                        .as_ref()
                        .is_some_and(|h| e.matches(h, authorized))
                })
                .or(found)
                .filter(|e| e.may_serve_stale(Instant::now()));
            if let Some(e) = copy {
                if let Some(leader) = leader {
                    leader.served_stale(Arc::clone(&e));
                }
                report.upstream = None;
                report.pick = None;
                return (answer(&e, head), report, Some(CacheResult::Stale));
            }
        }
        return (resp, report, Some(result));
    }
    if let Some(request_headers) = request_headers {
        let stored = rules::storable(
            &method,
            authorized,
            resp.status(),
            resp.headers(),
            SystemTime::now(),
            spec.stale_if_error,
        );
        match stored {
            Ok(freshness) => {
                let vary_values = rules::vary_values(&freshness.vary, &request_headers);
                let head_of = (resp.status(), resp.headers());
                if let Some(fill) = store.filling(key, head_of, freshness, vary_values, leader) {
                    resp.body_mut().store_into(fill);
                }
            }
            Err(why) if why.is_the_responses() => store.pass(key, Instant::now()),
            Err(_) => {}
        }
    }
    (resp, report, Some(result))
}

/// An answer for a passed key: it becomes storable again as soon as an answer says so (the
/// pass is kept otherwise). Only the answer's head is looked at; nothing is copied.
fn passed(
    store: &Arc<Store>,
    key: Box<str>,
    resp: Response<ProxyBody>,
    report: &Report,
) -> Response<ProxyBody> {
    let storable = report.failure.is_none()
        && rules::storable(
            &Method::GET,
            false,
            resp.status(),
            resp.headers(),
            SystemTime::now(),
            std::time::Duration::ZERO,
        )
        .is_ok();
    if storable {
        store.forget_pass(&key);
    }
    resp
}

/// Whether `route` serves fresh stored copies now: always, never, or (`direct`) while its
/// active tier is an origin-role tier, or no tier is usable at all — bascule is then the
/// cache in front of the origin, and no purge made at a CDN can be hidden behind it. (With
/// nothing usable, a failing origin would otherwise get every reader's request.)
fn serves_fresh(route: &Route) -> bool {
    match route.spec.cache {
        CacheMode::Always => true,
        CacheMode::Off => false,
        CacheMode::Direct => match route.state.active() {
            None => true,
            Some(t) => route
                .tiers
                .get(t)
                .is_some_and(|tier| tier.iter().all(|u| u.spec.role == Role::Origin)),
        },
    }
}

/// A stored copy as a response, with its `Age` (a HEAD: the head only).
fn answer(e: &Arc<Entry>, head: bool) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::stored(Arc::clone(e), head));
    *r.status_mut() = e.status;
    *r.headers_mut() = e.headers.clone();
    let h = r.headers_mut();
    h.insert(header::AGE, HeaderValue::from(e.age(Instant::now())));
    if e.status != StatusCode::NO_CONTENT {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(e.len));
    }
    r
}
