//! Request path normalization (RFC 3986 §6.2.2), so that routing and the upstream see the same
//! path, whatever spelling the client chose: percent-encoded *unreserved* characters are
//! decoded (`%41` → `A`, `%7E` → `~`), other escapes are kept with upper-case hex (`%2f` →
//! `%2F`), then dot-segments are removed (§5.2.4: `/a/./b` → `/a/b`, `/a/../b` → `/b`,
//! `/..` → `/`). Decoding comes first, so `/%2e%2e/` is `/../`. Empty segments (`//`) are
//! kept: merging them is not an RFC 3986 equivalence and some origins tell them apart.

use std::borrow::Cow;

use http::uri::{PathAndQuery, Uri};

/// Why a path cannot be normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (not origin-form).
    #[error("path does not start with '/'")]
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding")]
    BadPercent,
}

/// The normalized form of `path` (a path without its query); borrowed when it already is.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if is_normal(path.as_bytes())? {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    let mut segment = String::new();
    // Whether the last segment was a dot-segment: the output then ends with "/".
    let mut trailing_dot = false;
    for raw in path[1..].split('/') {
        decode_unreserved(raw, &mut segment)?;
        trailing_dot = true;
        match segment.as_str() {
            "." => {}
            ".." => {
                // Segments hold no raw '/', so the last one starts at the last '/'.
                let start = out.rfind('/').unwrap_or(0);
                out.truncate(start);
            }
            s => {
                out.push('/');
                out.push_str(s);
                trailing_dot = false;
            }
        }
    }
    if trailing_dot || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// `uri` with its path replaced by `path` and its query kept.
pub fn with_path(uri: &Uri, path: &str) -> Result<Uri, http::Error> {
    let pq = match uri.query() {
        Some(q) => PathAndQuery::try_from(format!("{path}?{q}"))?,
        None => PathAndQuery::try_from(path)?,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Ok(Uri::from_parts(parts)?)
}

/// One pass over the bytes: true when nothing would change. Every `%` escape is validated
/// until the first change is found; the slow path validates the rest.
fn is_normal(p: &[u8]) -> Result<bool, PathError> {
    let mut segment_start = 1;
    let mut i = 1;
    while i <= p.len() {
        match p.get(i) {
            None | Some(b'/') => {
                if matches!(&p[segment_start..i], b"." | b"..") {
                    return Ok(false);
                }
                segment_start = i + 1;
            }
            Some(b'%') => {
                let (hi, lo) = escape(p, i)?;
                let decoded = (hex(hi) << 4) | hex(lo);
                if unreserved(decoded) || hi.is_ascii_lowercase() || lo.is_ascii_lowercase() {
                    return Ok(false);
                }
                i += 2;
            }
            Some(_) => {}
        }
        i += 1;
    }
    Ok(true)
}

/// Appends `raw` to `out` (cleared first) with unreserved escapes decoded and other escapes'
/// hex upper-cased.
fn decode_unreserved(raw: &str, out: &mut String) -> Result<(), PathError> {
    out.clear();
    let bytes = raw.as_bytes();
    let mut rest = 0;
    while let Some(at) = raw[rest..].find('%').map(|i| i + rest) {
        out.push_str(&raw[rest..at]);
        let (hi, lo) = escape(bytes, at)?;
        let decoded = (hex(hi) << 4) | hex(lo);
        if unreserved(decoded) {
            out.push(char::from(decoded));
        } else {
            out.push('%');
            out.push(char::from(hi.to_ascii_uppercase()));
            out.push(char::from(lo.to_ascii_uppercase()));
        }
        rest = at + 3;
    }
    out.push_str(&raw[rest..]);
    Ok(())
}

/// The two hex digits after the `%` at `at`.
fn escape(p: &[u8], at: usize) -> Result<(u8, u8), PathError> {
    match (p.get(at + 1), p.get(at + 2)) {
        (Some(&hi), Some(&lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => Ok((hi, lo)),
        _ => Err(PathError::BadPercent),
    }
}

/// The value of an ASCII hex digit (0 for anything else; callers check first).
fn hex(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        b'A'..=b'F' => d - b'A' + 10,
        _ => 0,
    }
}

/// RFC 3986 unreserved: ALPHA DIGIT - . _ ~
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed_unchanged() {
        for p in [
            "/",
            "/index.html",
            "/a/b/c/",
            "/a//b",
            "//",
            "/.well-known/acme-challenge/x",
            "/a/.b/..c/...",
            "/a.",
            "/a/b.",
            "/a%2Fb%3F%25%20",
            "/caf%C3%A9",
            "/café",
            "/~user/_x-y",
            "/*",
        ] {
            assert!(
                matches!(normalize_path(p), Ok(Cow::Borrowed(b)) if b == p),
                "{p:?} -> {:?}",
                normalize_path(p)
            );
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        let cases = [
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/..", "/"),
            ("/.", "/"),
            ("/../a", "/a"),
            ("/../../a/b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/../../..", "/"),
            ("/a/./b/../c/./d", "/a/c/d"),
            ("/public/../admin/x", "/admin/x"),
            ("/a//..", "/a/"),
            ("/a/..//b", "//b"),
            ("/./", "/"),
            ("/a/./", "/a/"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_kept_upper_case() {
        let cases = [
            ("/%41", "/A"),
            ("/%7E%7euser", "/~~user"),
            ("/a%2db%5Fc%2E", "/a-b_c."),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb%41", "/a%2FbA"),
            ("/%3f%25%c3%a9", "/%3F%25%C3%A9"),
            ("/%2541", "/%2541"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn decoding_comes_before_dot_segment_removal() {
        let cases = [
            ("/public/%2e%2e/admin/x", "/admin/x"),
            ("/public/%2E%2e/admin/x", "/admin/x"),
            ("/public/.%2e/admin", "/admin"),
            ("/a/%2e/b", "/a/b"),
            ("/a/%2e%2e", "/"),
            ("/a/%2e%2e%2fb", "/a/..%2Fb"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        let cases = [
            ("", PathError::NotOriginForm),
            ("*", PathError::NotOriginForm),
            ("a/b", PathError::NotOriginForm),
            ("/%", PathError::BadPercent),
            ("/%4", PathError::BadPercent),
            ("/%zz", PathError::BadPercent),
            ("/a%g1", PathError::BadPercent),
            ("/./%", PathError::BadPercent),
            ("/%41%", PathError::BadPercent),
            ("/%é", PathError::BadPercent),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn the_query_is_kept_when_the_path_is_replaced() {
        let uri: Uri = "/a/../b?x=%41&y=/../".parse().unwrap();
        let path = normalize_path(uri.path()).unwrap();
        let out = with_path(&uri, &path).unwrap();
        assert_eq!(out, "/b?x=%41&y=/../");
        let abs: Uri = "http://a.example/./c".parse().unwrap();
        let out = with_path(&abs, &normalize_path(abs.path()).unwrap()).unwrap();
        assert_eq!(out, "http://a.example/c");
    }
}
