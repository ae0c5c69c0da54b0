//! The path normalizer, `proxy::path::normalize_path`: it never panics; it refuses exactly
//! what is not origin-form (no leading `/`; the caller handles `OPTIONS *` before it) or has
//! a `%` without two hex digits; an accepted path comes out starting with `/`, without `.` or
//! `..` segments, no longer than it went in, already normal (normalizing it again borrows it
//! unchanged), borrowed exactly when unchanged, and equal to a plain transcription of RFC 3986
//! §6.2.2.2 (decode unreserved escapes, upper-case the others) then §5.2.4
//! (`remove_dot_segments`).

#![no_main]

use std::borrow::Cow;

use bascule::proxy::path::{normalize_path, PathError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A request target is ASCII on the wire; http::Uri hands the path over as &str.
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let result = normalize_path(input);
    if !input.starts_with('/') {
        assert_eq!(result, Err(PathError::NotOriginForm), "{input:?}");
        return;
    }
    let Some(decoded) = decode(input) else {
        assert_eq!(result, Err(PathError::BadPercent), "{input:?}");
        return;
    };
    let out = result.unwrap_or_else(|e| panic!("{input:?} refused: {e}"));
    assert!(out.starts_with('/'), "{input:?} -> {out:?}");
    assert!(
        out[1..].split('/').all(|s| s != "." && s != ".."),
        "{input:?} -> {out:?} has a dot-segment"
    );
    assert!(out.len() <= input.len(), "{input:?} grew to {out:?}");
    assert_eq!(*out, *remove_dot_segments(&decoded), "{input:?}");
    match &out {
        Cow::Borrowed(b) => assert_eq!(*b, input, "borrowed but changed"),
        Cow::Owned(o) => assert_ne!(o, input, "{input:?}: owned but unchanged"),
    }
    match normalize_path(&out) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*out),
        other => panic!("{input:?} -> {out:?} -> {other:?}: not idempotent"),
    }
});

/// RFC 3986 §6.2.2.1–2: `%XX` of an unreserved character decoded, any other `%XX` with
/// upper-case hex; None when a `%` lacks two hex digits.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            let c = s[i..].chars().next()?;
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let hex = s.get(i + 1..i + 3)?;
        if !hex.bytes().all(|d| d.is_ascii_hexdigit()) {
            return None;
        }
        let v = u8::from_str_radix(hex, 16).ok()?;
        if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
            out.push(char::from(v));
        } else {
            out.push('%');
            out.push_str(&hex.to_ascii_uppercase());
        }
        i += 3;
    }
    Some(out)
}

/// RFC 3986 §5.2.4, step by step as written there.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    let pop = |output: &mut String| {
        let at = output.rfind('/').unwrap_or(0);
        output.truncate(at);
    };
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") {
            input.drain(..2);
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            pop(&mut output);
        } else if input == "/.." {
            input = "/".into();
            pop(&mut output);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let end = input[1..].find('/').map_or(input.len(), |i| i + 1);
            output.extend(input.drain(..end));
        }
    }
    output
}
