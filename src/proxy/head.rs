//! Checks of a request head before it is routed, each refusal mapped to the local answer it
//! gets: a request target longer than [`max_target`] (414), a missing, repeated or malformed
//! Host or authority (400, RFC 9112 §3.2), and a Content-Length no upstream should be asked
//! to trust (400).

use http::request::Parts;
use http::{header, HeaderMap, Response, Version};

use super::body::ProxyBody;
use super::error;
use super::host::{parse_host, HostError};
use super::path::PathError;

/// The largest Content-Length accepted: 2^53 − 1 (8 PiB), the largest integer that every
/// upstream parser represents exactly, even one that holds lengths in a double.
pub const MAX_CONTENT_LENGTH: u64 = (1 << 53) - 1;

/// Why a request is answered locally before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The path and query are longer than the limit.
    #[error("request target too long")]
    TargetTooLong,
    /// An HTTP/1.1 request with neither Host nor an absolute-form authority.
    #[error("no Host")]
    MissingHost,
    /// More than one Host line.
    #[error("more than one Host")]
    DuplicateHost,
    /// A Host or authority that is not `host[:port]`.
    #[error("invalid host: {0}")]
    Host(HostError),
    /// A Content-Length that is not one decimal number up to [`MAX_CONTENT_LENGTH`].
    #[error("invalid Content-Length")]
    ContentLength,
    /// A path that cannot be normalized.
    #[error("invalid path: {0}")]
    Path(PathError),
}

impl Rejection {
    /// The local answer.
    pub fn response(self) -> Response<ProxyBody> {
        match self {
            Rejection::TargetTooLong => error::uri_too_long(),
            Rejection::MissingHost
            | Rejection::DuplicateHost
            | Rejection::Host(_)
            | Rejection::ContentLength
            | Rejection::Path(_) => error::bad_request(),
        }
    }
}

/// The request-target limit for `[limits] max_header_bytes`: an eighth of it, at least 8 KiB
/// (nginx's default request-line buffer), so the default 64 KiB head allows an 8 KiB target.
pub fn max_target(max_header_bytes: usize) -> usize {
    (max_header_bytes / 8).max(8 * 1024)
}

/// Checks the target length, the Host rule and Content-Length.
pub fn check(parts: &Parts, max_target: usize) -> Result<(), Rejection> {
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > max_target {
        return Err(Rejection::TargetTooLong);
    }
    check_host(parts)?;
    if !content_length_ok(&parts.headers) {
        return Err(Rejection::ContentLength);
    }
    Ok(())
}

/// RFC 9112 §3.2: 400 to an HTTP/1.1 request without Host (the target's authority, as in
/// HTTP/2 and absolute-form requests, stands in for it), and to any request with more than
/// one Host line or an invalid one. An authority present is checked as strictly as Host.
fn check_host(parts: &Parts) -> Result<(), Rejection> {
    if let Some(a) = parts.uri.authority() {
        parse_host(a.as_str()).map_err(Rejection::Host)?;
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(Rejection::DuplicateHost),
        (Some(h), None) => {
            let h = h
                .to_str()
                .map_err(|_| Rejection::Host(HostError::BadCharacter))?;
            parse_host(h).map(|_| ()).map_err(Rejection::Host)
        }
        (None, _) if parts.version == Version::HTTP_11 && parts.uri.authority().is_none() => {
            Err(Rejection::MissingHost)
        }
        (None, _) => Ok(()),
    }
}

/// Every Content-Length value is the same run of digits, at most [`MAX_CONTENT_LENGTH`].
/// hyper already refuses, on HTTP/1, a non-number, an overflow and differing repeats; this
/// adds the bound, and the same rules on HTTP/2.
fn content_length_ok(headers: &HeaderMap) -> bool {
    let mut seen = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let b = v.as_bytes();
        if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let n = b.iter().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        if n > MAX_CONTENT_LENGTH || seen.is_some_and(|s| s != n) {
            return false;
        }
        seen = Some(n);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(version: Version, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn check11(uri: &str, headers: &[(&str, &str)]) -> Result<(), Rejection> {
        check(&parts(Version::HTTP_11, uri, headers), 8192)
    }

    /// A request target, its header lines, and the verdict.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Result<(), Rejection>,
    );

    #[test]
    fn the_host_rule_of_rfc_9112() {
        use HostError::*;
        let cases: [Case; 10] = [
            ("/", &[("host", "a.example")], Ok(())),
            ("/", &[], Err(Rejection::MissingHost)),
            ("http://a.example/", &[], Ok(())),
            (
                "/",
                &[("host", "a"), ("host", "b")],
                Err(Rejection::DuplicateHost),
            ),
            ("/", &[("host", "u@a")], Err(Rejection::Host(UserInfo))),
            ("/", &[("host", "a:abc")], Err(Rejection::Host(BadPort))),
            (
                "/",
                &[("host", "a:99999")],
                Err(Rejection::Host(PortOutOfRange)),
            ),
            ("/", &[("host", "a\"b")], Err(Rejection::Host(BadCharacter))),
            ("http://u@a.example/", &[], Err(Rejection::Host(UserInfo))),
            (
                "http://a.example/",
                &[("host", "a:x")],
                Err(Rejection::Host(BadPort)),
            ),
        ];
        for (uri, headers, want) in cases {
            assert_eq!(check11(uri, headers), want, "{uri} {headers:?}");
        }
        // HTTP/1.0 and HTTP/2 may go without.
        assert_eq!(check(&parts(Version::HTTP_10, "/", &[]), 8192), Ok(()));
        assert_eq!(check(&parts(Version::HTTP_2, "/", &[]), 8192), Ok(()));
    }

    #[test]
    fn content_length_must_be_one_bounded_number() {
        let bad = [
            "",
            "-1",
            "+1",
            "1 ",
            "0x10",
            "1,1",
            "9007199254740992",
            "18446744073709551615",
            "99999999999999999999999",
        ];
        for v in bad {
            let r = check11("/", &[("host", "a"), ("content-length", v)]);
            assert_eq!(r, Err(Rejection::ContentLength), "{v:?}");
        }
        for v in ["0", "5", "9007199254740991"] {
            assert_eq!(
                check11("/", &[("host", "a"), ("content-length", v)]),
                Ok(())
            );
        }
        let twice = |a, b| {
            check11(
                "/",
                &[("host", "a"), ("content-length", a), ("content-length", b)],
            )
        };
        assert_eq!(twice("5", "5"), Ok(()));
        assert_eq!(twice("5", "6"), Err(Rejection::ContentLength));
    }

    #[test]
    fn a_long_target_is_414() {
        let long = format!("/{}", "a".repeat(8191));
        assert_eq!(check11(&long, &[("host", "a")]), Ok(()));
        let longer = format!("{long}?b");
        assert_eq!(
            check11(&longer, &[("host", "a")]),
            Err(Rejection::TargetTooLong)
        );
        assert_eq!(
            Rejection::TargetTooLong.response().status(),
            http::StatusCode::URI_TOO_LONG
        );
    }

    #[test]
    fn the_target_limit_follows_max_header_bytes() {
        assert_eq!(max_target(8 * 1024), 8 * 1024);
        assert_eq!(max_target(64 * 1024), 8 * 1024);
        assert_eq!(max_target(256 * 1024), 32 * 1024);
    }
}
