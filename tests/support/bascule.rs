//! The real `bascule` binary, started on a generated config in a temp dir, waited for until it
//! accepts connections, and killed (by its PID, through `Child::kill`) when dropped.

use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::upstream::FakeUpstream;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bascule");

/// A directory under cargo's per-target temp dir, removed on drop (kept if the test failed).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory unique to this process and call.
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "bascule-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _stale = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` with `text` inside the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _gone = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A config file for one test: `[listen]` on a free port with `debug_headers = true`, the
/// admin API off, health checks and passive ejection quiet (so only live requests decide),
/// plus whatever the test adds. `admin()` turns the admin API on (a free port) and
/// `defaults(..)` replaces the quiet `[defaults]` with the test's own.
#[derive(Default, Clone)]
pub struct ProxyConfig {
    listen: String,
    limits: String,
    body: String,
    admin: bool,
    admin_lines: String,
    defaults: Option<String>,
    configmap: bool,
    /// `[[tls.certificates]]` (cert, key paths); any makes an HTTPS listener.
    certs: Vec<(PathBuf, PathBuf)>,
    /// The open-files limit (soft and hard) the process starts with.
    nofile: Option<u64>,
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

    /// Lays the config file out as a Kubernetes ConfigMap volume (see `files`).
    pub fn configmap(mut self) -> ProxyConfig {
        self.configmap = true;
        self
    }

    /// Turns the admin API on, on a free loopback port, with extra `[admin]` lines.
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
                     [defaults.passive]\nconsecutive_failures = 0\n"
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

/// A running `bascule run` process.
pub struct Bascule {
    /// Where it serves plain HTTP.
    pub addr: SocketAddr,
    /// Where its admin API listens (when the config enabled it).
    pub admin: SocketAddr,
    /// Where it serves HTTPS (when the config has certificates).
    pub https: SocketAddr,
    child: Child,
    dir: TempDir,
    exit: Option<ExitStatus>,
}

impl Bascule {
    async fn start(config: ProxyConfig) -> Bascule {
        // A free port can be taken by someone else between our probe and bascule's bind; that
        // shows as a bind error, and another port is tried (three times at most).
        for round in 0..3 {
            let ports = Ports {
                http: free_port(),
                admin: free_port(),
                https: free_port(),
            };
            let (addr, admin, https) = (ports.http, ports.admin, ports.https);
            let dir = TempDir::new();
            let text = config.render(&ports);
            let path = if config.configmap {
                super::files::configmap_layout(dir.path(), &text)
            } else {
                dir.write("bascule.toml", &text)
            };
            let mut cmd = Command::new(BIN);
            if let Some(n) = config.nofile {
                use std::os::unix::process::CommandExt as _;
                // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
                unsafe {
                    cmd.pre_exec(move || {
                        let lim = libc::rlimit {
                            rlim_cur: n,
                            rlim_max: n,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                            Ok(())
                        } else {
                            Err(std::io::Error::last_os_error())
                        }
                    });
                }
            }
            let child = cmd
                .arg("run")
                .arg("-c")
                .arg(&path)
                .env_remove("BASCULE_CONFIG")
                .env("BASCULE_LOG", "info,bascule=debug")
                .stdin(Stdio::null())
                .stdout(File::create(dir.path().join("stdout.log")).expect("log file"))
                .stderr(File::create(dir.path().join("stderr.log")).expect("log file"))
                .spawn()
                .expect("spawn bascule");
            let mut b = Bascule {
                addr,
                admin,
                https,
                child,
                dir,
                exit: None,
            };
            match b.wait_ready(Duration::from_secs(10)).await {
                Ok(()) => return b,
                Err(why) if round < 2 && b.logs().contains("cannot listen") => {
                    eprintln!("retrying on another port: {why}");
                }
                Err(why) => panic!("bascule did not start: {why}\n{}", b.logs()),
            }
        }
        unreachable!("the last round returns or panics")
    }

    /// Polls until the listener accepts, the process exits, or `limit` passes.
    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.try_exit() {
                return Err(format!("exited early with {status}"));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return match self.try_exit() {
                    Some(status) => Err(format!("exited early with {status}")),
                    None => Ok(()),
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!("not accepting on {} after {limit:?}", self.addr))
    }

    /// The config file it runs on.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("bascule.toml")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM with `kill -TERM PID`.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP (reload) with `kill -HUP PID`.
    pub fn hup(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} {} failed", self.pid());
    }

    /// Rewrites the config file in place as `config` renders it for this process's ports.
    pub fn rewrite(&self, config: &ProxyConfig) {
        super::files::write_in_place(&self.config_path(), &self.text_of(config));
    }

    /// Replaces the config file by rename-over-write.
    pub fn replace(&self, config: &ProxyConfig) {
        super::files::replace(&self.config_path(), &self.text_of(config));
    }

    /// Swaps a ConfigMap-layout config as the kubelet does.
    pub fn configmap_swap(&self, config: &ProxyConfig) {
        super::files::configmap_swap(self.dir.path(), &self.text_of(config));
    }

    /// The text `config` renders for this process's ports.
    pub fn text_of(&self, config: &ProxyConfig) -> String {
        config.render(&Ports {
            http: self.addr,
            admin: self.admin,
            https: self.https,
        })
    }

    /// The exit status, once the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("try_wait");
        }
        self.exit
    }

    /// Waits (polling, bounded by `limit`) for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if start.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its stdout and stderr so far.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }
}

impl Drop for Bascule {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            // Our own child, by its PID.
            let _already_gone = self.child.kill();
            let _reaped = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("bascule logs:\n{}", self.logs());
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr")
}
