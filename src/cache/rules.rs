//! RFC 9111 shared-cache rules as pure functions (DESIGN §7.3): whether a request may be
//! answered from the store, whether a response may be stored and for how long it is fresh
//! (`CDN-Cache-Control` first, RFC 9213, then `s-maxage`, `max-age`, `Expires`, minus `Age`),
//! how long past that it may serve when every tier fails (`stale-if-error`), and the request
//! header values its `Vary` names.
//!
//! What is left out on purpose: heuristic freshness (a response with no explicit lifetime is
//! not stored), revalidation (`no-cache` responses are stored for stale-if-error only, never
//! served fresh), range requests and conditional requests (passed upstream as they are).

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

/// `CDN-Cache-Control` (RFC 9213): when present, `Cache-Control` and `Expires` are ignored.
pub static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The cache directives of a response that matter to a shared cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `private` (with or without field names: either way not for a shared cache).
    pub private: bool,
    /// `no-cache`: never served fresh without revalidation (so: never served fresh here).
    pub no_cache: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `s-maxage`, seconds.
    pub s_maxage: Option<u64>,
    /// `max-age`, seconds.
    pub max_age: Option<u64>,
    /// `stale-if-error` (RFC 5861), seconds.
    pub stale_if_error: Option<u64>,
}

/// Parses the directives of every `name` field of `headers` (comma-separated, case-insensitive;
/// a malformed number is ignored, a repeated one keeps the first).
pub fn directives(headers: &HeaderMap, name: &HeaderName) -> Directives {
    let mut d = Directives::default();
    for v in headers.get_all(name) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let part = part.trim();
            let (k, val) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (part, None),
            };
            let secs = || val.and_then(|v| v.parse::<u64>().ok());
            match k.to_ascii_lowercase().as_str() {
                "no-store" => d.no_store = true,
                "private" => d.private = true,
                "no-cache" => d.no_cache = true,
                "public" => d.public = true,
                "must-revalidate" | "proxy-revalidate" => d.must_revalidate = true,
                "s-maxage" => d.s_maxage = d.s_maxage.or_else(secs),
                "max-age" => d.max_age = d.max_age.or_else(secs),
                "stale-if-error" => d.stale_if_error = d.stale_if_error.or_else(secs),
                _ => {}
            }
        }
    }
    d
}

/// How a request meets the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// GET or HEAD with nothing that rules the store out: look it up, store what comes back.
    Use {
        /// It carries `Authorization`: only responses that allow sharing apply (RFC 9111 §3.5).
        authorized: bool,
    },
    /// Not for the store at all (other methods, ranges, conditionals, `no-store`).
    Bypass,
}

/// Whether a request with `method` and `headers` may be answered from, and stored into, the
/// store.
pub fn lookup(method: &Method, headers: &HeaderMap) -> Lookup {
    if method != Method::GET && method != Method::HEAD {
        return Lookup::Bypass;
    }
    let conditional = [
        header::RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_RANGE,
    ];
    if conditional.iter().any(|h| headers.contains_key(h))
        || directives(headers, &header::CACHE_CONTROL).no_store
    {
        return Lookup::Bypass;
    }
    Lookup::Use {
        authorized: headers.contains_key(header::AUTHORIZATION),
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// Not a GET (a HEAD's answer has no body to keep).
    Method,
    /// A status that is not cacheable by default (RFC 9110 §15.1, 206 left out).
    Status,
    /// `no-store`.
    NoStore,
    /// `private`.
    Private,
    /// It sets a cookie.
    SetCookie,
    /// `Vary: *`.
    VaryAny,
    /// The request had `Authorization` and the response does not allow sharing.
    Authorization,
    /// No explicit lifetime (no heuristic freshness here).
    NoLifetime,
}

impl NotStored {
    /// Whether it is the response's own doing, so that the next answer for the same URL is
    /// likely the same (a status or a request's `Authorization` say nothing about the next).
    pub fn is_the_responses(self) -> bool {
        match self {
            NotStored::NoStore
            | NotStored::Private
            | NotStored::SetCookie
            | NotStored::VaryAny
            | NotStored::NoLifetime => true,
            NotStored::Method | NotStored::Status | NotStored::Authorization => false,
        }
    }
}

/// How long a stored response is good for, from when it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Fresh for this long from now (lifetime minus `Age`; zero: stored for stale use only).
    pub fresh_for: Duration,
    /// The `Age` it arrived with.
    pub age: Duration,
    /// How long past freshness it may serve when every tier fails: the response's own
    /// `stale-if-error`, else `default`; zero with `must-revalidate`.
    pub stale_for: Duration,
    /// A request with `Authorization` may be answered with it (`public`, `s-maxage`,
    /// `must-revalidate`).
    pub shared_with_authorized: bool,
    /// The request headers its `Vary` names (lower-case), in order.
    pub vary: Vec<HeaderName>,
}

/// Statuses a shared cache may store given explicit freshness (RFC 9110 §15.1's "heuristically
/// cacheable" list, without 206: ranges are not stored).
fn cacheable_status(s: StatusCode) -> bool {
    matches!(
        s.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether the response (`status`, `headers`) to a `method` request (with `authorized`:
/// it carried `Authorization`) may be stored, and for how long; `now` is when it arrived,
/// `default_stale` is `[cache] stale_if_error`.
pub fn storable(
    method: &Method,
    authorized: bool,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
    default_stale: Duration,
) -> Result<Freshness, NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    if !cacheable_status(status) {
        return Err(NotStored::Status);
    }
    let cdn = headers.contains_key(&CDN_CACHE_CONTROL);
    let d = if cdn {
        directives(headers, &CDN_CACHE_CONTROL)
    } else {
        directives(headers, &header::CACHE_CONTROL)
    };
    if d.no_store {
        return Err(NotStored::NoStore);
    }
    if d.private {
        return Err(NotStored::Private);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    let vary = vary_names(headers).ok_or(NotStored::VaryAny)?;
    let shared_with_authorized = d.public || d.s_maxage.is_some() || d.must_revalidate;
    if authorized && !shared_with_authorized {
        return Err(NotStored::Authorization);
    }
    let lifetime = match (d.s_maxage.or(d.max_age), cdn) {
        (Some(s), _) => Duration::from_secs(s),
        (None, true) => return Err(NotStored::NoLifetime),
        (None, false) => expires_lifetime(headers, now).ok_or(NotStored::NoLifetime)?,
    };
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let fresh_for = if d.no_cache {
        Duration::ZERO
    } else {
        lifetime.saturating_sub(age)
    };
    let stale_for = if d.must_revalidate {
        Duration::ZERO
    } else {
        d.stale_if_error.map_or(default_stale, Duration::from_secs)
    };
    Ok(Freshness {
        fresh_for,
        age,
        stale_for,
        shared_with_authorized,
        vary,
    })
}

/// `Expires` minus `Date` (or minus `now` without a usable `Date`); an `Expires` that is not a
/// valid date means already expired (RFC 9111 §5.3). None: no `Expires`.
fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let expires = headers.get(header::EXPIRES)?;
    let Some(expires) = http_date(expires) else {
        return Some(Duration::ZERO);
    };
    let date = headers.get(header::DATE).and_then(http_date).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

fn http_date(v: &HeaderValue) -> Option<SystemTime> {
    httpdate::parse_http_date(v.to_str().ok()?).ok()
}

/// The header names of every `Vary` field, lower-case; None for `Vary: *`.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(header::VARY) {
        let Ok(v) = v.to_str() else { continue };
        for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if n == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(n.as_bytes()) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    Some(names)
}

/// The values of `names` in a request's `headers` (several fields joined with ", "), the
/// secondary key a stored response is matched on.
pub fn vary_values(names: &[HeaderName], headers: &HeaderMap) -> Vec<Option<HeaderValue>> {
    names
        .iter()
        .map(|n| {
            let mut all = headers.get_all(n).iter();
            let first = all.next()?;
            let rest: Vec<&HeaderValue> = all.collect();
            if rest.is_empty() {
                return Some(first.clone());
            }
            let mut joined = first.as_bytes().to_vec();
            for v in rest {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(v.as_bytes());
            }
            HeaderValue::from_bytes(&joined).ok()
        })
        .collect()
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
