//! A real browser for the dashboard tests: Debian's `chromium`, headless, loading a page for a
//! budget of virtual time, dumping its DOM and taking a screenshot; and a few helpers to read
//! the dumped DOM (start tags, attributes) without an HTML parser.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one headless chromium run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// Headless chromium: `$CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub struct Browser(PathBuf);

impl Browser {
    /// Headless chromium (`$CHROMIUM`, else `chromium` on `PATH`); None when it is missing: the
    /// test then skips loudly, or fails under `BASCULE_REQUIRE_TOOLS=1` (`tools::require`).
    pub fn find() -> Option<Browser> {
        let name = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
        if !super::tools::require(&name, "chromium") {
            return None;
        }
        super::tools::find(&name).map(Browser)
    }

    /// Loads `url` with a fresh profile under `dir`, lets the page run for 8 s of virtual
    /// time, writes a 1280×1000 screenshot to `screenshot` and returns the DOM as it is then.
    /// Runs on the blocking pool, so the runtime keeps serving the fake upstreams meanwhile.
    pub async fn load(&self, url: String, dir: &Path, screenshot: &Path) -> String {
        self.load_with(url, dir, screenshot, &[]).await
    }

    /// `load` with extra chromium flags.
    pub async fn load_with(
        &self,
        url: String,
        dir: &Path,
        screenshot: &Path,
        flags: &[&str],
    ) -> String {
        let (exe, dir, shot) = (self.0.clone(), dir.to_owned(), screenshot.to_owned());
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        tokio::task::spawn_blocking(move || run_chromium(&exe, &url, &dir, &shot, &flags))
            .await
            .expect("browser task")
    }
}

/// One headless chromium run (blocking); killed, by its PID, if it overruns `BROWSER_LIMIT`.
fn run_chromium(exe: &Path, url: &str, dir: &Path, screenshot: &Path, flags: &[String]) -> String {
    let dom_file = dir.join("dom.html");
    let log_file = dir.join("chromium.log");
    let mut child = Command::new(exe)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1280,1000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .args(flags)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&dom_file).expect("dom file"))
        .stderr(File::create(&log_file).expect("log file"))
        .spawn()
        .expect("spawn chromium");
    let log = || std::fs::read_to_string(&log_file).unwrap_or_default();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if start.elapsed() > BROWSER_LIMIT {
            let _already_gone = child.kill();
            let _reaped = child.wait();
            panic!(
                "chromium did not finish within {BROWSER_LIMIT:?}:\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed ({status}):\n{}", log());
    let dom = std::fs::read_to_string(&dom_file).expect("read the dumped DOM");
    assert!(dom.contains("</html>"), "no DOM dumped:\n{dom}\n{}", log());
    dom
}

/// The start tag of the first element in `html` carrying `attr` (e.g. `data-route="www"`),
/// with its offset.
pub fn start_tag<'a>(html: &'a str, attr: &str) -> Option<(usize, &'a str)> {
    let at = html.find(attr)?;
    let open = html[..at].rfind('<')?;
    let close = at + html[at..].find('>')?;
    Some((open, &html[open..=close]))
}

/// The value of attribute `name` in a start tag.
pub fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

pub fn has_class(tag: &str, class: &str) -> bool {
    attr(tag, "class").is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

/// The part of the DOM holding route `name`'s container (up to the next route).
pub fn route_part<'a>(dom: &'a str, name: &str) -> &'a str {
    let (at, tag) = start_tag(dom, &format!("data-route=\"{name}\""))
        .unwrap_or_else(|| panic!("no route {name} in the page:\n{dom}"));
    let rest = &dom[at + tag.len()..];
    let end = rest.find("data-route=\"").unwrap_or(rest.len());
    &dom[at..at + tag.len() + end]
}

pub fn upstream_state<'a>(dom: &'a str, name: &str) -> &'a str {
    start_tag(dom, &format!("data-upstream=\"{name}\""))
        .and_then(|(_, tag)| attr(tag, "data-state"))
        .unwrap_or_else(|| panic!("no upstream row {name} in the page:\n{dom}"))
}
