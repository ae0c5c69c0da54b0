//! CDN-generated errors (DESIGN §7.1): which 5xx answers from a `cdn` upstream are the CDN's
//! own error pages rather than the origin's answer passed through. The signatures are data —
//! one table, [`SIGNATURES`] — matched against the status, a few headers and at most the first
//! [`BODY_PREFIX`] bytes of the body; the origin's own marker header (`origin_marker`), when
//! configured, settles it without looking further. Pure functions, no I/O.

use http::{HeaderMap, HeaderName};

/// How much of a 5xx body from a CDN is read before deciding (error pages name themselves in
/// their first few hundred bytes; Cloudflare's Ray ID comes later, within 4 KiB).
pub const BODY_PREFIX: usize = 8 << 10;

/// One CDN's error signature: every test it names must hold.
#[derive(Debug)]
pub struct Signature {
    /// Which CDN.
    pub cdn: &'static str,
    /// Statuses it applies to (inclusive).
    pub status: (u16, u16),
    /// A header that must contain this text, case-insensitively (`None`: no header test).
    pub header: Option<(&'static str, &'static str)>,
    /// At least one of these must occur in the body's prefix (empty: no body test).
    pub body: &'static [&'static str],
}

/// The built-in signatures, from the error pages each CDN serves:
/// - Cloudflare: `server: cloudflare` and its error page (the "Cloudflare Ray ID" footer, the
///   `cf-error-details` block); any 520–530, its own codes for the origin path;
/// - Fastly: Varnish's "Guru Mediation" error page;
/// - CloudFront: `x-cache: Error from cloudfront`;
/// - Akamai: `server: AkamaiGHost` with an error page carrying its "Reference #".
pub const SIGNATURES: &[Signature] = &[
    Signature {
        cdn: "cloudflare",
        status: (520, 530),
        header: Some(("server", "cloudflare")),
        body: &[],
    },
    Signature {
        cdn: "cloudflare",
        status: (500, 599),
        header: Some(("server", "cloudflare")),
        body: &["Cloudflare Ray ID", "cf-error-details"],
    },
    Signature {
        cdn: "fastly",
        status: (500, 599),
        header: None,
        body: &["Guru Mediation"],
    },
    Signature {
        cdn: "cloudfront",
        status: (500, 599),
        header: Some(("x-cache", "Error from cloudfront")),
        body: &[],
    },
    Signature {
        cdn: "akamai",
        status: (500, 599),
        header: Some(("server", "AkamaiGHost")),
        // The page writes it with character references: `Reference&#32;&#35;97&#46;…`.
        body: &["Reference #", "Reference&#32;&#35;"],
    },
];

/// Whether a signature's body test needs the body (else status and headers decide).
pub fn needs_body(status: u16, headers: &HeaderMap) -> bool {
    SIGNATURES.iter().any(|s| {
        !s.body.is_empty() && in_range(status, s.status) && header_holds(headers, s.header)
    })
}

/// The CDN whose own error this 5xx answer is, if it is one: the origin marker decides when
/// configured (its absence proves the origin did not answer), else the first signature that
/// matches the status, headers and `body_prefix`.
pub fn generated_by(
    status: u16,
    headers: &HeaderMap,
    body_prefix: &[u8],
    marker: Option<&HeaderName>,
) -> Option<&'static str> {
    if status < 500 {
        return None;
    }
    if let Some(m) = marker {
        return (!headers.contains_key(m)).then_some("cdn (no origin marker)");
    }
    SIGNATURES
        .iter()
        .find(|s| {
            in_range(status, s.status)
                && header_holds(headers, s.header)
                && (s.body.is_empty() || s.body.iter().any(|m| contains(body_prefix, m)))
        })
        .map(|s| s.cdn)
}

fn in_range(status: u16, (lo, hi): (u16, u16)) -> bool {
    (lo..=hi).contains(&status)
}

fn header_holds(headers: &HeaderMap, test: Option<(&str, &str)>) -> bool {
    let Some((name, text)) = test else {
        return true;
    };
    headers
        .get_all(name)
        .iter()
        .any(|v| contains_ignore_case(v.as_bytes(), text.as_bytes()))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
#[path = "cdn_tests.rs"]
mod tests;
