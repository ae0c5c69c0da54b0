//! `[upstreams.NAME]` with `[defaults]` applied.

use super::super::defaults;
use super::super::file::{self, Text};
use super::super::*;
use super::Checker;

impl Checker<'_> {
    pub(super) fn upstream(
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
        let role = match u.role.as_ref() {
            None => Role::default(),
            Some(t) => self
                .value(t, &key("role"), |s| match s {
                    "cdn" => Ok(Role::Cdn),
                    "origin" => Ok(Role::Origin),
                    other => Err(format!("{other:?} is not \"cdn\" or \"origin\"")),
                })
                .unwrap_or_default(),
        };
        let origin_marker = u
            .origin_marker
            .as_ref()
            .or(d.origin_marker.as_ref())
            .and_then(|t| self.value(t, &key("origin_marker"), parse_marker))
            .flatten();
        let connect_timeout = self.duration(
            u.connect_timeout.as_ref().or(d.connect_timeout.as_ref()),
            &key("connect_timeout"),
            defaults::CONNECT_TIMEOUT,
        );
        let response_timeout = self.duration(
            u.response_timeout.as_ref().or(d.response_timeout.as_ref()),
            &key("response_timeout"),
            defaults::RESPONSE_TIMEOUT,
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
            None => Some(defaults::HEALTH_PATH.to_owned()),
        };
        let expect_status = match h.expect_status.as_ref().or(dh.expect_status.as_ref()) {
            Some(t) => self.value(t, &key("health.expect_status"), StatusSet::parse_list),
            None => StatusSet::parse_list(defaults::HEALTH_EXPECT_STATUS).ok(),
        };
        let interval = self.duration(
            h.interval.as_ref().or(dh.interval.as_ref()),
            &key("health.interval"),
            defaults::HEALTH_INTERVAL,
        );
        let timeout = self.duration(
            h.timeout.as_ref().or(dh.timeout.as_ref()),
            &key("health.timeout"),
            defaults::HEALTH_TIMEOUT,
        );
        let rise = self.count(
            h.rise.as_ref().or(dh.rise.as_ref()),
            &key("health.rise"),
            1,
            100,
            defaults::HEALTH_RISE,
        );
        let fall = self.count(
            h.fall.as_ref().or(dh.fall.as_ref()),
            &key("health.fall"),
            1,
            100,
            defaults::HEALTH_FALL,
        );
        let (p, dp) = (&u.passive, &d.passive);
        let consecutive_failures = self.count(
            p.consecutive_failures
                .as_ref()
                .or(dp.consecutive_failures.as_ref()),
            &key("passive.consecutive_failures"),
            0,
            1000,
            defaults::CONSECUTIVE_FAILURES,
        );
        let ejection = self.duration(
            p.ejection.as_ref().or(dp.ejection.as_ref()),
            &key("passive.ejection"),
            defaults::EJECTION,
        );
        let failure_rate = self.share(
            p.failure_rate.as_ref().or(dp.failure_rate.as_ref()),
            &key("passive.failure_rate"),
            (|x| x > 0.0 && x <= 1.0, "above 0 and at most 1"),
            defaults::FAILURE_RATE,
        );
        let min_requests = self.count(
            p.min_requests.as_ref().or(dp.min_requests.as_ref()),
            &key("passive.min_requests"),
            0,
            1_000_000,
            defaults::MIN_REQUESTS,
        );
        let window = self.window(
            p.window.as_ref().or(dp.window.as_ref()),
            &key("passive.window"),
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
            role,
            origin_marker,
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
                failure_rate,
                min_requests,
                window,
            },
            address,
        })
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

/// An `origin_marker`: a header name ("" means none).
fn parse_marker(s: &str) -> Result<Option<http::HeaderName>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    http::HeaderName::from_bytes(s.as_bytes())
        .map(Some)
        .map_err(|_| format!("{s:?} is not a valid header name"))
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
