//! What `bascule demo` prints once its sockets are bound, and where its config lives: a
//! directory of its own under the temp dir, removed when the demo ends (Ctrl-C included), and
//! swept of the directories that demos killed outright left behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The demo's banner: where the site, the dashboard and the config are, and commands to try.
/// `exe` is how to run this binary from where the demo was started (see [`invocation`]).
pub fn banner(site: SocketAddr, admin: SocketAddr, config: &Path, exe: &str) -> String {
    let post = "curl -s -XPOST -H 'Content-Type: application/json'";
    format!(
        "\nbascule demo: primary-cdn > secondary-cdn > origin, all on loopback\n\n\
         \x20 site        http://{site}/\n\
         \x20 dashboard   http://{admin}/\n\
         \x20 config      {}   (edit it: it reloads by itself)\n\n\
         Try, in another terminal:\n\
         \x20 curl -si http://{site}/ | grep -i -e x-bascule -e x-served-by\n\
         \x20 {post} http://{admin}/demo/primary-cdn/refuse   # or hang, 503\n\
         \x20 {exe} status --admin http://{admin}\n\
         \x20 {post} http://{admin}/demo/primary-cdn/ok       # heal: back after 5 s\n\
         \x20 {exe} drain secondary-cdn --admin http://{admin} --reason test\n\
         \x20 (the dashboard has the same buttons)\n\n\
         Ctrl-C stops the demo.\n",
        config.display()
    )
}

/// How to run this same binary from the current directory: `bascule` when that name on
/// `PATH` is this binary, else its path — relative when it lies below the current directory
/// (`target/release/bascule` under `cargo run --release`), else absolute.
pub fn invocation() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "bascule".to_owned();
    };
    let exe = exe.canonicalize().unwrap_or(exe);
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|d| d.join("bascule").canonicalize().is_ok_and(|c| c == exe))
    });
    if on_path {
        return "bascule".to_owned();
    }
    let cwd = std::env::current_dir().and_then(|d| d.canonicalize());
    match cwd
        .ok()
        .and_then(|d| exe.strip_prefix(d).ok().map(Path::to_path_buf))
    {
        Some(rel) => rel.display().to_string(),
        None => exe.display().to_string(),
    }
}

/// The demo's config directory, `bascule-demo-PID` under the temp dir; removed on drop.
#[derive(Debug)]
pub struct ConfigDir(PathBuf);

impl ConfigDir {
    /// Creates it (first removing those of demos that no longer run).
    pub fn create() -> std::io::Result<ConfigDir> {
        let tmp = std::env::temp_dir();
        sweep(&tmp, "bascule-demo-");
        let dir = tmp.join(format!("bascule-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ConfigDir(dir))
    }

    /// The config file inside it.
    pub fn config(&self) -> PathBuf {
        self.0.join("bascule.toml")
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::debug!(error = %e, dir = %self.0.display(), "cannot remove the demo's config directory");
        }
    }
}

/// Removes the directories `PREFIX<pid>…` in `dir` whose process is gone (killed before it
/// could clean up); directories of running processes, and anything it may not remove, stay.
pub fn sweep(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let pid = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or("");
        if pid.parse::<i32>().is_ok_and(|p| p > 0 && !running(p)) {
            let _left_for_its_owner = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` exists (signal 0: nothing is sent; EPERM means it exists).
fn running(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_the_binary_as_it_can_be_run() {
        let site = "127.0.0.1:8080".parse().expect("addr");
        let admin = "127.0.0.1:9901".parse().expect("addr");
        let b = banner(
            site,
            admin,
            Path::new("/tmp/d/bascule.toml"),
            "target/release/bascule",
        );
        assert!(
            b.contains("  target/release/bascule status --admin http://127.0.0.1:9901\n"),
            "{b}"
        );
        assert!(b.contains("site        http://127.0.0.1:8080/"), "{b}");
    }

    #[test]
    fn only_directories_of_processes_that_are_gone_are_swept() {
        let base = std::env::temp_dir().join(format!("bascule-sweep-test-{}", std::process::id()));
        let mine = base.join(format!("x-{}", std::process::id()));
        // PIDs are below 2^22 on Linux: this one cannot be running.
        let gone = base.join("x-2147483000");
        let other = base.join("y-1");
        for d in [&mine, &gone, &other] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        sweep(&base, "x-");
        assert!(mine.exists() && other.exists() && !gone.exists());
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
