//! The real `bascule` binary, started on a generated config in a temp dir with its listeners
//! on 127.0.0.1:0, waited for until its log says where it listens, and killed (by its PID,
//! through `Child::kill`) when dropped.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::config::{Ports, ProxyConfig};
use super::listening::wait_for;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bascule");

/// A directory under cargo's per-target temp dir, removed on drop (kept if the test failed,
/// until the next test run). A test process stopped by Ctrl-C drops nothing: the first
/// `TempDir` of each later test process removes the directories of test processes that are
/// gone.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory unique to this process and call.
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        SWEPT.call_once(|| bascule::demo::sweep(tmp, "bascule-test-"));
        let dir = tmp.join(format!(
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

/// A running `bascule run` process.
pub struct Bascule {
    /// Where it serves plain HTTP.
    pub addr: SocketAddr,
    /// Where its admin API listens (when the config enabled it).
    pub admin: SocketAddr,
    /// Where its metrics listener listens (when the config has `metrics_listen`).
    pub metrics: Option<SocketAddr>,
    /// Where it serves HTTPS (when the config has certificates).
    pub https: SocketAddr,
    /// The addresses its config asks for (127.0.0.1:0), which reloads keep.
    requested: Ports,
    /// The config it was started on.
    config: ProxyConfig,
    child: Child,
    dir: TempDir,
    exit: Option<ExitStatus>,
}

impl Bascule {
    /// Starts `bascule run` with every listener on 127.0.0.1:0 and reads the ports it got from
    /// its log (see `listening`): nothing is probed, so no other process can take a port in
    /// between.
    pub(super) async fn start(config: ProxyConfig) -> Bascule {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let requested = Ports {
            http: any,
            admin: any,
            https: any,
        };
        let dir = TempDir::new();
        let text = config.render(&requested);
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
        cmd.envs(config.env.iter().map(|(k, v)| (k, v)));
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
        let https = !config.certs.is_empty();
        let mut b = Bascule {
            addr: any,
            admin: any,
            metrics: None,
            https: any,
            requested,
            config,
            child,
            dir,
            exit: None,
        };
        match b.wait_listening(https, Duration::from_secs(10)).await {
            Ok(()) => b,
            Err(why) => panic!("bascule did not start: {why}\n{}", b.logs()),
        }
    }

    /// Waits until the log has announced every listener the config asks for (the sockets are
    /// then bound and listening), the process exits, or `limit` passes; records the addresses.
    async fn wait_listening(&mut self, https: bool, limit: Duration) -> Result<(), String> {
        let log = self.dir.path().join("stdout.log");
        let admin = self.config.admin;
        let child = &mut self.child;
        let exited = || !matches!(child.try_wait(), Ok(None));
        let found = wait_for(&log, limit, exited, |l| l.has(1, usize::from(https), admin)).await;
        if let Some(status) = self.try_exit() {
            return Err(format!("exited early with {status}"));
        }
        let found =
            found.ok_or_else(|| format!("no listening lines in its log after {limit:?}"))?;
        self.addr = found.http[0];
        self.https = found.https.first().copied().unwrap_or(self.https);
        self.admin = found.admin.unwrap_or(self.admin);
        self.metrics = found.metrics;
        Ok(())
    }

    /// The config file it runs on.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("bascule.toml")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGHUP (reload).
    pub fn hup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers; the child is ours and not yet reaped.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
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

    /// The text `config` renders for this process: its listeners as they were asked for
    /// (127.0.0.1:0), so that a reload sees no listener change (those need a restart).
    pub fn text_of(&self, config: &ProxyConfig) -> String {
        config.render(&self.requested)
    }

    /// A copy of its config with the addresses it is bound to, for tools that read a config to
    /// find the process (`bascule health -c`); written beside the config, not watched.
    pub fn bound_config(&self) -> PathBuf {
        let text = self.config.render(&Ports {
            http: self.addr,
            admin: self.admin,
            https: self.https,
        });
        self.dir.write("bound.toml", &text)
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
