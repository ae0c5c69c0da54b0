//! Reload benchmark: how fast a replaced config file serves, and what reloading costs traffic.
//!
//! Two fake upstreams (`primary`, `secondary`) and the release bascule (`--threads 1`, access
//! log off) on a config whose one route goes to one of them. Two measurements:
//!
//! 1. **Time to the new table**: the config is replaced (`--mode rename`: written beside it
//!    and renamed over it, as editors, `sed -i` and the kubelet do; `--mode inplace`:
//!    truncated and rewritten) to route to the other upstream, while one client sends requests
//!    back to back on a keep-alive connection; the time from the rename (or write) to the first
//!    response from the new upstream, over `--reloads` reloads (50): p50, p99, max.
//! 2. **Reloads under load**: an open-loop 1,000 GET/s for `--secs` (10) seconds, once with
//!    no reload and once with a config replaced every 100 ms (10 reloads/s, alternating the
//!    route), interleaved over `--rounds` (2) rounds: failed requests, p50/p99 latency, and,
//!    if `wrk` is installed, closed-loop throughput (`wrk -t1 -c50`) with and without the
//!    reloads — the throughput dip.
//!
//! ```sh
//! cargo bench --bench reload
//! cargo bench --bench reload -- --mode inplace --reloads 50
//! ```
//!
//! Only 127.0.0.1 and ephemeral ports are used (bascule listens on port 0 and its log says
//! which port it got); every loop is bounded in count and time; the bascule process is stopped
//! by its own PID.

#[path = "../../tests/support/listening.rs"]
#[allow(dead_code)]
mod listening;
#[path = "../failover/load.rs"]
#[allow(dead_code)]
mod load;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use bascule::demo::SimUpstream;
use load::Load;

/// Longest wait for one reload to show before the harness gives up on it.
const PER_RELOAD: Duration = Duration::from_secs(5);

struct Options {
    reloads: usize,
    secs: u64,
    rounds: usize,
    in_place: bool,
    bin: PathBuf,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        reloads: 50,
        secs: 10,
        rounds: 2,
        in_place: false,
        bin: PathBuf::from(env!("CARGO_BIN_EXE_bascule")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--reloads" => o.reloads = value()?.parse().map_err(|e| format!("{e}"))?,
            "--secs" => o.secs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--rounds" => o.rounds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--mode" => o.in_place = value()? == "inplace",
            "--bin" => o.bin = PathBuf::from(value()?),
            "--bench" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    // `cargo test --benches` runs bench binaries without `--bench`: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("reload bench: skipped (run with cargo bench)");
        return ExitCode::SUCCESS;
    }
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("reload bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reload bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The bascule process and its config file.
struct Bascule {
    /// Where it serves (the port it got).
    addr: SocketAddr,
    /// What its config asks for (127.0.0.1:0), kept by every rewrite so that a reload sees no
    /// listener change.
    listen: SocketAddr,
    path: PathBuf,
    child: Child,
    primary: String,
    secondary: String,
}

/// The config: one route, `*` → `to`.
fn config_text(addr: SocketAddr, primary: &str, secondary: &str, to: &str) -> String {
    format!(
        "[listen]\nhttp = [\"{addr}\"]\ndebug_headers = true\n[admin]\nenabled = false\n\
         [log]\naccess = false\n\
         [upstreams.primary]\naddress = \"{primary}\"\n[upstreams.secondary]\naddress = \"{secondary}\"\n\
         [[routes]]\nname = \"www\"\nhosts = [\"*\"]\ntiers = [\"{to}\"]\n"
    )
}

impl Bascule {
    fn config(&self, to: &str) -> String {
        config_text(self.listen, &self.primary, &self.secondary, to)
    }

    /// Replaces the config so that the route goes to `to`; returns when the change hit the
    /// filesystem.
    fn switch(&self, to: &str, in_place: bool) -> Result<Instant, String> {
        let text = self.config(to);
        if in_place {
            std::fs::write(&self.path, text).map_err(|e| format!("write: {e}"))?;
        } else {
            let tmp = self.path.with_extension("toml.new");
            std::fs::write(&tmp, text).map_err(|e| format!("write: {e}"))?;
            std::fs::rename(&tmp, &self.path).map_err(|e| format!("rename: {e}"))?;
        }
        Ok(Instant::now())
    }

    fn stop(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own unreaped child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _already_gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

async fn start(
    o: &Options,
    dir: &Path,
    primary: &SimUpstream,
    secondary: &SimUpstream,
) -> Result<Bascule, String> {
    // On port 0: bascule's log says which port it got.
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let path = dir.join("bascule.toml");
    let log_path = dir.join("bascule.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("log: {e}"))?;
    let (primary, secondary) = (primary.address(), secondary.address());
    std::fs::write(&path, config_text(listen, &primary, &secondary, "primary"))
        .map_err(|e| format!("config: {e}"))?;
    let child = Command::new(&o.bin)
        .args(["run", "--threads", "1", "-c"])
        .arg(&path)
        .env("BASCULE_LOG", listening::log_filter())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| format!("{e}"))?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", o.bin.display()))?;
    let mut b = Bascule {
        addr: listen,
        listen,
        path,
        child,
        primary,
        secondary,
    };
    let found = listening::wait_for(
        &log_path,
        Duration::from_secs(10),
        || false,
        |l| !l.http.is_empty(),
    );
    b.addr = *found
        .await
        .ok_or("bascule did not start")?
        .http
        .first()
        .ok_or("no port")?;
    Ok(b)
}

async fn run(o: &Options) -> Result<(), String> {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{e}"))?;
    let start_fake = |name: &'static str| async move {
        SimUpstream::start(name, bascule::demo::Mode::Ok)
            .await
            .map_err(|e| format!("cannot start the fake upstream {name}: {e}"))
    };
    let primary = start_fake("primary").await?;
    let secondary = start_fake("secondary").await?;
    let b = start(o, &dir, &primary, &secondary).await?;
    println!(
        "reload bench: bascule on {}, work files in {}",
        b.addr,
        dir.display()
    );
    let result = async {
        time_to_new_table(&b, o).await?;
        under_load(&b, o).await
    }
    .await;
    b.stop();
    result
}

/// Part 1: from the file change to the first response from the new table.
async fn time_to_new_table(b: &Bascule, o: &Options) -> Result<(), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{}/", b.addr);
    let mut took = Vec::with_capacity(o.reloads);
    let mut to = "secondary";
    for _ in 0..o.reloads {
        // Let the previous reload's file events settle, as between two real edits.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let changed = b.switch(to, o.in_place)?;
        loop {
            let req = http::Request::get(&uri)
                .body(Empty::new())
                .map_err(|e| format!("{e}"))?;
            let resp = client
                .request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let served = resp
                .headers()
                .get("x-bascule-upstream")
                .map(|v| v.as_bytes() == to.as_bytes())
                .unwrap_or(false);
            let _body = resp.into_body().collect().await;
            if served {
                took.push(changed.elapsed());
                break;
            }
            if changed.elapsed() > PER_RELOAD {
                return Err(format!(
                    "a reload to {to} did not show within {PER_RELOAD:?}"
                ));
            }
        }
        to = if to == "secondary" {
            "primary"
        } else {
            "secondary"
        };
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\n### time from the file {} to the first request routed by the new table ({} reloads)\n\n\
         | p50 | p99 | max | min |\n|---|---|---|---|\n| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        if o.in_place { "written in place" } else { "renamed over" },
        took.len(),
        ms(pct(&took, 0.50)),
        ms(pct(&took, 0.99)),
        ms(*took.last().unwrap_or(&Duration::ZERO)),
        ms(*took.first().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Replaces the config every 100 ms until `stop`, alternating the route; returns the count.
async fn reloading(b: &Bascule, in_place: bool, until: Instant) -> Result<usize, String> {
    let mut n = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < until {
        tick.tick().await;
        b.switch(if n % 2 == 0 { "secondary" } else { "primary" }, in_place)?;
        n += 1;
    }
    Ok(n)
}

/// Part 2: 1,000 req/s with and without 10 reloads/s; wrk throughput with and without.
async fn under_load(b: &Bascule, o: &Options) -> Result<(), String> {
    let secs = Duration::from_secs(o.secs);
    println!(
        "\n### 1,000 req/s for {} s, without and with 10 reloads/s ({} rounds, interleaved)\n\n\
         | round | reloads | requests | failed | p50 | p99 | max |\n|---|---|---|---|---|---|---|",
        o.secs, o.rounds
    );
    for round in 1..=o.rounds {
        for with_reloads in [false, true] {
            let load = Load::start(b.addr, 1000, 5_000, secs);
            let until = Instant::now() + secs;
            let reloads = if with_reloads {
                reloading(b, o.in_place, until).await?
            } else {
                tokio::time::sleep(secs).await;
                0
            };
            let done = load.finish().await;
            let mut lat: Vec<Duration> = done.samples.iter().map(|s| s.latency).collect();
            lat.sort();
            let failed =
                done.samples.iter().filter(|s| s.outcome.is_error()).count() + done.unfinished;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "| {round} | {reloads} | {} | {failed} | {:.2} ms | {:.2} ms | {:.2} ms |",
                done.samples.len(),
                ms(pct(&lat, 0.50)),
                ms(pct(&lat, 0.99)),
                ms(*lat.last().unwrap_or(&Duration::ZERO)),
            );
        }
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("\n(wrk not installed: closed-loop throughput skipped)");
        return Ok(());
    }
    println!(
        "\n### closed-loop throughput, `wrk -t1 -c50 -d{}s`, without and with 10 reloads/s\n\n\
         | round | reloads | req/s | non-2xx or socket errors |\n|---|---|---|---|",
        o.secs
    );
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        for with_reloads in [false, true] {
            let url = format!("http://{}/", b.addr);
            let duration = format!("-d{}s", o.secs);
            let wrk = tokio::task::spawn_blocking(move || {
                Command::new("wrk")
                    .args(["-t1", "-c50", &duration, &url])
                    .output()
            });
            let until = Instant::now() + secs;
            let (out, reloads) = if with_reloads {
                let (out, n) = tokio::join!(wrk, reloading(b, o.in_place, until));
                (out, n?)
            } else {
                (wrk.await, 0)
            };
            let out = out
                .map_err(|e| format!("wrk task: {e}"))?
                .map_err(|e| format!("wrk: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let rps = text
                .lines()
                .find(|l| l.starts_with("Requests/sec:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            let errors: String = text
                .lines()
                .filter(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
                .collect::<Vec<_>>()
                .join("; ");
            println!(
                "| {round} | {reloads} | {rps:.0} | {} |",
                if errors.is_empty() {
                    "0".to_owned()
                } else {
                    errors
                }
            );
            if with_reloads {
                with.push(rps)
            } else {
                base.push(rps)
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (b0, b1) = (mean(&base), mean(&with));
    println!(
        "\nthroughput with reloads: {:.0} req/s vs {:.0} without: {:+.1} %",
        b1,
        b0,
        (b1 / b0.max(1.0) - 1.0) * 100.0
    );
    Ok(())
}
