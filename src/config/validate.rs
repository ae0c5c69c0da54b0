//! Semantic checks: turns the serde mirror (`file`) into a typed [`Config`], collecting every
//! error of the file with its position. A syntax or schema error is reported alone (serde stops
//! there); past that, all errors are reported together.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::file::{self, Scalar, Text, TierEntry};
use super::units;
use super::*;

/// Environment lookup used for `${VAR}` (the process environment, or a map in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses and validates `text`, the contents of the file at `path`.
pub fn parse(path: &Path, text: &str, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let mut c = Checker::new(path, text, env);
    let raw: file::File = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            c.error(e.span().unwrap_or(0..0), e.message().trim_end().to_owned());
            return Err(ConfigError::Invalid(c.errors));
        }
    };
    let config = c.config(raw);
    if c.errors.is_empty() {
        Ok(config)
    } else {
        c.errors.sort_by_key(|d| (d.line, d.col));
        Err(ConfigError::Invalid(c.errors))
    }
}

/// Accumulates diagnostics while converting values.
struct Checker<'a> {
    file: String,
    dir: PathBuf,
    text: &'a str,
    env: EnvLookup<'a>,
    errors: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn new(path: &Path, text: &'a str, env: EnvLookup<'a>) -> Self {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Checker {
            file: path.display().to_string(),
            dir,
            text,
            env,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, span: Range<usize>, message: String) {
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        self.errors.push(Diagnostic {
            file: self.file.clone(),
            line,
            col,
            message,
        });
    }

    /// The string with `${VAR}` expanded; None (and an error) when a variable is unset.
    fn text(&mut self, t: &Text, key: &str) -> Option<String> {
        match units::expand_env(t.get_ref(), self.env) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(t.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    /// Parses a value with `parse`, reporting a failure at the value.
    fn value<T>(
        &mut self,
        t: &Text,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.text(t, key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(t.span(), format!("{key}: {e}"));
                None
            }
        }
    }

    fn duration(&mut self, t: Option<&Text>, key: &str, default: Duration) -> Duration {
        let Some(t) = t else { return default };
        match self.value(t, key, units::duration) {
            Some(d) if d.is_zero() => {
                self.error(t.span(), format!("{key}: must be greater than zero"));
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn size(&mut self, v: Option<&Spanned<Scalar>>, key: &str, default: u64) -> u64 {
        let Some(v) = v else { return default };
        match v.get_ref() {
            Scalar::Int(n) => u64::try_from(*n).unwrap_or_else(|_| {
                self.error(v.span(), format!("{key}: must not be negative"));
                default
            }),
            Scalar::Str(s) => {
                let t = Spanned::new(v.span(), s.clone());
                self.value(&t, key, units::size).unwrap_or(default)
            }
        }
    }

    fn count(
        &mut self,
        v: Option<&Spanned<i64>>,
        key: &str,
        min: i64,
        max: i64,
        default: u32,
    ) -> u32 {
        let Some(v) = v else { return default };
        let n = *v.get_ref();
        if n < min || n > max {
            self.error(
                v.span(),
                format!("{key}: must be between {min} and {max}, got {n}"),
            );
            return default;
        }
        u32::try_from(n).unwrap_or(default)
    }

    fn socket_addr(&mut self, t: &Text, key: &str) -> Option<SocketAddr> {
        self.value(t, key, |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                format!("invalid address {s:?}: expected IP:PORT, e.g. \"0.0.0.0:8080\"")
            })
        })
    }

    fn file_path(&mut self, t: &Text, key: &str) -> Option<PathBuf> {
        let s = self.text(t, key)?;
        let p = Path::new(&s);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        };
        if let Err(e) = std::fs::metadata(&full) {
            self.error(
                t.span(),
                format!("{key}: cannot read {}: {e}", full.display()),
            );
            return None;
        }
        Some(full)
    }

    fn config(&mut self, raw: file::File) -> Config {
        let listen = self.listen(&raw.listen);
        let admin = self.admin(&raw.admin);
        let limits = self.limits(&raw.limits);
        let log = self.log(&raw.log);
        let certificates: Vec<ServerCert> = raw
            .tls
            .certificates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let key_name = format!("tls.certificates[{i}]");
                let cert = self.file_path(&c.cert, &format!("{key_name}.cert"));
                let key = self.file_path(&c.key, &format!("{key_name}.key"));
                let files = CertFiles {
                    cert: cert?,
                    key: key?,
                };
                match crate::tls::load_pair(&files) {
                    Ok(loaded) => Some(loaded),
                    Err(e) => {
                        self.error(c.cert.span(), format!("{key_name}: {e}"));
                        None
                    }
                }
            })
            .collect();
        if !listen.https.is_empty() && raw.tls.certificates.is_empty() {
            self.error(
                raw.listen.span(),
                "listen.https needs at least one [[tls.certificates]]".into(),
            );
        }
        let upstreams: Vec<UpstreamSpec> = raw
            .upstreams
            .iter()
            .filter_map(|(name, u)| self.upstream(name, u, &raw.defaults))
            .collect();
        let known: HashSet<&str> = raw.upstreams.keys().map(|k| k.get_ref().as_str()).collect();
        let routes = self.routes(&raw.routes, &known);
        Config {
            path: PathBuf::from(&self.file),
            content_hash: fingerprint(
                hash_bytes(self.text.as_bytes()),
                tls_files(&certificates, &upstreams),
            ),
            listen,
            admin,
            limits,
            log,
            certificates,
            upstreams,
            routes,
        }
    }

    fn listen(&mut self, l: &Spanned<file::Listen>) -> Listen {
        let r = l.get_ref();
        let http: Vec<SocketAddr> = r
            .http
            .iter()
            .filter_map(|a| self.socket_addr(a, "listen.http"))
            .collect();
        let https: Vec<SocketAddr> = r
            .https
            .iter()
            .filter_map(|a| self.socket_addr(a, "listen.https"))
            .collect();
        if r.http.is_empty() && r.https.is_empty() {
            self.error(
                l.span(),
                "[listen] needs at least one address in http or https".into(),
            );
        }
        let trusted_proxies = r
            .trusted_proxies
            .iter()
            .filter_map(|c| self.value(c, "listen.trusted_proxies", Cidr::parse))
            .collect();
        Listen {
            http,
            https,
            debug_headers: r.debug_headers,
            trusted_proxies,
        }
    }

    fn admin(&mut self, a: &file::Admin) -> Admin {
        let default: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 9901));
        let listen = a
            .listen
            .as_ref()
            .and_then(|t| self.socket_addr(t, "admin.listen"))
            .unwrap_or(default);
        let token = a.token.as_ref().and_then(|t| self.text(t, "admin.token"));
        let enabled = a.enabled.unwrap_or(true);
        if let Some(t) = a.token.as_ref().filter(|_| token.as_deref() == Some("")) {
            self.error(t.span(), "admin.token: must not be empty".into());
        }
        if enabled && !listen.ip().is_loopback() && token.is_none() && a.token.is_none() {
            let span = a.listen.as_ref().map_or(0..0, Spanned::span);
            self.error(
                span,
                format!(
                    "admin.listen: {listen} is not a loopback address, so admin.token is required"
                ),
            );
        }
        let hosts = a
            .hosts
            .iter()
            .filter_map(|h| self.value(h, "admin.hosts", units::host_name))
            .collect();
        Admin {
            enabled,
            listen,
            token,
            hosts,
        }
    }

    fn limits(&mut self, l: &file::Limits) -> Limits {
        let max_header_bytes = self.size(
            l.max_header_bytes.as_ref(),
            "limits.max_header_bytes",
            64 << 10,
        );
        if let Some(v) = l
            .max_header_bytes
            .as_ref()
            .filter(|_| max_header_bytes < 8192)
        {
            self.error(
                v.span(),
                "limits.max_header_bytes: must be at least 8KiB".into(),
            );
        }
        Limits {
            max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
            header_timeout: self.duration(
                l.header_timeout.as_ref(),
                "limits.header_timeout",
                Duration::from_secs(10),
            ),
            idle_timeout: self.duration(
                l.idle_timeout.as_ref(),
                "limits.idle_timeout",
                Duration::from_secs(60),
            ),
            shutdown_grace: self.duration(
                l.shutdown_grace.as_ref(),
                "limits.shutdown_grace",
                Duration::from_secs(30),
            ),
            max_connections: self.count(
                l.max_connections.as_ref(),
                "limits.max_connections",
                1,
                1_000_000,
                10_000,
            ) as usize,
            body_timeout: self.duration(
                l.body_timeout.as_ref(),
                "limits.body_timeout",
                Duration::from_secs(10),
            ),
            send_timeout: self.duration(
                l.send_timeout.as_ref(),
                "limits.send_timeout",
                Duration::from_secs(30),
            ),
            max_concurrent_streams: self.count(
                l.max_concurrent_streams.as_ref(),
                "limits.max_concurrent_streams",
                1,
                10_000,
                100,
            ),
            max_in_flight_per_connection: self.count(
                l.max_in_flight_per_connection.as_ref(),
                "limits.max_in_flight_per_connection",
                1,
                10_000,
                32,
            ) as usize,
            body_buffer_per_connection: usize::try_from(self.size(
                l.body_buffer_per_connection.as_ref(),
                "limits.body_buffer_per_connection",
                1 << 20,
            ))
            .unwrap_or(usize::MAX),
        }
    }

    fn log(&mut self, l: &file::Log) -> Log {
        let format = match &l.format {
            None => LogFormat::Text,
            Some(t) => match self.text(t, "log.format").as_deref() {
                Some("text") | None => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    self.error(
                        t.span(),
                        format!("log.format: {other:?} is not \"text\" or \"json\""),
                    );
                    LogFormat::Text
                }
            },
        };
        Log {
            format,
            access: l.access.unwrap_or(true),
        }
    }

    fn upstream(
        &mut self,
        name: &Text,
        u: &file::Upstream,
        d: &file::Defaults,
    ) -> Option<UpstreamSpec> {
        let n = name.get_ref().clone();
        let key = |k: &str| format!("upstreams.{n}.{k}");
        if !valid_name(&n) {
            self.error(
                name.span(),
                format!("upstream name {n:?}: use letters, digits, '-', '_' and '.'"),
            );
        }
        let address = self.value(&u.address, &key("address"), parse_address);
        let host = u
            .host
            .as_ref()
            .and_then(|t| self.value(t, &key("host"), parse_host_header));
        let sni_text = u
            .sni
            .as_ref()
            .and_then(|t| self.value(t, &key("sni"), parse_server_name));
        let ca = u.ca_file.as_ref().and_then(|t| {
            let path = self.file_path(t, &key("ca_file"))?;
            match crate::tls::load_ca(&path) {
                Ok(ca) => Some(ca),
                Err(e) => {
                    self.error(t.span(), format!("{}: {e}", key("ca_file")));
                    None
                }
            }
        });
        let connect_timeout = self.duration(
            u.connect_timeout.as_ref().or(d.connect_timeout.as_ref()),
            &key("connect_timeout"),
            Duration::from_secs(1),
        );
        let response_timeout = self.duration(
            u.response_timeout.as_ref().or(d.response_timeout.as_ref()),
            &key("response_timeout"),
            Duration::from_secs(15),
        );
        let (h, dh) = (&u.health, &d.health);
        let probe_host = h
            .host
            .as_ref()
            .and_then(|t| self.value(t, &key("health.host"), parse_host_header));
        if let Some(t) = &dh.host {
            self.error(
                t.span(),
                "defaults.health.host: set the probe Host per upstream".into(),
            );
        }
        let path = match h.path.as_ref().or(dh.path.as_ref()) {
            Some(t) => self.value(t, &key("health.path"), |s| {
                if s.starts_with('/') {
                    Ok(s.to_owned())
                } else {
                    Err(format!("{s:?} must start with '/'"))
                }
            }),
            None => Some("/healthz".to_owned()),
        };
        let expect_status = match h.expect_status.as_ref().or(dh.expect_status.as_ref()) {
            Some(t) => self.value(t, &key("health.expect_status"), StatusSet::parse_list),
            None => StatusSet::parse_list("200-399").ok(),
        };
        let interval = self.duration(
            h.interval.as_ref().or(dh.interval.as_ref()),
            &key("health.interval"),
            Duration::from_secs(1),
        );
        let timeout = self.duration(
            h.timeout.as_ref().or(dh.timeout.as_ref()),
            &key("health.timeout"),
            Duration::from_millis(800),
        );
        let rise = self.count(
            h.rise.as_ref().or(dh.rise.as_ref()),
            &key("health.rise"),
            1,
            100,
            2,
        );
        let fall = self.count(
            h.fall.as_ref().or(dh.fall.as_ref()),
            &key("health.fall"),
            1,
            100,
            2,
        );
        let (p, dp) = (&u.passive, &d.passive);
        let consecutive_failures = self.count(
            p.consecutive_failures
                .as_ref()
                .or(dp.consecutive_failures.as_ref()),
            &key("passive.consecutive_failures"),
            0,
            1000,
            3,
        );
        let ejection = self.duration(
            p.ejection.as_ref().or(dp.ejection.as_ref()),
            &key("passive.ejection"),
            Duration::from_secs(10),
        );

        let address = address?;
        let sni = match address.scheme {
            Scheme::Http => None,
            Scheme::Https => sni_text
                .or_else(|| host.as_deref().map(strip_port).map(str::to_owned))
                .or_else(|| Some(address.host.clone()))
                .filter(|s| s.parse::<std::net::IpAddr>().is_err()),
        };
        let probe_host = probe_host
            .or_else(|| host.clone())
            .unwrap_or_else(|| address.authority_for_host());
        Some(UpstreamSpec {
            name: n,
            host,
            sni,
            ca,
            connect_timeout,
            response_timeout,
            health: HealthSpec {
                path: path?,
                interval,
                timeout,
                rise,
                fall,
                expect_status: expect_status?,
                host: probe_host,
            },
            passive: PassiveSpec {
                consecutive_failures,
                ejection,
            },
            address,
        })
    }

    fn routes(&mut self, routes: &[Spanned<file::Route>], known: &HashSet<&str>) -> Vec<RouteSpec> {
        let mut names = HashSet::new();
        let mut seen_pairs: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut out = Vec::new();
        for r in routes {
            let r = r.get_ref();
            let name = self.text(&r.name, "routes.name").unwrap_or_default();
            let ctx = format!("route {name:?}");
            if name.is_empty() {
                self.error(r.name.span(), "route name must not be empty".into());
            } else if !names.insert(name.clone()) {
                self.error(r.name.span(), format!("{ctx}: duplicate route name"));
            }
            let path_prefix = match &r.path_prefix {
                None => "/".to_owned(),
                Some(t) => self
                    .value(t, &format!("{ctx}: path_prefix"), |s| {
                        if s.starts_with('/') {
                            Ok(s.to_owned())
                        } else {
                            Err(format!("{s:?} must start with '/'"))
                        }
                    })
                    .unwrap_or_else(|| "/".to_owned()),
            };
            if r.hosts.get_ref().is_empty() {
                self.error(r.hosts.span(), format!("{ctx}: hosts must not be empty"));
            }
            let mut hosts = Vec::new();
            for h in r.hosts.get_ref() {
                let Some(pattern) = self.value(h, &format!("{ctx}: host"), parse_host_pattern)
                else {
                    continue;
                };
                let pair = (pattern.to_string(), path_prefix.clone());
                match seen_pairs.get(&pair) {
                    Some(other) => self.error(
                        h.span(),
                        format!(
                            "{ctx}: host {} with prefix {:?} is already routed by route {other:?}",
                            pair.0, pair.1
                        ),
                    ),
                    None => {
                        seen_pairs.insert(pair, name.clone());
                    }
                }
                hosts.push(pattern);
            }
            let tiers = self.tiers(&r.tiers, &ctx, known);
            let failback_delay = match &r.failback_delay {
                None => Duration::from_secs(10),
                Some(t) => self
                    .value(t, &format!("{ctx}: failback_delay"), units::duration)
                    .unwrap_or_default(),
            };
            let retry = self.retry(&r.retry, &ctx);
            out.push(RouteSpec {
                name,
                hosts,
                path_prefix,
                tiers,
                failback_delay,
                retry,
            });
        }
        out
    }

    fn tiers(
        &mut self,
        tiers: &Spanned<Vec<TierEntry>>,
        ctx: &str,
        known: &HashSet<&str>,
    ) -> Vec<Vec<String>> {
        if tiers.get_ref().is_empty() {
            self.error(tiers.span(), format!("{ctx}: tiers must not be empty"));
        }
        let mut used = HashSet::new();
        let mut out = Vec::new();
        for entry in tiers.get_ref() {
            let names: Vec<&Text> = match entry {
                TierEntry::One(t) => vec![t],
                TierEntry::Group(g) => {
                    if g.is_empty() {
                        self.error(
                            tiers.span(),
                            format!("{ctx}: a tier group must not be empty"),
                        );
                    }
                    g.iter().collect()
                }
            };
            let mut tier = Vec::new();
            for t in names {
                let Some(n) = self.text(t, &format!("{ctx}: tier")) else {
                    continue;
                };
                if !known.contains(n.as_str()) {
                    self.error(
                        t.span(),
                        format!("{ctx}: tier {n:?} is not a defined upstream"),
                    );
                } else if !used.insert(n.clone()) {
                    self.error(
                        t.span(),
                        format!("{ctx}: upstream {n:?} appears in more than one place in tiers"),
                    );
                }
                tier.push(n);
            }
            out.push(tier);
        }
        out
    }

    fn retry(&mut self, r: &file::Retry, ctx: &str) -> RetrySpec {
        let max = i64::try_from(MAX_ATTEMPTS).unwrap_or(16);
        let attempts = self.count(
            r.attempts.as_ref(),
            &format!("{ctx}: retry.attempts"),
            1,
            max,
            3,
        ) as usize;
        let mut on_status = StatusSet::default();
        match &r.on_status {
            None => {
                for (lo, hi) in [(502, 504), (520, 530)] {
                    let _always_valid = on_status.add_range(lo, hi);
                }
            }
            Some(list) => {
                for v in list {
                    let res = match v.get_ref() {
                        Scalar::Int(n) => u16::try_from(*n)
                            .map_err(|_| format!("invalid status {n}"))
                            .and_then(|c| on_status.add_range(c, c)),
                        Scalar::Str(s) => on_status.add_text(s),
                    };
                    if let Err(e) = res {
                        self.error(v.span(), format!("{ctx}: retry.on_status: {e}"));
                    }
                }
            }
        }
        let buffer_body = self.size(
            r.buffer_body.as_ref(),
            &format!("{ctx}: retry.buffer_body"),
            64 << 10,
        );
        RetrySpec {
            attempts,
            on_status,
            buffer_body: usize::try_from(buffer_body).unwrap_or(usize::MAX),
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Parses `scheme://host[:port]` (no path, query or user info).
pub fn parse_address(s: &str) -> Result<Address, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| format!("invalid address {s:?}: expected scheme://host[:port]"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(format!("address {s:?}: scheme must be http:// or https://")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("address {s:?}: missing host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("address {s:?}: user info is not allowed"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "address {s:?}: must not have a path; routes forward the request's path"
        ));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(format!("address {s:?}: missing host"));
    }
    let port = authority.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    Ok(Address { scheme, host, port })
}

fn parse_host_header(s: &str) -> Result<String, String> {
    if s.is_empty()
        || http::HeaderValue::from_str(s).is_err()
        || s.parse::<http::uri::Authority>().is_err()
    {
        return Err(format!("invalid host {s:?}"));
    }
    Ok(s.to_owned())
}

fn parse_server_name(s: &str) -> Result<String, String> {
    rustls::pki_types::ServerName::try_from(s.to_owned())
        .map(|_| s.to_owned())
        .map_err(|_| format!("invalid TLS server name {s:?}"))
}

fn parse_host_pattern(s: &str) -> Result<HostPattern, String> {
    let lower = s.trim().to_ascii_lowercase();
    if lower == "*" {
        return Ok(HostPattern::Any);
    }
    let (body, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    let ok = !body.is_empty()
        && !body.starts_with('.')
        && !body.ends_with('.')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !ok {
        return Err(format!(
            "invalid host pattern {s:?}: use \"name\", \"*.suffix\" or \"*\" (no port)"
        ));
    }
    Ok(if wildcard {
        HostPattern::Suffix(format!(".{body}"))
    } else {
        HostPattern::Exact(body.to_owned())
    })
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
