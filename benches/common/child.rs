//! The bascule under measurement, as a child process on a generated config (`bascule run -c
//! FILE`, with `--threads N` when asked), its stdout and stderr in files beside the config.
//! Only this child is ever signalled or killed, through its handle or its own PID. It listens
//! on 127.0.0.1:0; the ports it got are read from its log (`tests/support/listening.rs`).

#[path = "../../tests/support/listening.rs"]
mod listening;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release binary `cargo bench` builds (`target/release/bascule`).
pub fn default_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bascule"))
}

/// A running bascule.
pub struct Bascule {
    /// Where it serves plain HTTP.
    pub addr: SocketAddr,
    /// Where its admin API listens.
    pub admin: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Bascule {
    /// Writes `config(http, admin)` to `dir/bascule.toml` (both `127.0.0.1:0`) and starts `bin`
    /// on it; its bound addresses are known once [`Bascule::wait_ready`] returns.
    pub fn start(
        bin: &Path,
        dir: &Path,
        threads: Option<usize>,
        config: impl Fn(SocketAddr, SocketAddr) -> String,
    ) -> Result<Bascule, String> {
        if !bin.exists() {
            return Err(format!(
                "{} not found: build it (cargo build --release) or pass --bin",
                bin.display()
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (addr, admin) = (any, any);
        let file = dir.join("bascule.toml");
        std::fs::write(&file, config(addr, admin))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        let log = |name: &str| {
            File::create(dir.join(name)).map_err(|e| format!("{}/{name}: {e}", dir.display()))
        };
        let mut command = Command::new(bin);
        command.arg("run").arg("-c").arg(&file);
        if let Some(n) = threads {
            command.args(["--threads", &n.to_string()]);
        }
        let child = command
            .env("BASCULE_LOG", listening::log_filter())
            .stdin(Stdio::null())
            .stdout(log("stdout.log")?)
            .stderr(log("stderr.log")?)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        Ok(Bascule {
            addr,
            admin,
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until it has announced its HTTP and admin listeners and accepts connections (at
    /// most `bound`).
    pub async fn wait_ready(&mut self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        let child = &mut self.child;
        let found = listening::wait_for(
            &self.dir.join("stdout.log"),
            bound,
            || !matches!(child.try_wait(), Ok(None)),
            |l| l.has(1, 0, true),
        )
        .await
        .ok_or_else(|| format!("no listeners announced: see {}", self.dir.display()))?;
        self.addr = found.http[0];
        self.admin = found.admin.unwrap_or(self.admin);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "exited early ({status}): see {}",
                    self.dir.display()
                ));
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

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; returns how it ended.
    pub async fn stop(mut self) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits in pid_t");
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (so the
        // pid cannot have been reused), and a valid signal number.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited ({status})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
        "killed: did not exit within 5 s of SIGTERM".into()
    }
}

impl Drop for Bascule {
    /// A child not stopped (the harness failed half-way) is killed rather than left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _killed = self.child.kill();
            let _reaped = self.child.wait();
        }
    }
}

/// A work directory for `name` under cargo's target tmp dir.
pub fn work_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}
