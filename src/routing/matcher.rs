//! Host and path matching: a pure index from (host, path) to a route number.
//!
//! Hosts are compared case-insensitively with any port removed. An exact host wins over a
//! wildcard (`*.example.com`, the longest suffix first), which wins over `*`. Within the most
//! specific host level that has routes, the longest matching path prefix wins; if none of that
//! level's prefixes matches the path, the next less specific level is tried (so a route for
//! `www.example.com` + `/api/` does not hide a catch-all `*` + `/` route from `/`).

use std::collections::HashMap;

use crate::config::HostPattern;

/// Index from host patterns to routes; built once per routing table.
#[derive(Debug, Default)]
pub struct Matcher {
    exact: HashMap<Box<str>, Vec<Entry>>,
    suffix: HashMap<Box<str>, Vec<Entry>>,
    any: Vec<Entry>,
}

/// One (prefix, route) pair in a host bucket.
#[derive(Debug, Clone)]
struct Entry {
    prefix: Box<str>,
    route: usize,
}

impl Matcher {
    /// Builds the index from each route's hosts and prefix; `route` indexes are positions.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a [HostPattern], &'a str)>) -> Matcher {
        let mut m = Matcher::default();
        for (route, (hosts, prefix)) in routes.into_iter().enumerate() {
            for host in hosts {
                let entry = Entry {
                    prefix: prefix.into(),
                    route,
                };
                match host {
                    HostPattern::Exact(h) => {
                        m.exact.entry(h.as_str().into()).or_default().push(entry)
                    }
                    HostPattern::Suffix(s) => {
                        m.suffix.entry(s.as_str().into()).or_default().push(entry)
                    }
                    HostPattern::Any => m.any.push(entry),
                }
            }
        }
        // Longest prefix first, so the first match in a bucket is the best one.
        let by_len = |v: &mut Vec<Entry>| v.sort_by_key(|e| std::cmp::Reverse(e.prefix.len()));
        m.exact.values_mut().for_each(by_len);
        m.suffix.values_mut().for_each(by_len);
        by_len(&mut m.any);
        m
    }

    /// The route for `host` (as received: any case, may carry a port) and `path`.
    pub fn find(&self, host: &str, path: &str) -> Option<usize> {
        let host = crate::config::strip_port(host).trim_end_matches('.');
        let mut lower_buf = [0u8; 256];
        let host = match lowercase(host, &mut lower_buf) {
            Some(h) => h,
            None => return Self::in_bucket(&self.any, path),
        };
        if let Some(r) = self.exact.get(host).and_then(|b| Self::in_bucket(b, path)) {
            return Some(r);
        }
        if !self.suffix.is_empty() {
            // ".b.example.com", then ".example.com", then ".com": longest suffix first.
            for (i, _) in host.match_indices('.') {
                if let Some(r) = self
                    .suffix
                    .get(&host[i..])
                    .and_then(|b| Self::in_bucket(b, path))
                {
                    return Some(r);
                }
            }
        }
        Self::in_bucket(&self.any, path)
    }

    fn in_bucket(bucket: &[Entry], path: &str) -> Option<usize> {
        bucket
            .iter()
            .find(|e| path.starts_with(&*e.prefix))
            .map(|e| e.route)
    }
}

/// Lower-cases `host` into `buf` without allocating; None when it is too long or not ASCII
/// (such a host can only match `*`).
fn lowercase<'b>(host: &str, buf: &'b mut [u8; 256]) -> Option<&'b str> {
    let bytes = host.as_bytes();
    if bytes.len() > buf.len() || !host.is_ascii() {
        return None;
    }
    let out = &mut buf[..bytes.len()];
    out.copy_from_slice(bytes);
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> HostPattern {
        match s {
            "*" => HostPattern::Any,
            s if s.starts_with("*.") => HostPattern::Suffix(s[1..].to_owned()),
            s => HostPattern::Exact(s.to_owned()),
        }
    }

    fn matcher(routes: &[(&[&str], &str)]) -> Matcher {
        let owned: Vec<(Vec<HostPattern>, String)> = routes
            .iter()
            .map(|(h, p)| (h.iter().map(|s| pattern(s)).collect(), p.to_string()))
            .collect();
        Matcher::new(owned.iter().map(|(h, p)| (h.as_slice(), p.as_str())))
    }

    #[test]
    fn exact_beats_wildcard_beats_any() {
        let m = matcher(&[
            (&["*"], "/"),
            (&["*.example.com"], "/"),
            (&["www.example.com"], "/"),
        ]);
        assert_eq!(m.find("www.example.com", "/"), Some(2));
        assert_eq!(m.find("img.example.com", "/"), Some(1));
        assert_eq!(m.find("a.b.example.com", "/x"), Some(1));
        assert_eq!(m.find("example.com", "/"), Some(0));
        assert_eq!(m.find("other.org", "/"), Some(0));
    }

    #[test]
    fn hosts_ignore_case_port_and_trailing_dot() {
        let m = matcher(&[(&["www.example.com"], "/")]);
        assert_eq!(m.find("WWW.Example.COM:8080", "/"), Some(0));
        assert_eq!(m.find("www.example.com.", "/"), Some(0));
        assert_eq!(m.find("example.com", "/"), None);
    }

    #[test]
    fn the_longest_wildcard_suffix_wins() {
        let m = matcher(&[(&["*.example.com"], "/"), (&["*.img.example.com"], "/")]);
        assert_eq!(m.find("a.img.example.com", "/"), Some(1));
        assert_eq!(m.find("a.www.example.com", "/"), Some(0));
    }

    #[test]
    fn the_longest_plain_prefix_wins() {
        let m = matcher(&[
            (&["a.com"], "/"),
            (&["a.com"], "/api"),
            (&["a.com"], "/api/v2/"),
        ]);
        assert_eq!(m.find("a.com", "/"), Some(0));
        assert_eq!(m.find("a.com", "/apix"), Some(1));
        assert_eq!(m.find("a.com", "/api/v2/users"), Some(2));
        assert_eq!(m.find("a.com", "/api/v2"), Some(1));
    }

    #[test]
    fn a_less_specific_host_serves_paths_the_specific_one_does_not_route() {
        let m = matcher(&[(&["*"], "/"), (&["www.example.com"], "/api/")]);
        assert_eq!(m.find("www.example.com", "/api/x"), Some(1));
        assert_eq!(m.find("www.example.com", "/"), Some(0));
    }

    #[test]
    fn no_route_is_none() {
        let m = matcher(&[(&["a.com"], "/api/")]);
        assert_eq!(m.find("a.com", "/"), None);
        assert_eq!(m.find("", "/api/"), None);
    }
}
