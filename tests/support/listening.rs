//! Where a `bascule run` process listens, read from its log. The app logs one line per bound
//! listener (`listening`, with `addr` and `scheme`), one for the admin API (`admin API
//! listening`, with `addr`) and one for the metrics listener (`metrics listening`), each with the address the socket got, so a process started on
//! `127.0.0.1:0` says which ports it has: nothing is probed, nothing can be taken in between.
//! Reads text and JSON log lines. Shared with the benches (`#[path]`): it needs only tokio.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// The listeners a log announced, in the order it did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listening {
    /// Plain HTTP listeners.
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners.
    pub https: Vec<SocketAddr>,
    /// The admin API, if it listens.
    pub admin: Option<SocketAddr>,
    /// The read-only metrics listener, if it listens.
    pub metrics: Option<SocketAddr>,
}

impl Listening {
    /// The listeners announced in `log` so far.
    pub fn parse(log: &str) -> Listening {
        let mut found = Listening::default();
        for line in log.lines() {
            let Some(addr) = field(line, "addr").and_then(|a| a.parse().ok()) else {
                continue;
            };
            if line.contains("admin API listening") {
                found.admin = Some(addr);
            } else if line.contains("metrics listening") {
                found.metrics = Some(addr);
            } else if line.contains("listening") {
                match field(line, "scheme") {
                    Some("http") => found.http.push(addr),
                    Some("https") => found.https.push(addr),
                    _ => {}
                }
            }
        }
        found
    }

    /// Whether at least `http` plain and `https` TLS listeners, and the admin API if `admin`,
    /// have been announced.
    pub fn has(&self, http: usize, https: usize, admin: bool) -> bool {
        self.http.len() >= http && self.https.len() >= https && (!admin || self.admin.is_some())
    }
}

/// Reads `log` every 20 ms until the listeners it announces satisfy `enough`; None if `exited`
/// says the process is gone, or after `limit`.
pub async fn wait_for(
    log: &Path,
    limit: Duration,
    mut exited: impl FnMut() -> bool,
    enough: impl Fn(&Listening) -> bool,
) -> Option<Listening> {
    let start = Instant::now();
    while start.elapsed() < limit && !exited() {
        let found = Listening::parse(&std::fs::read_to_string(log).unwrap_or_default());
        if enough(&found) {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A `BASCULE_LOG` filter that keeps the caller's (default `info`) and adds what the listening
/// lines need (`bascule::app` at info).
pub fn log_filter() -> String {
    let theirs = std::env::var("BASCULE_LOG").unwrap_or_else(|_| "info".to_owned());
    format!("{theirs},bascule::app=info")
}

/// The value of `key` in a text (`key=value`, `key="value"`) or JSON (`"key":"value"`) line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let text = format!(" {key}=");
    let json = format!("\"{key}\":\"");
    if let Some(at) = line.find(&text) {
        let rest = &line[at + text.len()..];
        let value = rest.split_whitespace().next().unwrap_or("");
        return Some(value.trim_matches('"'));
    }
    let at = line.find(&json)?;
    let rest = &line[at + json.len()..];
    rest.split('"').next()
}
