//! Who may use the admin API (DESIGN §5, §7.6): the rules that refuse a browser's request the
//! admin API did not ask for — a foreign web page, or one reached through DNS rebinding —
//! and the bearer-token comparison. Pure functions over the request head, tested in-file.
//!
//! A page on another site can make the operator's browser send simple requests (forms,
//! `text/plain` bodies) to `127.0.0.1:9901`, and a page whose name it rebinds to 127.0.0.1
//! becomes same-origin with the admin API. So:
//!
//! - `Host` must be an IP literal, `localhost`, or a name in `[admin] hosts` (else 421);
//! - a present `Origin` must be the admin API's own (`http://` + the request's host and port),
//!   and a present `Sec-Fetch-Site` must be `same-origin` or `none` (else 403), on every
//!   request but the dashboard page, which any link may open;
//! - a request that can change state (any method but GET, HEAD, OPTIONS, TRACE) must be
//!   `Content-Type: application/json` (else 415), which no form can send and no other
//!   site's script can send without a CORS preflight the admin API never grants.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::request::Parts;
use http::{header, HeaderMap, Method, StatusCode, Version};
use sha2::{Digest, Sha256};

/// Why a request was refused before it reached an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An HTTP/1.1 request without `Host`, or more than one.
    #[error("a request needs exactly one Host header")]
    NoHost,
    /// A `Host` that is not `host[:port]`.
    #[error("Host {0:?} is not host[:port]")]
    BadHost(String),
    /// A domain name other than `localhost` or a configured one: a DNS-rebound page.
    #[error(
        "Host {0:?} is not a name of this admin API: use its IP address or localhost, \
         or list the name in [admin] hosts"
    )]
    ForeignHost(String),
    /// A request a browser sent on another site's behalf.
    #[error("cross-origin request refused ({0}); the admin API only answers its own page")]
    CrossOrigin(String),
    /// A state-changing request not sent as JSON.
    #[error(
        "send this request with Content-Type: application/json (the body may be empty); \
         other types are refused so that web forms cannot use the admin API"
    )]
    NotJson,
}

impl Refusal {
    /// The status answered.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoHost | Refusal::BadHost(_) => StatusCode::BAD_REQUEST,
            // 421: this server does not answer for that authority — not a permission matter,
            // and it tells an operator at once that the name is what to fix.
            Refusal::ForeignHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Refusal::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// Whether this is the dashboard's page, which holds no data and may be opened from a link.
pub fn is_dashboard_page(method: &Method, path: &str) -> bool {
    method == Method::GET && matches!(path, "/" | "/index.html")
}

/// Applies the three rules to a request head; `hosts` are the configured extra names
/// (lowercase, no trailing dot).
pub fn check(req: &Parts, hosts: &[String]) -> Result<(), Refusal> {
    // None: HTTP/1.0 without Host, which no browser sends; there is no name to rebind.
    let own = own_authority(req)?;
    if let Some(Host::Name(name)) = own.as_ref().map(|a| &a.host) {
        if name != "localhost" && !hosts.iter().any(|h| h == name) {
            return Err(Refusal::ForeignHost(name.clone()));
        }
    }
    if !is_dashboard_page(&req.method, req.uri.path()) {
        same_origin(&req.headers, own.as_ref())?;
    }
    if !req.method.is_safe() {
        json_content(&req.headers)?;
    }
    Ok(())
}

/// The bearer-token rule: true when no token is configured, or `Authorization: Bearer T`
/// carries it.
pub fn authorized(headers: &HeaderMap, token: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    tokens_match(given.trim().as_bytes(), token.as_bytes())
}

/// Compares SHA-256 digests of both tokens, all 32 bytes: hashing the given token takes time
/// by its own length and the configured one's digest costs the same on every request, so the
/// timing shows neither where the tokens differ nor how long the configured one is.
fn tokens_match(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A parsed `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: Host,
    port: Option<u16>,
}

/// A domain name (lowercase, no trailing dot) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Authority {
    fn parse(s: &str) -> Result<Authority, Refusal> {
        let bad = || Refusal::BadHost(s.to_owned());
        let (host, port) = match s.strip_prefix('[') {
            Some(rest) => {
                let (v6, port) = rest.split_once(']').ok_or_else(bad)?;
                let ip: Ipv6Addr = v6.parse().map_err(|_| bad())?;
                (Host::Ip(IpAddr::V6(ip)), port)
            }
            None => {
                let (text, port) = s
                    .rsplit_once(':')
                    .map_or((s, ""), |(h, _)| (h, &s[h.len()..]));
                (Host::of(text).ok_or_else(bad)?, port)
            }
        };
        let port = match port {
            "" => None,
            p => p
                .strip_prefix(':')
                .filter(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|d| d.parse::<u16>().ok())
                .map(Some)
                .ok_or_else(bad)?,
        };
        Ok(Authority { host, port })
    }

    /// The same authority as `other` for an `http://` origin (port 80 when none is given).
    fn same_as(&self, other: &Authority) -> bool {
        self.host == other.host && self.port.unwrap_or(80) == other.port.unwrap_or(80)
    }
}

impl Host {
    /// An IPv4 literal or a domain name; None when `text` is neither.
    fn of(text: &str) -> Option<Host> {
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Some(Host::Ip(IpAddr::V4(ip)));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        valid.then_some(Host::Name(name))
    }
}

/// The authority the request was sent to: the request target's (absolute form), else the
/// one `Host` header; None for HTTP/1.0 without one.
fn own_authority(req: &Parts) -> Result<Option<Authority>, Refusal> {
    if let Some(a) = req.uri.authority() {
        return Authority::parse(a.as_str()).map(Some);
    }
    let mut values = req.headers.get_all(header::HOST).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => {
            let text = v
                .to_str()
                .map_err(|_| Refusal::BadHost("<not ASCII>".into()))?;
            Authority::parse(text.trim()).map(Some)
        }
        (None, None) if req.version <= Version::HTTP_10 => Ok(None),
        _ => Err(Refusal::NoHost),
    }
}

/// `Origin` and `Sec-Fetch-Site`, when present, must say the request comes from the admin
/// API's own page (`own`: where the request was sent).
fn same_origin(headers: &HeaderMap, own: Option<&Authority>) -> Result<(), Refusal> {
    for v in headers.get_all(header::ORIGIN) {
        let text = v.to_str().unwrap_or("<not ASCII>").trim();
        let ours = text
            .strip_prefix("http://")
            .and_then(|a| Authority::parse(a).ok())
            .is_some_and(|a| own.is_some_and(|own| a.same_as(own)));
        if !ours {
            return Err(Refusal::CrossOrigin(format!("Origin: {text}")));
        }
    }
    for v in headers.get_all("sec-fetch-site") {
        let text = v.to_str().unwrap_or("<not ASCII>").trim();
        if !(text.eq_ignore_ascii_case("same-origin") || text.eq_ignore_ascii_case("none")) {
            return Err(Refusal::CrossOrigin(format!("Sec-Fetch-Site: {text}")));
        }
    }
    Ok(())
}

/// `Content-Type: application/json`, parameters (`; charset=utf-8`) allowed.
fn json_content(headers: &HeaderMap) -> Result<(), Refusal> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(Refusal::NotJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: (&str, &str) = ("content-type", "application/json");
    const OURS: &str = "127.0.0.1:9901";

    /// A request head with `Host: host` and `headers`.
    fn head(method: Method, path: &str, host: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(path);
        if !host.is_empty() {
            b = b.header(header::HOST, host);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    /// One case: what it shows, method, path, `Host` ("" for none), other headers, the status.
    type Row<'a> = (
        &'a str,
        Method,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
        u16,
    );

    fn status_of(r: Result<(), Refusal>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn each_rule_answers_as_its_table_says() {
        use Method as M;
        let hosts = vec!["admin.internal".to_owned()];
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // what,                          method, path,               Host,                   headers,                                          status
            ("form post",                     M::POST, "/upstreams/x/drain", OURS, &[("content-type", "application/x-www-form-urlencoded")], 415),
            ("multipart form",                M::POST, "/reload",         OURS, &[("content-type", "multipart/form-data; boundary=x")], 415),
            ("text/plain forging JSON",       M::POST, "/reload",         OURS, &[("content-type", "text/plain")],                     415),
            ("no content type",               M::POST, "/reload",         OURS, &[],                                                   415),
            ("a JSON look-alike",             M::POST, "/reload",         OURS, &[("content-type", "application/jsonp")],              415),
            ("JSON",                          M::POST, "/reload",         OURS, &[JSON],                                               200),
            ("JSON with charset, any case",   M::POST, "/reload",         OURS, &[("content-type", "Application/JSON; charset=utf-8")], 200),
            ("a future POST",                 M::POST, "/cache/purge",    OURS, &[],                                                   415),
            ("a DELETE is state-changing",    M::DELETE, "/status",       OURS, &[],                                                   415),
            ("GET needs no content type",     M::GET,  "/status",         OURS, &[],                                                   200),
            ("foreign Origin",                M::POST, "/reload",         OURS, &[JSON, ("origin", "http://evil.example")],            403),
            ("Origin: null",                  M::POST, "/reload",         OURS, &[JSON, ("origin", "null")],                           403),
            ("same Origin",                   M::POST, "/reload",         OURS, &[JSON, ("origin", "http://127.0.0.1:9901")],          200),
            ("same host, other port",         M::POST, "/reload",         OURS, &[JSON, ("origin", "http://127.0.0.1:9902")],          403),
            ("same host:port over https",     M::POST, "/reload",         OURS, &[JSON, ("origin", "https://127.0.0.1:9901")],         403),
            ("localhost page, IP Host",       M::POST, "/reload",         OURS, &[JSON, ("origin", "http://localhost:9901")],          403),
            ("Origin on a GET",               M::GET,  "/status",         OURS, &[("origin", "http://evil.example")],                  403),
            ("Origin, default port",          M::GET,  "/status",         "localhost", &[("origin", "http://LOCALHOST:80")],           200),
            ("Sec-Fetch-Site cross-site",     M::GET,  "/status",         OURS, &[("sec-fetch-site", "cross-site")],                   403),
            ("Sec-Fetch-Site same-site",      M::POST, "/reload",         OURS, &[JSON, ("sec-fetch-site", "same-site")],              403),
            ("Sec-Fetch-Site same-origin",    M::POST, "/reload",         OURS, &[JSON, ("sec-fetch-site", "same-origin")],            200),
            ("Sec-Fetch-Site none (typed)",   M::GET,  "/status",         OURS, &[("sec-fetch-site", "none")],                         200),
            ("dashboard opened from a link",  M::GET,  "/",               OURS, &[("sec-fetch-site", "cross-site"), ("origin", "null")], 200),
            ("dashboard under a foreign Host", M::GET, "/",               "evil.example", &[],                                          421),
            ("Host evil.example",             M::GET,  "/status",         "evil.example:9901", &[],                                     421),
            ("Host EVIL.example, no port",    M::GET,  "/status",         "EVIL.example", &[],                                          421),
            ("Host localhost:9901",           M::GET,  "/status",         "localhost:9901", &[],                                        200),
            ("Host LOCALHOST., trailing dot", M::GET,  "/status",         "LOCALHOST.:9901", &[],                                       200),
            ("a subdomain of localhost",      M::GET,  "/status",         "evil.localhost:9901", &[],                                   421),
            ("Host 127.0.0.1:9901",           M::GET,  "/status",         "127.0.0.1:9901", &[],                                        200),
            ("Host 10.1.2.3, no port",        M::GET,  "/status",         "10.1.2.3", &[],                                              200),
            ("Host [::1]:9901",               M::GET,  "/status",         "[::1]:9901", &[],                                            200),
            ("same Origin over IPv6",         M::POST, "/reload",         "[::1]:9901", &[JSON, ("origin", "http://[0:0::1]:9901")],    200),
            ("configured name",               M::GET,  "/status",         "admin.internal:9901", &[],                                   200),
            ("configured name, uppercase",    M::GET,  "/status",         "ADMIN.Internal", &[],                                        200),
            ("a configured name's page",      M::POST, "/reload",         "admin.internal:9901", &[JSON, ("origin", "http://Admin.Internal:9901")], 200),
            ("no Host on HTTP/1.1",           M::GET,  "/status",         "", &[],                                                      400),
            ("a port that is no number",      M::GET,  "/status",         "127.0.0.1:x", &[],                                           400),
            ("a bare IPv6 address",           M::GET,  "/status",         "::1", &[],                                                   400),
            ("a name that is not one",        M::GET,  "/status",         "a b", &[],                                                   400),
        ];
        for (what, method, path, host, headers, want) in rows {
            let got = status_of(check(&head(method.clone(), path, host, headers), &hosts));
            assert_eq!(got, *want, "{what}");
        }
    }

    #[test]
    fn two_host_headers_are_refused_and_http_1_0_may_omit_it() {
        let mut two = head(Method::GET, "/status", OURS, &[("host", "evil.example")]);
        assert_eq!(check(&two, &[]), Err(Refusal::NoHost));
        two.headers.remove(header::HOST);
        two.version = Version::HTTP_10;
        assert_eq!(check(&two, &[]), Ok(()));
    }

    #[test]
    fn the_request_targets_authority_outranks_host() {
        let mut req = head(Method::GET, "/status", OURS, &[]);
        req.uri = "http://evil.example:9901/status".parse().expect("uri");
        assert_eq!(
            check(&req, &[]),
            Err(Refusal::ForeignHost("evil.example".into()))
        );
    }

    #[test]
    fn refusals_name_the_fix() {
        let msg = check(&head(Method::POST, "/reload", OURS, &[]), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("Content-Type: application/json"), "{msg}");
        let msg = check(&head(Method::GET, "/status", "evil.example", &[]), &[])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("[admin] hosts"), "{msg}");
    }

    #[test]
    fn tokens_compare_whole_whatever_their_lengths() {
        assert!(tokens_match(b"secret", b"secret"));
        assert!(!tokens_match(b"secret", b"secreT"));
        assert!(!tokens_match(b"secret", b"secret2"));
        assert!(!tokens_match(b"secre", b"secret"));
        assert!(!tokens_match(b"", b"x"));
    }

    #[test]
    fn the_token_rule_reads_a_bearer_header() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().expect("value"));
            h
        };
        assert!(authorized(&HeaderMap::new(), None));
        assert!(!authorized(&HeaderMap::new(), Some("s3cret")));
        assert!(authorized(&with("Bearer s3cret"), Some("s3cret")));
        assert!(!authorized(&with("Bearer s3cre"), Some("s3cret")));
        assert!(!authorized(&with("Basic s3cret"), Some("s3cret")));
    }
}
