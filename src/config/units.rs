//! Small value parsers for the config file: durations, sizes, status sets, CIDRs, host names
//! and `${VAR}` expansion. Pure functions returning a message; `validate` adds the position.

use std::net::IpAddr;
use std::time::Duration;

/// Parses a duration with units: "500ms", "2s", "1m", "1h 30m".
pub fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        return Err(format!(
            "duration {text:?} needs a unit, e.g. \"{t}s\" or \"{t}ms\""
        ));
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parses a byte size: an integer, or a number with B, KB/KiB, MB/MiB, GB/GiB (K/M/G are
/// binary, as in nginx).
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}: expected e.g. \"64KiB\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("invalid size {text:?}: unknown unit {other:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// A set of HTTP status codes (100–599), as a bitset: membership is one shift and mask.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet([u64; 8]);

impl StatusSet {
    /// Adds the inclusive range `lo..=hi`; both must be within 100–599 and ordered.
    pub fn add_range(&mut self, lo: u16, hi: u16) -> Result<(), String> {
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) {
            let what = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            return Err(format!("status {what} is outside 100-599"));
        }
        if lo > hi {
            return Err(format!("status range {lo}-{hi} is reversed"));
        }
        for code in lo..=hi {
            let i = usize::from(code - 100);
            self.0[i / 64] |= 1 << (i % 64);
        }
        Ok(())
    }

    /// Adds one code, or a "lo-hi" range written as text.
    pub fn add_text(&mut self, text: &str) -> Result<(), String> {
        let parse = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid status {text:?}: expected a code or \"lo-hi\""))
        };
        match text.split_once('-') {
            Some((lo, hi)) => self.add_range(parse(lo)?, parse(hi)?),
            None => {
                let c = parse(text)?;
                self.add_range(c, c)
            }
        }
    }

    /// Parses a comma-separated list of codes and ranges, e.g. "200-399" or "200,204".
    pub fn parse_list(text: &str) -> Result<StatusSet, String> {
        let mut set = StatusSet::default();
        for part in text.split(',') {
            set.add_text(part)?;
        }
        Ok(set)
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        if !(100..=599).contains(&code) {
            return false;
        }
        let i = usize::from(code - 100);
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

impl std::fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes: Vec<u16> = (100..=599).filter(|c| self.contains(*c)).collect();
        write!(f, "StatusSet({} codes)", codes.len())
    }
}

/// An IP network, e.g. 10.0.0.0/8 or ::1/128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses "ADDR/LEN", or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid CIDR {text:?}: expected e.g. \"10.0.0.0/8\"");
        let (a, p) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses match IPv4 networks).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses a host name without a port (`admin.internal`), as the admin API compares it with
/// `Host`: lowercase, a trailing dot removed. IP addresses are refused (the admin API accepts
/// every IP literal anyway), as are ports and wildcards.
pub fn host_name(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{text:?} is an IP address; IP addresses are always accepted, list host names only"
        ));
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "invalid host name {text:?}: letters, digits, '-', '_' and '.', with no port or \
             wildcard (e.g. \"admin.internal\")"
        ));
    }
    Ok(name)
}

/// Replaces each `${NAME}` with the environment variable NAME, looked up through `lookup`.
/// An unset variable is an error naming it; `$$` stands for a literal `$`.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated ${{...}} in {text:?}"))?;
            let name = &body[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("invalid environment variable name {name:?}"));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert!(duration("5").is_err());
        assert!(duration("fast").is_err());
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(size("64KiB"), Ok(65536));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("100"), Ok(100));
        assert_eq!(size("8k"), Ok(8192));
        assert!(size("1TB").is_err());
        assert!(size("KiB").is_err());
    }

    #[test]
    fn status_sets_take_codes_and_ranges() {
        let s = StatusSet::parse_list("200-399").unwrap();
        assert!(s.contains(200) && s.contains(399) && !s.contains(400) && !s.contains(199));
        let mut t = StatusSet::default();
        assert!(t.add_text("520-530").is_ok());
        assert!(t.contains(525) && !t.contains(531));
        assert!(t.add_text("600").is_err());
        assert!(t.add_text("504-502").is_err());
        assert!(!t.contains(700));
    }

    #[test]
    fn cidrs_match_their_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn host_names_are_lowercased_and_refuse_ports_addresses_and_wildcards() {
        assert_eq!(host_name("Admin.Internal."), Ok("admin.internal".into()));
        assert_eq!(host_name("bascule-admin"), Ok("bascule-admin".into()));
        for bad in [
            "",
            "admin.internal:9901",
            "*.internal",
            "a..b",
            "-admin",
            "has space",
            "10.0.0.1",
            "[::1]",
            "::1",
        ] {
            assert!(host_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn env_references_are_expanded_and_unset_ones_named() {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_owned());
        assert_eq!(
            expand_env("Bearer ${TOKEN}", env),
            Ok("Bearer s3cret".into())
        );
        assert_eq!(expand_env("cost $$5 $x", env), Ok("cost $5 $x".into()));
        let err = expand_env("${MISSING}", env).unwrap_err();
        assert!(err.contains("MISSING"), "{err}");
        assert!(expand_env("${oops", env).is_err());
        assert!(expand_env("${1A}", env).is_err());
    }
}
