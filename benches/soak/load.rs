//! The soak's load: `wrk` (HTTP/1.1 keep-alive) and `h2load` (h2c) as child processes with
//! their summaries parsed, and in-process paced clients for the routes whose upstreams fail.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The outcome of requests that a load generator started but stopped waiting for when its
/// time was up (not an error).
pub const CUT_AT_THE_END: &str = "in flight at the end";

/// What a load generator reports: requests by outcome ("200", "502", "timeout", "connect"…).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests per outcome.
    pub outcomes: BTreeMap<String, u64>,
}

impl Tally {
    fn add(&mut self, outcome: &str, n: u64) {
        if n > 0 {
            *self.outcomes.entry(outcome.to_owned()).or_default() += n;
        }
    }

    /// All requests counted.
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }

    /// `200: 12, 502: 3`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        parts.join(", ")
    }
}

/// Runs `wrk -t1 -cCONNS -dSECSs` on `http://addr/`.
pub async fn wrk(addr: SocketAddr, conns: usize, secs: u64) -> Result<Tally, String> {
    let mut command = Command::new("wrk");
    command
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
        ])
        .arg(format!("http://{addr}/"));
    let text = output(command, "wrk (apt-get install wrk)").await?;
    // "  123456 requests in 10.00s, 12.34MB read"
    let total: u64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .ok_or(format!("wrk said: {text}"))?;
    let mut t = Tally::default();
    let mut failed = 0;
    // "  Socket errors: connect 0, read 0, write 0, timeout 0"
    if let Some(rest) = after(&text, "Socket errors:") {
        for (kind, n) in counts(&rest) {
            t.add(&kind, n);
            failed += n;
        }
    }
    // "  Non-2xx or 3xx responses: 12"
    if let Some(n) = after(&text, "Non-2xx or 3xx responses:").and_then(|r| r.trim().parse().ok()) {
        t.add("non-2xx", n);
        failed += n;
    }
    t.add("2xx", total.saturating_sub(failed));
    Ok(t)
}

/// Runs `h2load -cCONNS -mSTREAMS -D SECS` (h2c, prior knowledge) on `http://addr/`.
pub async fn h2load(
    addr: SocketAddr,
    conns: usize,
    streams: usize,
    secs: u64,
) -> Result<Tally, String> {
    let mut command = Command::new("h2load");
    command
        .args([
            &format!("-c{conns}"),
            &format!("-m{streams}"),
            "-D",
            &secs.to_string(),
        ])
        .arg(format!("http://{addr}/"));
    let text = output(command, "h2load (apt-get install nghttp2-client)").await?;
    let said = || format!("h2load said: {text}");
    // "requests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout"
    let requests: BTreeMap<String, u64> = counts(&after(&text, "requests:").ok_or_else(said)?)
        .into_iter()
        .collect();
    // "status codes: 10 2xx, 0 3xx, 0 4xx, 0 5xx"
    let mut t = Tally::default();
    for (class, n) in counts(&after(&text, "status codes:").ok_or_else(said)?) {
        t.add(&class, n);
    }
    for kind in ["errored", "timeout"] {
        t.add(kind, requests.get(kind).copied().unwrap_or(0));
    }
    let (started, done) = (requests.get("started"), requests.get("done"));
    // With -D, requests still in flight when the time is up are counted as started, not done.
    let cut = started.unwrap_or(&0).saturating_sub(*done.unwrap_or(&0));
    t.add(CUT_AT_THE_END, cut);
    Ok(t)
}

/// Runs `command` (which stops by itself) on a blocking thread; its standard output.
async fn output(mut command: Command, what: &str) -> Result<String, String> {
    command.stdin(Stdio::null()).stderr(Stdio::null());
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .map_err(|e| format!("{what}: {e}"))?
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rest of the first line of `text` that holds `label`, after it.
fn after(text: &str, label: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains(label))?;
    Some(line[line.find(label)? + label.len()..].to_owned())
}

/// `"connect 0, read 2"` or `"10 total, 3 done"` as (word, number) pairs.
fn counts(list: &str) -> Vec<(String, u64)> {
    list.split(',')
        .filter_map(|item| {
            let mut words = item.split_whitespace();
            let (a, b) = (words.next()?, words.next()?);
            match (a.parse(), b.parse()) {
                (Ok(n), _) => Some((b.to_owned(), n)),
                (_, Ok(n)) => Some((a.to_owned(), n)),
                _ => None,
            }
        })
        .collect()
}

/// GETs `/` with `Host: host` at `rate` per second for `secs`, each within 10 s, at most
/// `max_in_flight` at once (a request that finds them all busy is counted as "shed").
pub async fn paced(
    addr: SocketAddr,
    host: &'static str,
    rate: u32,
    secs: u64,
    max_in_flight: usize,
) -> Tally {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let gate = Arc::new(Semaphore::new(max_in_flight));
    let mut tasks = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            tally.lock().expect("tally").add("shed", 1);
            continue;
        };
        let (client, tally) = (client.clone(), tally.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = one(&client, addr, host).await;
            tally.lock().expect("tally").add(&outcome, 1);
        });
    }
    while tasks.join_next().await.is_some() {}
    let t = tally.lock().expect("tally").clone();
    t
}

async fn one(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    host: &str,
) -> String {
    let req = Request::get(format!("http://{addr}/"))
        .header("host", host)
        .body(Empty::new())
        .expect("a request");
    let exchange = async {
        let resp = client.request(req).await.map_err(|_| "transport")?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.map_err(|_| "body")?;
        Ok::<u16, &str>(status)
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => e.to_owned(),
        Err(_) => "timeout".to_owned(),
    }
}
