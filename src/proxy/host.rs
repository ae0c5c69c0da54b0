//! The request's host, checked against RFC 9110 §7.2 / RFC 3986 §3.2: `uri-host [ ":" port ]`,
//! where `uri-host` is a reg-name or a bracketed IPv6 literal. A pure parser; the caller
//! answers 400 to anything it refuses.
//!
//! Refused, beyond what the grammar refuses: userinfo (`user@host`, forbidden in `http` and
//! `https` URIs by RFC 9110 §4.2.4), an empty host, a port above 65535, `IPvFuture` literals
//! and zone identifiers, and percent-encoded octets in a reg-name (no DNS name has one, and
//! the `http` crate, hence an HTTP/2 `:authority`, refuses them). An empty port (`host:`) is
//! allowed, as the grammar allows it, and means no port (RFC 3986 §6.2.3).

use std::net::Ipv6Addr;

/// A host as the client sent it, split into name and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    /// The host as written: a reg-name (any case), or an IPv6 literal with its brackets.
    pub name: &'a str,
    /// The port, when one is given; `None` for none and for an empty one (`host:`).
    pub port: Option<u16>,
}

/// Why a host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// Nothing before the port.
    #[error("empty host")]
    Empty,
    /// `user@host`.
    #[error("userinfo in host")]
    UserInfo,
    /// A port with a non-digit.
    #[error("port is not a number")]
    BadPort,
    /// A port above 65535.
    #[error("port out of range")]
    PortOutOfRange,
    /// A character outside reg-name syntax (unreserved and sub-delims).
    #[error("character not allowed in a host name")]
    BadCharacter,
    /// A bracketed literal that is not an IPv6 address.
    #[error("invalid IP literal")]
    BadIpLiteral,
}

/// Parses a Host header value or URI authority: `name[:port]`, `[v6]` or `[v6]:port`.
pub fn parse_host(s: &str) -> Result<Host<'_>, HostError> {
    if s.contains('@') {
        return Err(HostError::UserInfo);
    }
    let (name, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (literal, after) = rest.split_once(']').ok_or(HostError::BadIpLiteral)?;
            if literal.parse::<Ipv6Addr>().is_err() {
                return Err(HostError::BadIpLiteral);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(HostError::BadCharacter)?),
            };
            (&s[..literal.len() + 2], port)
        }
        None => match s.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (s, None),
        },
    };
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if !name.starts_with('[') && !name.bytes().all(reg_name_byte) {
        return Err(HostError::BadCharacter);
    }
    Ok(Host {
        name,
        port: port.map(parse_port).transpose()?.flatten(),
    })
}

/// RFC 3986 `port = *DIGIT`, within u16; empty is no port.
fn parse_port(p: &str) -> Result<Option<u16>, HostError> {
    if p.is_empty() {
        return Ok(None);
    }
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    // All digits: the only parse failure left is overflow.
    p.parse().map(Some).map_err(|_| HostError::PortOutOfRange)
}

/// unreserved (ALPHA DIGIT - . _ ~) or sub-delims (! $ & ' ( ) * + , ; =).
fn reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, port: Option<u16>) -> Result<Host<'_>, HostError> {
        Ok(Host { name, port })
    }

    #[test]
    fn well_formed_hosts_are_split_into_name_and_port() {
        let cases = [
            ("www.example.com", host("www.example.com", None)),
            ("WWW.Example.COM:8080", host("WWW.Example.COM", Some(8080))),
            ("example.com.", host("example.com.", None)),
            ("my_host-1.local~", host("my_host-1.local~", None)),
            ("a!$&'()*+,;=b", host("a!$&'()*+,;=b", None)),
            ("192.0.2.1:80", host("192.0.2.1", Some(80))),
            ("localhost:0", host("localhost", Some(0))),
            ("localhost:65535", host("localhost", Some(65535))),
            ("localhost:0080", host("localhost", Some(80))),
            ("localhost:", host("localhost", None)),
            ("[::1]", host("[::1]", None)),
            ("[2001:db8::1]:8443", host("[2001:db8::1]", Some(8443))),
            ("[::ffff:192.0.2.1]:", host("[::ffff:192.0.2.1]", None)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_host(input), want, "{input:?}");
        }
    }

    #[test]
    fn malformed_hosts_are_refused_with_the_reason() {
        use HostError::*;
        let cases = [
            ("", Empty),
            (":80", Empty),
            ("user@example.com", UserInfo),
            ("user:pw@example.com:80", UserInfo),
            ("@example.com", UserInfo),
            ("example.com:abc", BadPort),
            ("example.com:-1", BadPort),
            ("example.com:+80", BadPort),
            ("example.com: 80", BadPort),
            ("example.com:99999", PortOutOfRange),
            ("example.com:65536", PortOutOfRange),
            ("example.com:1:2", BadCharacter),
            ("exa mple.com", BadCharacter),
            ("a/b", BadCharacter),
            ("a?b", BadCharacter),
            ("a#b", BadCharacter),
            ("a\"b", BadCharacter),
            ("a<b>", BadCharacter),
            ("a{b}", BadCharacter),
            ("a\\b", BadCharacter),
            ("ex%41mple.com", BadCharacter),
            ("bücher.example", BadCharacter),
            ("::1", BadCharacter),
            ("[::1", BadIpLiteral),
            ("[example.com]", BadIpLiteral),
            ("[v1.fe]", BadIpLiteral),
            ("[fe80::1%25eth0]", BadIpLiteral),
            ("[::1]x", BadCharacter),
            ("[::1]:x", BadPort),
            ("[::1]:70000", PortOutOfRange),
            ("[::1]]", BadCharacter),
        ];
        for (input, want) in cases {
            assert_eq!(parse_host(input), Err(want), "{input:?}");
        }
    }
}
