//! The Host / authority parser, `proxy::host::parse_host`: it never panics; an accepted host
//! is `name` followed by nothing, `:` or `:DIGITS` (the port, leading zeros allowed), with a
//! non-empty name that is a bracketed IPv6 address or reg-name characters only; userinfo is
//! always refused.

#![no_main]

use std::net::Ipv6Addr;

use bascule::proxy::host::{parse_host, HostError};
use libfuzzer_sys::fuzz_target;

/// RFC 3986 unreserved and sub-delims: what a reg-name may hold (no percent-encoding).
fn reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    // Header values reach the parser through to_str, so only text does.
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_host(s);
    if s.contains('@') {
        assert_eq!(parsed, Err(HostError::UserInfo), "{s:?}");
    }
    let Ok(host) = parsed else {
        return;
    };
    assert!(!host.name.is_empty(), "{s:?}");
    let rest = s
        .strip_prefix(host.name)
        .unwrap_or_else(|| panic!("{s:?}: name {:?} is not its start", host.name));
    match host.name.strip_prefix('[') {
        Some(literal) => {
            let literal = literal.strip_suffix(']').expect("a bracketed name closes");
            assert!(literal.parse::<Ipv6Addr>().is_ok(), "{s:?}");
        }
        None => assert!(host.name.bytes().all(reg_name_byte), "{s:?}"),
    }
    match host.port {
        None => assert!(matches!(rest, "" | ":"), "{s:?}: no port but {rest:?} left"),
        Some(port) => {
            let digits = rest.strip_prefix(':').expect("a port follows ':'");
            assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{s:?}");
            assert_eq!(digits.parse::<u16>(), Ok(port), "{s:?}");
        }
    }
});
