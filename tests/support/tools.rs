//! External programs some tests drive (chromium, curl, openssl, promtool): detected, not
//! assumed. A test whose tool is missing says so loudly on stderr and returns early, so
//! `cargo test` passes on a machine with nothing but Rust; with `BASCULE_REQUIRE_TOOLS=1`
//! (set by `.ci/run`) a missing tool fails the test instead, so CI never skips.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable that turns a missing tool from a skip into a failure.
pub const REQUIRE_TOOLS: &str = "BASCULE_REQUIRE_TOOLS";

/// Where `tool` is: itself when it names a path (holds a `/`), else the first executable of
/// that name on `PATH`.
pub fn find(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return is_executable(Path::new(tool)).then(|| PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True when `tool` is present. When it is not: panics if `BASCULE_REQUIRE_TOOLS=1`, else
/// prints `SKIPPED <test>: <tool> not found; …` to stderr (past the test harness's capture,
/// so it shows in a passing run) and returns false, for the test to return early.
pub fn require(tool: &str, apt_package: &str) -> bool {
    if find(tool).is_some() {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let install = format!("install it with: sudo apt-get install -y {apt_package}");
    if std::env::var(REQUIRE_TOOLS).is_ok_and(|v| v == "1") {
        panic!("{test}: {tool} not found and {REQUIRE_TOOLS}=1; {install}");
    }
    // Written to the process's stderr, not through eprintln!, which the harness captures.
    writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {tool} not found; {install}"
    )
    .expect("write to stderr");
    false
}
