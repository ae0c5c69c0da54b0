//! `[listen]`, `[admin]`, `[limits]` and `[log]`.

use std::net::SocketAddr;

use toml::Spanned;

use super::super::defaults;
use super::super::file;
use super::super::*;
use super::units;
use super::Checker;

impl Checker<'_> {
    pub(super) fn listen(&mut self, l: &Spanned<file::Listen>) -> Listen {
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

    pub(super) fn admin(&mut self, a: &file::Admin) -> Admin {
        let listen = a
            .listen
            .as_ref()
            .and_then(|t| self.socket_addr(t, "admin.listen"))
            .unwrap_or(defaults::ADMIN_LISTEN);
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
        let metrics_listen = a
            .metrics_listen
            .as_ref()
            .and_then(|t| self.socket_addr(t, "admin.metrics_listen"));
        if let (Some(m), Some(t)) = (metrics_listen, &a.metrics_listen) {
            if enabled && m == listen && m.port() != 0 {
                self.error(
                    t.span(),
                    format!(
                        "admin.metrics_listen: {m} is also admin.listen; give it a port of its own"
                    ),
                );
            }
        }
        Admin {
            enabled,
            listen,
            token,
            hosts,
            metrics_listen,
        }
    }

    pub(super) fn limits(&mut self, l: &file::Limits) -> Limits {
        let max_header_bytes = self.size(
            l.max_header_bytes.as_ref(),
            "limits.max_header_bytes",
            defaults::MAX_HEADER_BYTES,
        );
        if let Some(v) = l
            .max_header_bytes
            .as_ref()
            .filter(|_| max_header_bytes < defaults::MIN_HEADER_BYTES)
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
                defaults::HEADER_TIMEOUT,
            ),
            idle_timeout: self.duration(
                l.idle_timeout.as_ref(),
                "limits.idle_timeout",
                defaults::IDLE_TIMEOUT,
            ),
            shutdown_grace: self.duration(
                l.shutdown_grace.as_ref(),
                "limits.shutdown_grace",
                defaults::SHUTDOWN_GRACE,
            ),
            max_connections: self.count(
                l.max_connections.as_ref(),
                "limits.max_connections",
                1,
                1_000_000,
                defaults::MAX_CONNECTIONS,
            ) as usize,
            body_timeout: self.duration(
                l.body_timeout.as_ref(),
                "limits.body_timeout",
                defaults::BODY_TIMEOUT,
            ),
            send_timeout: self.duration(
                l.send_timeout.as_ref(),
                "limits.send_timeout",
                defaults::SEND_TIMEOUT,
            ),
            max_concurrent_streams: self.count(
                l.max_concurrent_streams.as_ref(),
                "limits.max_concurrent_streams",
                1,
                10_000,
                defaults::MAX_CONCURRENT_STREAMS,
            ),
            max_in_flight_per_connection: self.count(
                l.max_in_flight_per_connection.as_ref(),
                "limits.max_in_flight_per_connection",
                1,
                10_000,
                defaults::MAX_IN_FLIGHT_PER_CONNECTION,
            ) as usize,
            body_buffer_per_connection: usize::try_from(self.size(
                l.body_buffer_per_connection.as_ref(),
                "limits.body_buffer_per_connection",
                defaults::BODY_BUFFER_PER_CONNECTION,
            ))
            .unwrap_or(usize::MAX),
        }
    }

    pub(super) fn cache(&mut self, c: &file::Cache) -> CacheSpec {
        let max_size = self.size(
            c.max_size.as_ref(),
            "cache.max_size",
            defaults::CACHE_MAX_SIZE,
        );
        let max_object = self.size(
            c.max_object.as_ref(),
            "cache.max_object",
            defaults::CACHE_MAX_OBJECT,
        );
        if let Some(v) = c.max_object.as_ref().filter(|_| max_object == 0) {
            self.error(
                v.span(),
                "cache.max_object: must be greater than zero".into(),
            );
        }
        if let Some(v) = c
            .max_object
            .as_ref()
            .filter(|_| max_size > 0 && max_object > max_size)
        {
            self.error(
                v.span(),
                format!("cache.max_object: {max_object} bytes is more than cache.max_size"),
            );
        }
        CacheSpec {
            max_size,
            max_object,
            stale_if_error: match &c.stale_if_error {
                None => defaults::CACHE_STALE_IF_ERROR,
                // "0" is allowed here: no stale copies unless a response asks for them.
                Some(t) => self
                    .value(t, "cache.stale_if_error", units::duration)
                    .unwrap_or(defaults::CACHE_STALE_IF_ERROR),
            },
            lock_timeout: self.duration(
                c.lock_timeout.as_ref(),
                "cache.lock_timeout",
                defaults::CACHE_LOCK_TIMEOUT,
            ),
        }
    }

    pub(super) fn log(&mut self, l: &file::Log) -> Log {
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
}
