//! Semantic checks: turns the serde mirror (`file`) into a typed [`Config`], collecting every
//! error of the file with its position. A syntax or schema error is reported alone (serde stops
//! there); past that, all errors are reported together.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::file::{self, Scalar, Text};
use super::units;
use super::*;

mod route;
mod sections;
mod upstream;

pub use upstream::parse_address;

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

    /// A share (a TOML float or integer) that `ok` accepts; `range` says which, for the error.
    fn share(
        &mut self,
        v: Option<&Spanned<f64>>,
        key: &str,
        (ok, range): (fn(f64) -> bool, &str),
        default: f64,
    ) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if !ok(x) {
            self.error(v.span(), format!("{key}: must be {range}, got {x}"));
            return default;
        }
        x
    }

    /// `[defaults.passive] window`: whole seconds, 1 s to [`defaults::MAX_WINDOW`].
    fn window(&mut self, t: Option<&Text>, key: &str) -> Duration {
        let d = self.duration(t, key, defaults::WINDOW);
        let whole = d.subsec_nanos() == 0;
        if let (Some(t), false) = (t, whole && d <= defaults::MAX_WINDOW) {
            let max = defaults::MAX_WINDOW.as_secs();
            self.error(
                t.span(),
                format!("{key}: must be whole seconds, 1s to {max}s"),
            );
            return defaults::WINDOW;
        }
        d
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
        let cache = self.cache(&raw.cache);
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
            cache,
            certificates,
            upstreams,
            routes,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod section7_tests;
