//! Pure header rewrites of RFC 9110 proxying: hop-by-hop removal, X-Forwarded-For/Proto/Host,
//! Forwarded and X-Real-IP with the trusted-proxies rule, Via, HTTP/2 cookie crumbs joined,
//! and the Host sent upstream.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, GetAll, HeaderMap, HeaderName, HeaderValue};

/// X-Forwarded-For.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// X-Forwarded-Proto.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// X-Forwarded-Host.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// X-Real-IP (nginx's realip convention: the client's address).
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const VIA_VALUE: &str = "1.1 bascule";

/// The client end of a connection, as the rewrite needs it; built once per connection, so
/// that its address is formatted once, not per request.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The TCP peer's address.
    pub addr: SocketAddr,
    /// Whether the client connection is TLS.
    pub https: bool,
    /// The peer's IP as an X-Forwarded-For element and X-Real-IP value.
    ip_header: HeaderValue,
}

impl Peer {
    /// The peer at `addr`, over TLS when `https`.
    pub fn new(addr: SocketAddr, https: bool) -> Peer {
        Peer {
            addr,
            https,
            ip_header: ip_value(addr.ip()),
        }
    }
}

/// Hop-by-hop headers removed whatever Connection says.
static HOP_BY_HOP: [&HeaderName; 9] = [
    &header::CONNECTION,
    &header::TE,
    &header::TRAILER,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
    &header::PROXY_AUTHORIZATION,
    &header::PROXY_AUTHENTICATE,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
];

/// Which of the names a rewrite cares about a message carries, from one pass over its names
/// (most messages carry none of them): a bit per [`HOP_BY_HOP`] name, then the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Present(u32);

const FORWARDED_BIT: u32 = 1 << 9;
const VIA_BIT: u32 = 1 << 10;
const COOKIE_BIT: u32 = 1 << 11;
const XFF_BIT: u32 = 1 << 12;
const XFP_BIT: u32 = 1 << 13;
const XFH_BIT: u32 = 1 << 14;
const XRI_BIT: u32 = 1 << 15;
const HOP_MASK: u32 = (1 << 9) - 1;

impl Present {
    /// One pass over `headers`' names: each is matched by length first, so the common names
    /// cost a comparison or two.
    fn scan(headers: &HeaderMap) -> Present {
        let mut bits = 0u32;
        for k in headers.keys() {
            let name = k.as_str();
            let bit = match name.len() {
                2 if name == "te" => 1 << 1,
                3 if name == "via" => VIA_BIT,
                6 if name == "cookie" => COOKIE_BIT,
                7 if name == "trailer" => 1 << 2,
                7 if name == "upgrade" => 1 << 4,
                9 if name == "forwarded" => FORWARDED_BIT,
                9 if name == "x-real-ip" => XRI_BIT,
                10 if name == "connection" => 1,
                10 if name == "keep-alive" => 1 << 7,
                15 if name == "x-forwarded-for" => XFF_BIT,
                16 if name == "x-forwarded-host" => XFH_BIT,
                16 if name == "proxy-connection" => 1 << 8,
                17 if name == "transfer-encoding" => 1 << 3,
                17 if name == "x-forwarded-proto" => XFP_BIT,
                18 if name == "proxy-authenticate" => 1 << 6,
                19 if name == "proxy-authorization" => 1 << 5,
                _ => 0,
            };
            bits |= bit;
        }
        Present(bits)
    }

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
}

/// Removes hop-by-hop headers: Connection and every header it names, Keep-Alive,
/// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization and
/// Proxy-Authenticate. One pass over the names; most messages carry none of them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_present(headers, Present::scan(headers));
}

fn strip_present(headers: &mut HeaderMap, present: Present) {
    if present.0 & HOP_MASK == 0 {
        return;
    }
    if present.has(1) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            // Split the bytes, not the text: a value with obs-text (not `to_str`) still
            // names the headers it lists.
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
            .filter(|n| !HOP_BY_HOP.contains(&n))
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    for (i, h) in HOP_BY_HOP.iter().enumerate() {
        if present.has(1 << i) {
            headers.remove(*h);
        }
    }
}

/// Rewrites a request's headers for an upstream. `trusted`: the peer is in `trusted_proxies`;
/// `received_host` is the client's Host (or HTTP/2 authority) as received. From an untrusted
/// peer, X-Forwarded-* and X-Real-IP are replaced and Forwarded is removed; a trusted peer's
/// are kept (For appended to). The Host each attempt sends is the forwarder's decision, made
/// per upstream; the client's stays here until then. Names the message does not carry are
/// added without looking for them again.
pub fn rewrite_request(
    headers: &mut HeaderMap,
    peer: &Peer,
    trusted: bool,
    received_host: Option<&HeaderValue>,
) {
    let present = Present::scan(headers);
    strip_present(headers, present);
    // `set`: replaces the name's fields if it had any, else just adds one.
    let set = |headers: &mut HeaderMap, name: &HeaderName, bit: u32, v: HeaderValue| {
        if present.has(bit) {
            headers.insert(name.clone(), v);
        } else {
            headers.append(name.clone(), v);
        }
    };
    let ip = &peer.ip_header;
    // From an untrusted peer every incoming X-Forwarded-* value is replaced; a trusted one's
    // are kept, For appended to.
    let xff = if trusted && present.has(XFF_BIT) {
        append(headers.get_all(&X_FORWARDED_FOR), ip)
    } else {
        ip.clone()
    };
    set(headers, &X_FORWARDED_FOR, XFF_BIT, xff);
    if !trusted && present.has(FORWARDED_BIT) {
        // bascule does not write Forwarded itself; an untrusted peer's would be a spoof.
        headers.remove(header::FORWARDED);
    }
    if !trusted || !present.has(XRI_BIT) {
        set(headers, &X_REAL_IP, XRI_BIT, ip.clone());
    }
    if !trusted || !present.has(XFP_BIT) {
        let proto = if peer.https { "https" } else { "http" };
        set(
            headers,
            &X_FORWARDED_PROTO,
            XFP_BIT,
            HeaderValue::from_static(proto),
        );
    }
    match received_host {
        Some(host) if !trusted || !present.has(XFH_BIT) => {
            set(headers, &X_FORWARDED_HOST, XFH_BIT, host.clone());
        }
        None if !trusted && present.has(XFH_BIT) => {
            headers.remove(&X_FORWARDED_HOST);
        }
        _ => {}
    }
    add_via(headers, present);
    if present.has(COOKIE_BIT) {
        join_cookies(headers);
    }
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split Cookie into several fields; they are joined
/// into one with "; " (what an HTTP/1.1 upstream requires, and valid for HTTP/2 too). Nothing
/// is done for zero or one Cookie, the common case.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for v in headers.get_all(header::COOKIE) {
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Joining valid values with "; " gives a valid value; keep the fields if not.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// The textual IP address as a header value, formatted without an intermediate String.
fn ip_value(ip: IpAddr) -> HeaderValue {
    use std::io::Write as _;
    let mut buf = [0u8; 48];
    let mut w = &mut buf[..];
    let written = write!(w, "{ip}").map(|()| 48 - w.len());
    written
        .ok()
        .and_then(|n| HeaderValue::from_bytes(&buf[..n]).ok())
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Rewrites a response's headers for the client.
pub fn rewrite_response(headers: &mut HeaderMap) {
    let present = Present::scan(headers);
    strip_present(headers, present);
    add_via(headers, present);
}

/// Adds `Via: 1.1 bascule`, after the message's own Via fields if it has any.
fn add_via(headers: &mut HeaderMap, present: Present) {
    let own = HeaderValue::from_static(VIA_VALUE);
    if present.has(VIA_BIT) {
        let via = append(headers.get_all(header::VIA), &own);
        headers.insert(header::VIA, via);
    } else {
        headers.append(header::VIA, own);
    }
}

/// Every field of a name, in order, then `next`, as one value: the fields of one name are one
/// comma-separated list (RFC 9110 §5.3), so none of them may be dropped.
fn append(prev: GetAll<'_, HeaderValue>, next: &HeaderValue) -> HeaderValue {
    let mut v = Vec::new();
    for p in prev {
        v.extend_from_slice(p.as_bytes());
        v.extend_from_slice(b", ");
    }
    if v.is_empty() {
        return next.clone();
    }
    v.extend_from_slice(next.as_bytes());
    // Valid values joined with ", " are valid; keep bascule's own value if not.
    HeaderValue::from_bytes(&v).unwrap_or_else(|_| next.clone())
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
