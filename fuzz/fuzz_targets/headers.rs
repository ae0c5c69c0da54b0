//! The header rewrite, `proxy::headers::{rewrite_request, rewrite_response}` (and through
//! them `strip_hop_by_hop` and `join_cookies`), checked against the rules of RFC 9110 §7.6
//! and bascule's trusted-proxies rule as `headers.rs` states them.
//!
//! The input is text shaped like a message head, so that seeds can be written by hand:
//!
//! ```text
//! trusted https response 203.0.113.9:443     first line: options, any order, any subset
//! :host www.example.com                      the Host received from the client
//! :upstream origin.example.com               (ignored: the forwarder sets each attempt's Host)
//! Connection: keep-alive, X-Secret           header fields, in order
//! X-Secret: 1
//! ```
//!
//! Lines split at `\n` (a trailing `\r` is dropped); a field name and value that the `http`
//! crate refuses are skipped. Values are bytes, so obs-text (0x80–0xFF) reaches the rewrite.

#![no_main]

use std::net::{IpAddr, SocketAddr};

use bascule::proxy::headers::{rewrite_request, rewrite_response, Peer};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Removed whatever Connection says (RFC 9110 §7.6.1, plus Proxy-Connection and the
/// Proxy-Authenticate/Authorization pair, which belong to the hop).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Written by the request rewrite, so allowed afterwards even when Connection named them.
const SET_ON_REQUESTS: [&str; 6] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "via",
    "host",
];

const VIA: &[u8] = b"1.1 bascule";

struct Input {
    headers: HeaderMap,
    peer: Peer,
    trusted: bool,
    response: bool,
    received_host: Option<HeaderValue>,
}

fn read(data: &[u8]) -> Input {
    let mut lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let options = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let words: Vec<&str> = options.split_ascii_whitespace().collect();
    let addr = words
        .iter()
        .find_map(|w| {
            w.parse::<SocketAddr>()
                .ok()
                .or_else(|| w.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
        })
        .unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 7], 50000)));
    let mut input = Input {
        headers: HeaderMap::new(),
        peer: Peer::new(addr, words.contains(&"https")),
        trusted: words.contains(&"trusted"),
        response: words.contains(&"response"),
        received_host: None,
    };
    for line in lines {
        if let Some(v) = line.strip_prefix(b":host ") {
            input.received_host = HeaderValue::from_bytes(v).ok();
        } else if line.starts_with(b":upstream ") {
            // Older seeds name the upstream's Host; the rewrite no longer sets Host.
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let value = trim_ows(&line[colon + 1..]);
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                input.headers.append(n, v);
            }
        }
    }
    input
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

/// The field names the Connection fields list (RFC 9110 §7.6.1: comma-separated tokens),
/// read from the raw bytes, whatever else the value holds.
fn connection_options(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all("connection")
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(trim_ows(t)).ok())
        .collect()
}

/// A name's values, as bytes, in order.
fn values(h: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    h.get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

fn joined(parts: &[Vec<u8>], sep: &[u8]) -> Vec<u8> {
    parts.join(sep)
}

/// `prev` (all its fields, in order) with `next` appended, as one field.
fn appended(prev: &[Vec<u8>], next: &[u8]) -> Vec<Vec<u8>> {
    let mut all = prev.to_vec();
    all.push(next.to_vec());
    vec![joined(&all, b", ")]
}

fuzz_target!(|data: &[u8]| {
    let input = read(data);
    let before = input.headers.clone();
    let named = connection_options(&before);
    let is_hop = |n: &str| HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n);
    // What survives hop-by-hop removal, per name.
    let kept = |n: &str| {
        if is_hop(n) {
            Vec::new()
        } else {
            values(&before, n)
        }
    };

    let mut after = input.headers;
    let rewritten: &[&str] = if input.response {
        rewrite_response(&mut after);
        &["via"]
    } else {
        rewrite_request(
            &mut after,
            &input.peer,
            input.trusted,
            input.received_host.as_ref(),
        );
        &[
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-real-ip",
            "via",
            "forwarded",
            "cookie",
        ]
    };

    for h in HOP_BY_HOP {
        assert!(!after.contains_key(h), "{h} left in {after:?}");
    }
    let set: &[&str] = if input.response {
        &["via"]
    } else {
        &SET_ON_REQUESTS
    };
    for n in named.iter().filter(|n| !set.contains(&n.as_str())) {
        assert!(
            !after.contains_key(n),
            "{n}, named by Connection, left in {after:?}"
        );
    }
    assert_eq!(values(&after, "via"), appended(&kept("via"), VIA), "Via");

    // Whatever the rewrite does not own passes through untouched, in order.
    for n in before.keys().map(HeaderName::as_str) {
        if !rewritten.contains(&n) {
            assert_eq!(values(&after, n), kept(n), "{n} changed");
        }
    }
    for n in after.keys().map(HeaderName::as_str) {
        assert!(
            rewritten.contains(&n) || before.contains_key(n),
            "{n} appeared from nowhere"
        );
    }
    if input.response {
        return;
    }

    let trusted = input.trusted;
    let ip = input.peer.addr.ip().to_string().into_bytes();
    // From an untrusted peer, or a trusted one that sent none, bascule's own value.
    let own_or_kept = |n: &str, own: &[u8]| {
        let prev = kept(n);
        if !trusted || prev.is_empty() {
            vec![own.to_vec()]
        } else {
            prev
        }
    };

    let xff = kept("x-forwarded-for");
    let want_xff = if trusted && !xff.is_empty() {
        appended(&xff, &ip)
    } else {
        vec![ip.clone()]
    };
    assert_eq!(
        values(&after, "x-forwarded-for"),
        want_xff,
        "X-Forwarded-For"
    );
    assert_eq!(
        values(&after, "x-real-ip"),
        own_or_kept("x-real-ip", &ip),
        "X-Real-IP"
    );
    let proto: &[u8] = if input.peer.https { b"https" } else { b"http" };
    assert_eq!(
        values(&after, "x-forwarded-proto"),
        own_or_kept("x-forwarded-proto", proto),
        "X-Forwarded-Proto"
    );
    let want_xfh = match &input.received_host {
        Some(h) => own_or_kept("x-forwarded-host", h.as_bytes()),
        None if !trusted => Vec::new(),
        None => kept("x-forwarded-host"),
    };
    assert_eq!(
        values(&after, "x-forwarded-host"),
        want_xfh,
        "X-Forwarded-Host"
    );
    let want_forwarded = if trusted {
        kept("forwarded")
    } else {
        Vec::new()
    };
    assert_eq!(values(&after, "forwarded"), want_forwarded, "Forwarded");
    let cookies = kept("cookie");
    let want_cookies = if cookies.len() < 2 {
        cookies
    } else {
        let crumbs: Vec<Vec<u8>> = cookies.into_iter().filter(|c| !c.is_empty()).collect();
        vec![joined(&crumbs, b"; ")]
    };
    assert_eq!(values(&after, "cookie"), want_cookies, "Cookie");
});
