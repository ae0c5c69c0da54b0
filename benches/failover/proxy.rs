//! The proxy under test, as a child process: bascule (`bascule run -c FILE --threads 1`) or,
//! for comparison, HAProxy (`haproxy -db -f FILE`) or nginx (`nginx -c FILE`, `nginx.rs`), each
//! on a config generated for the three fake upstreams. Only the child it started is ever signalled or killed, through its handle.
//!
//! bascule listens on 127.0.0.1:0 (HTTP and admin) and says which ports it got in its log
//! (`listening` lines, read by `listening`). HAProxy and nginx cannot say which port they bound,
//! so for them a free port is probed (bound on :0, released, given to the proxy).

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bascule::demo::{SimUpstream, PROBE_PATH as HEALTH_PATH};

use crate::{listening, nginx};

/// Which proxy to measure.
#[derive(Clone, Debug)]
pub enum Target {
    /// The bascule binary at `bin`; `extra_toml` is appended to its config verbatim.
    Bascule {
        bin: PathBuf,
        extra_toml: Option<String>,
    },
    /// `haproxy` from the PATH.
    Haproxy,
    /// `nginx` from the PATH.
    Nginx,
}

impl Target {
    /// "bascule" or "haproxy", for the report.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Bascule { .. } => "bascule",
            Target::Haproxy => "haproxy",
            Target::Nginx => "nginx",
        }
    }
}

/// The three fake upstreams, in tier order.
pub struct Upstreams<'a> {
    pub primary: &'a SimUpstream,
    pub secondary: &'a SimUpstream,
    pub origin: &'a SimUpstream,
}

/// A running proxy.
pub struct Proxy {
    /// Where it serves HTTP (for bascule, known once `wait_ready` has read its log).
    pub addr: SocketAddr,
    /// bascule's stdout, where it says which ports it got; None for HAProxy.
    log: Option<PathBuf>,
    /// How long after the primary recovers the proxy should send it traffic again, from the
    /// config: rise × interval (+ failback_delay for bascule).
    pub expected_failback: Option<Duration>,
    child: Child,
    stderr: PathBuf,
}

impl Proxy {
    /// Writes the config into `dir`, validates it (HAProxy), and starts the proxy with its
    /// stdout and stderr in files there.
    pub fn start(target: &Target, dir: &Path, ups: &Upstreams) -> Result<Proxy, String> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, log, mut command, expected_failback) = match target {
            Target::Bascule { bin, extra_toml } => {
                let text = bascule_config(any, any, ups, extra_toml.as_deref());
                let file = write(dir, "bascule.toml", &text)?;
                let mut c = Command::new(bin);
                c.arg("run").arg("-c").arg(&file).args(["--threads", "1"]);
                c.env("BASCULE_LOG", listening::log_filter());
                (
                    any,
                    Some(dir.join("stdout.log")),
                    c,
                    bascule_failback(&text),
                )
            }
            Target::Haproxy => {
                let addr = free_port()?;
                let file = write(dir, "haproxy.cfg", &haproxy_config(addr, ups))?;
                check_haproxy(&file)?;
                let mut c = Command::new("haproxy");
                c.arg("-db").arg("-f").arg(&file);
                // HAProxy has no failback delay: a server is used as soon as it is up again.
                (addr, None, c, Some(HAPROXY_RISE * HAPROXY_INTER))
            }
            Target::Nginx => {
                let addr = free_port()?;
                let file = write(dir, "nginx.conf", &nginx::config(addr, dir, ups))?;
                nginx::check(&file)?;
                let mut c = Command::new("nginx");
                c.arg("-c").arg(&file);
                // Passive only: a failed server is tried again after fail_timeout.
                (addr, None, c, Some(nginx::FAIL_TIMEOUT))
            }
        };
        let stdout = create(dir, "stdout.log")?;
        let stderr_path = dir.join("stderr.log");
        let stderr = create(dir, "stderr.log")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", target.name()))?;
        Ok(Proxy {
            addr,
            log,
            expected_failback,
            child,
            stderr: stderr_path,
        })
    }

    /// Waits until the proxy listens (at most `bound`): bascule until its log names its HTTP
    /// port (the socket is then listening), HAProxy until its port accepts connections.
    pub async fn wait_ready(&mut self, bound: Duration) -> Result<(), String> {
        if let Some(log) = self.log.clone() {
            let child = &mut self.child;
            let exited = || !matches!(child.try_wait(), Ok(None));
            let found = listening::wait_for(&log, bound, exited, |l| !l.http.is_empty()).await;
            if let Some(found) = found {
                self.addr = found.http[0];
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early ({status}): {}", self.stderr_tail()));
            }
            return Err(format!("no listening line in its log after {bound:?}"));
        }
        let deadline = Instant::now() + bound;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited early ({status}): {}", self.stderr_tail()));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not answering on {} after {bound:?}", self.addr));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s.
    pub async fn stop(mut self) -> Result<ExitStatus, String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!(
                "had already exited ({status}): {}",
                self.stderr_tail()
            ));
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits in pid_t");
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (so the
        // pid cannot have been reused), and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill().map_err(|e| format!("cannot kill: {e}"))?;
        let status = self.child.wait().map_err(|e| format!("cannot reap: {e}"))?;
        Err(format!(
            "did not exit within 5 s of SIGTERM; killed ({status})"
        ))
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl Drop for Proxy {
    /// A proxy not stopped (the harness failed half-way) is killed rather than left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _killed = self.child.kill();
            let _reaped = self.child.wait();
        }
    }
}

/// The bascule config: everything the scenarios do not need is left at its default. The route
/// comes last, so bare keys at the top of `extra` (e.g. `failback_delay = "2s"`) belong to it.
fn bascule_config(
    addr: SocketAddr,
    admin: SocketAddr,
    ups: &Upstreams,
    extra: Option<&str>,
) -> String {
    format!(
        "[listen]\nhttp = [\"{addr}\"]\ndebug_headers = true\n\n\
         [admin]\nlisten = \"{admin}\"\n\n\
         [log]\naccess = false\n\n\
         [upstreams.primary]\naddress = \"{}\"\nrole = \"cdn\"\n\n\
         [upstreams.secondary]\naddress = \"{}\"\nrole = \"cdn\"\n\n\
         [upstreams.origin]\naddress = \"{}\"\n\n\
         [[routes]]\nname = \"all\"\nhosts = [\"*\"]\ntiers = [\"primary\", \"secondary\", \"origin\"]\n\n\
         # --extra-toml, appended verbatim\n{}\n",
        ups.primary.address(),
        ups.secondary.address(),
        ups.origin.address(),
        extra.unwrap_or(""),
    )
}

/// rise × interval + failback_delay, as the config sets them for the primary and the route
/// (defaults 2 × 1 s + 10 s); None if the config cannot be read that way.
fn bascule_failback(config: &str) -> Option<Duration> {
    let table: toml::Table = config.parse().ok()?;
    let get = |path: &[&str]| -> Option<toml::Value> {
        let mut value = table.get(path[0])?;
        for key in &path[1..] {
            value = value.get(key)?;
        }
        Some(value.clone())
    };
    let pick = |key: &str| {
        get(&["upstreams", "primary", "health", key]).or_else(|| get(&["defaults", "health", key]))
    };
    let rise = match pick("rise") {
        Some(v) => u32::try_from(v.as_integer()?).ok()?,
        None => 2,
    };
    let duration = |v: Option<toml::Value>, default: u64| match v {
        Some(v) => humantime::parse_duration(v.as_str()?).ok(),
        None => Some(Duration::from_secs(default)),
    };
    let interval = duration(pick("interval"), 1)?;
    let route = table.get("routes")?.as_array()?.first()?;
    let delay = duration(route.get("failback_delay").cloned(), 10)?;
    Some(interval * rise + delay)
}

const HAPROXY_RISE: u32 = 2;
const HAPROXY_INTER: Duration = Duration::from_secs(1);

/// The HAProxy equivalent: the primary, then the first usable backup (no `allbackups`), i.e.
/// secondary before origin. `retry-on` cannot name 520 (HAProxy 2.6 accepts only 401, 403,
/// 404, 408, 425, 500, 501, 502, 503, 504), so a 520 reaches the client until the health
/// check takes the primary out.
fn haproxy_config(addr: SocketAddr, ups: &Upstreams) -> String {
    let check = format!(
        "check inter {}s fall 2 rise {HAPROXY_RISE}",
        HAPROXY_INTER.as_secs()
    );
    format!(
        "# Generated by benches/failover: HAProxy in the same role as bascule.\n\
         global\n    nbthread 1\n\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout server 15s\n    timeout client 60s\n\
         \x20   retries 2\n    option redispatch 1\n    retry-on all-retryable-errors 503 504\n\
         \x20   http-reuse always\n\n\
         frontend bench\n    bind {addr}\n    default_backend tiers\n\n\
         backend tiers\n    option httpchk GET {HEALTH_PATH}\n\
         \x20   http-response set-header x-bascule-upstream %s\n\
         \x20   server primary {} {check}\n\
         \x20   server secondary {} {check} backup\n\
         \x20   server origin {} {check} backup\n",
        ups.primary.addr, ups.secondary.addr, ups.origin.addr,
    )
}

/// `haproxy -c -f FILE`: the config must be valid before anything is measured.
fn check_haproxy(file: &Path) -> Result<(), String> {
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run haproxy -c (is HAProxy installed?): {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "haproxy -c -f {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// A port of 127.0.0.1 that was free a moment ago (bound on :0, then released): for HAProxy,
/// which cannot report the port it got.
fn free_port() -> Result<SocketAddr, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn create(dir: &Path, name: &str) -> Result<File, String> {
    let path = dir.join(name);
    File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}
