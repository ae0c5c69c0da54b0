//! The config file of one test's bascule: `ProxyConfig`, a builder that renders the TOML for the
//! listener addresses it is given.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::bascule::Bascule;
use super::upstream::FakeUpstream;

/// A config file for one test: `[listen]` on 127.0.0.1:0 with `debug_headers = true`, the
/// admin API off, health checks and passive ejection quiet, both rules (so only live requests decide),
/// plus whatever the test adds. `admin()` turns the admin API on (also on port 0) and
/// `defaults(..)` replaces the quiet `[defaults]` with the test's own.
#[derive(Default, Clone)]
pub struct ProxyConfig {
    pub(super) listen: String,
    pub(super) limits: String,
    pub(super) body: String,
    pub(super) admin: bool,
    pub(super) admin_lines: String,
    pub(super) defaults: Option<String>,
    pub(super) configmap: bool,
    /// `[[tls.certificates]]` (cert, key paths); any makes an HTTPS listener.
    pub(super) certs: Vec<(PathBuf, PathBuf)>,
    /// The open-files limit (soft and hard) the process starts with.
    pub(super) nofile: Option<u64>,
    /// Environment variables the process starts with.
    pub(super) env: Vec<(String, String)>,
}

/// The ports a test proxy listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Plain HTTP.
    pub http: SocketAddr,
    /// The admin API (when enabled).
    pub admin: SocketAddr,
    /// HTTPS (when certificates are configured).
    pub https: SocketAddr,
}

impl ProxyConfig {
    /// The base config with no upstreams or routes.
    pub fn new() -> ProxyConfig {
        ProxyConfig::default()
    }

    /// Adds lines to `[listen]`, e.g. `trusted_proxies = ["127.0.0.1/32"]`.
    pub fn listen(mut self, lines: &str) -> ProxyConfig {
        self.listen.push_str(lines);
        self.listen.push('\n');
        self
    }

    /// Adds lines to `[limits]`, e.g. `header_timeout = "500ms"`.
    pub fn limits(mut self, lines: &str) -> ProxyConfig {
        self.limits.push_str(lines);
        self.limits.push('\n');
        self
    }

    /// Adds a `[[tls.certificates]]` entry (and with the first, an HTTPS listener).
    pub fn certificate(mut self, cert: &Path, key: &Path) -> ProxyConfig {
        self.certs.push((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// Starts the process with at most `n` open files (soft and hard limit, as `prlimit`).
    pub fn open_files(mut self, n: u64) -> ProxyConfig {
        self.nofile = Some(n);
        self
    }

    /// Starts the process with the environment variable `name` set to `value`.
    pub fn env(mut self, name: &str, value: &str) -> ProxyConfig {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Lays the config file out as a Kubernetes ConfigMap volume (see `files`).
    pub fn configmap(mut self) -> ProxyConfig {
        self.configmap = true;
        self
    }

    /// Turns the admin API on, on a loopback port of its own, with extra `[admin]` lines.
    pub fn admin(mut self, lines: &str) -> ProxyConfig {
        self.admin = true;
        self.admin_lines = lines.to_owned();
        self
    }

    /// Replaces the quiet defaults: `text` is everything from `[defaults]` on (its tables
    /// included), e.g. `"[defaults.health]\ninterval = \"200ms\""`; an empty `[defaults]`
    /// header is added first.
    pub fn defaults(mut self, text: &str) -> ProxyConfig {
        self.defaults = Some(text.to_owned());
        self
    }

    /// `[upstreams.NAME]` pointing at `up`.
    pub fn upstream(self, name: &str, up: &FakeUpstream) -> ProxyConfig {
        self.upstream_with(name, up, "")
    }

    /// `[upstreams.NAME]` pointing at `up`, with extra keys (e.g. `host = "..."`).
    pub fn upstream_with(self, name: &str, up: &FakeUpstream, lines: &str) -> ProxyConfig {
        self.upstream_at(name, &up.address(), lines)
    }

    /// `[upstreams.NAME]` at any address (e.g. a socket the test holds itself), with extra
    /// keys.
    pub fn upstream_at(mut self, name: &str, address: &str, lines: &str) -> ProxyConfig {
        let _ = writeln!(
            self.body,
            "\n[upstreams.{name}]\naddress = \"{address}\"\n{lines}"
        );
        self
    }

    /// `[upstreams.NAME]` for each fake (named as it names itself) and one route `route` for
    /// every host and path over them as tiers, in that order, with `extra` after its keys.
    pub fn one_route(self, route: &str, tiers: &[&FakeUpstream], extra: &str) -> ProxyConfig {
        let names: Vec<String> = tiers.iter().map(|u| format!("{:?}", u.name)).collect();
        let tiers_toml = format!("[{}]", names.join(", "));
        tiers
            .iter()
            .fold(self, |c, u| c.upstream(&u.name, u))
            .route_with(route, &["*"], "/", &tiers_toml, extra)
    }

    /// A `[[routes]]` entry; `tiers` is TOML, e.g. `["cdn", ["o1", "o2"]]`.
    pub fn route(self, name: &str, hosts: &[&str], prefix: &str, tiers: &str) -> ProxyConfig {
        self.route_with(name, hosts, prefix, tiers, "")
    }

    /// A `[[routes]]` entry with extra TOML after its keys (e.g. a `[routes.retry]` table).
    pub fn route_with(
        mut self,
        name: &str,
        hosts: &[&str],
        prefix: &str,
        tiers: &str,
        extra: &str,
    ) -> ProxyConfig {
        let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
        let _ = writeln!(
            self.body,
            "\n[[routes]]\nname = \"{name}\"\nhosts = [{}]\npath_prefix = \"{prefix}\"\ntiers = {tiers}\n{extra}",
            hosts.join(", ")
        );
        self
    }

    /// The file's text for a proxy listening on `ports`.
    pub fn render(&self, ports: &Ports) -> String {
        let (addr, admin) = (ports.http, ports.admin);
        let mut tls = String::new();
        for (cert, key) in &self.certs {
            let _ = write!(
                tls,
                "\n[[tls.certificates]]\ncert = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            );
        }
        let https = if self.certs.is_empty() {
            String::new()
        } else {
            format!("https = [\"{}\"]\n", ports.https)
        };
        let admin = if self.admin {
            format!("[admin]\nlisten = \"{admin}\"\n{}\n", self.admin_lines)
        } else {
            "[admin]\nenabled = false\n".to_owned()
        };
        let defaults = match &self.defaults {
            Some(d) => format!("[defaults]\n{d}\n"),
            None => "[defaults]\nconnect_timeout = \"1s\"\n\
                     [defaults.health]\ninterval = \"60s\"\nfall = 100\n\
                     [defaults.passive]\nconsecutive_failures = 0\nmin_requests = 0\n"
                .to_owned(),
        };
        format!(
            "[listen]\nhttp = [\"{addr}\"]\n{https}debug_headers = true\n{}\n{admin}\n\
             [limits]\n{}\n{tls}\n{defaults}{}",
            self.listen, self.limits, self.body
        )
    }

    /// Writes the config and starts `bascule run` on it.
    pub async fn start(self) -> Bascule {
        Bascule::start(self).await
    }
}
