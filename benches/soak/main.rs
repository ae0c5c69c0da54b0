//! Soak (issue 11): minutes of mixed load through the release bascule, its resident memory
//! and open descriptors sampled every second.
//!
//! Four fake upstreams in-process (`benches/failover/fake.rs`): `good` answers 200, `refusing`
//! refuses connections, `hanging` accepts and never answers, `failing` answers 503. Routes (by
//! Host): `*` → good; `refuse` → refusing; `hang` → hanging (`response_timeout = "2s"`, so a
//! 504 after 2 s); `fail` → failing; `failover` → failing, refusing, then good. For `--secs`:
//!
//! - `wrk -t1 -c{--wrk-conns}`: HTTP/1.1 keep-alive on `*`;
//! - `h2load -c{--h2-conns} -m{--h2-streams}`: h2c (prior knowledge) on `*`;
//! - in-process paced GETs, `--rate` per second on each of `refuse`, `hang`, `fail` and
//!   `failover` (keep-alive; at most 1,000 in flight per route; each within 10 s).
//!
//! Then a 5 s quiet period, and `/status` is read to check that no upstream request is left in
//! flight. Reported: requests by outcome per load, min/max/final RSS and fds, the RSS every
//! 10 s. Samples go to `samples.tsv` in the work dir. Only 127.0.0.1 is used; it stops by itself.
//!
//! ```sh
//! cargo bench --bench soak                      # 120 s, bascule's default worker count
//! cargo bench --bench soak -- --secs 20 --threads 1
//! ```
//!
//! Options: `--secs S` (120), `--threads N` (0: the runtime's default), `--rate N` (100),
//! `--wrk-conns N` (50), `--h2-conns N` (10), `--h2-streams N` (10), `--bin PATH`.

#[path = "../common/child.rs"]
mod child;
#[path = "../common/cli.rs"]
mod cli;
mod load;
#[path = "../common/procfs.rs"]
mod procfs;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bascule::demo::{Mode, SimUpstream};
use child::Bascule;
use load::Tally;

const USAGE: &str = "usage: cargo bench --bench soak -- [--secs S] [--threads N] [--rate N] \
[--wrk-conns N] [--h2-conns N] [--h2-streams N] [--bin PATH]";

struct Options {
    secs: u64,
    threads: Option<usize>,
    rate: u32,
    wrk_conns: usize,
    h2_conns: usize,
    h2_streams: usize,
    bin: PathBuf,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            secs: 120,
            threads: None,
            rate: 100,
            wrk_conns: 50,
            h2_conns: 10,
            h2_streams: 10,
            bin: child::default_bin(),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--secs" => o.secs = cli::number::<u64>(&arg, &value()?)?.clamp(1, 3600),
                "--threads" => o.threads = Some(cli::number(&arg, &value()?)?).filter(|n| *n > 0),
                "--rate" => o.rate = cli::number::<u32>(&arg, &value()?)?.clamp(1, 10_000),
                "--wrk-conns" => o.wrk_conns = cli::number::<usize>(&arg, &value()?)?.max(1),
                "--h2-conns" => o.h2_conns = cli::number::<usize>(&arg, &value()?)?.max(1),
                "--h2-streams" => o.h2_streams = cli::number::<usize>(&arg, &value()?)?.max(1),
                "--bin" => o.bin = PathBuf::from(value()?),
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        Ok(o)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !cli::benchmarking("soak", &args) {
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(args.into_iter()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    procfs::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(1)
        }
    }
}

/// The config: the four upstreams, their routes, a 2 s response timeout, access log off.
fn config(
    http: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    ups: &[SimUpstream; 4],
) -> String {
    let mut c = format!(
        "[listen]\nhttp = [\"{http}\"]\n\n[admin]\nlisten = \"{admin}\"\n\n[log]\naccess = false\n\n\
         [defaults]\nresponse_timeout = \"2s\"\n"
    );
    for (name, up) in ["good", "refusing", "hanging", "failing"].iter().zip(ups) {
        let _ = write!(c, "\n[upstreams.{name}]\naddress = \"{}\"\n", up.address());
    }
    let routes = [
        ("refuse", "refuse", "[\"refusing\"]"),
        ("hang", "hang", "[\"hanging\"]"),
        ("fail", "fail", "[\"failing\"]"),
        (
            "failover",
            "failover",
            "[\"failing\", \"refusing\", \"good\"]",
        ),
        ("good", "*", "[\"good\"]"),
    ];
    for (name, host, tiers) in routes {
        let _ = write!(
            c,
            "\n[[routes]]\nname = \"{name}\"\nhosts = [\"{host}\"]\ntiers = {tiers}\n"
        );
    }
    c
}

async fn run(o: Options) -> Result<bool, String> {
    let start = |name: &'static str, mode| async move {
        SimUpstream::start(name, mode)
            .await
            .map_err(|e| format!("fake upstream {name}: {e}"))
    };
    let ups = [
        start("good", Mode::Ok).await?,
        start("refusing", Mode::Refuse).await?,
        start("hanging", Mode::Hang).await?,
        start("failing", Mode::Status(503)).await?,
    ];
    let dir = child::work_dir("soak");
    let mut proxy = Bascule::start(&o.bin, &dir, o.threads, |h, a| config(h, a, &ups))?;
    proxy.wait_ready(Duration::from_secs(10)).await?;
    let (pid, addr, secs) = (proxy.pid(), proxy.addr, o.secs);
    let threads = o.threads.map_or("default".to_owned(), |n| n.to_string());
    println!(
        "soak: {secs} s, bascule {} --threads {threads} (pid {pid}), work dir {}",
        o.bin.display(),
        dir.display()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procfs::usage(pid).ok_or("bascule has exited")?;

    let sampler = tokio::spawn(async move {
        let start = Instant::now();
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        while start.elapsed() < Duration::from_secs(secs + 6) {
            tick.tick().await;
            match procfs::usage(pid) {
                Some(u) => samples.push((start.elapsed().as_secs(), u)),
                None => break,
            }
        }
        samples
    });
    let paced = |host: &'static str| tokio::spawn(load::paced(addr, host, o.rate, secs, 1000));
    let failing = [
        ("refuse", paced("refuse")),
        ("hang", paced("hang")),
        ("fail", paced("fail")),
        ("failover", paced("failover")),
    ];
    let wrk = tokio::spawn(load::wrk(addr, o.wrk_conns, secs));
    let h2 = tokio::spawn(load::h2load(addr, o.h2_conns, o.h2_streams, secs));
    let mut loads: Vec<(String, Result<Tally, String>)> = Vec::new();
    let joined = |r: Result<Result<Tally, String>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(format!("load task: {e}")))
    };
    loads.push((
        format!("wrk -c{} (h1 keep-alive, `*`)", o.wrk_conns),
        joined(wrk.await),
    ));
    let h2_name = format!("h2load -c{} -m{} (h2c, `*`)", o.h2_conns, o.h2_streams);
    loads.push((h2_name, joined(h2.await)));
    for (host, task) in failing {
        let t = task.await.map_err(|e| format!("load task: {e}"));
        loads.push((format!("{} GET/s, Host `{host}`", o.rate), t));
    }
    let samples = sampler.await.map_err(|e| format!("sampler: {e}"))?;
    if let Some((cpu, faults)) = procfs::cpu(pid) {
        println!("bascule's CPU time over the soak: {cpu:.2?}, minor page faults: {faults}");
    }
    let status = admin_status(proxy.admin).await;
    let running = proxy.running();
    println!("\nbascule: {}", proxy.stop().await);
    Ok(report(&dir, idle, &loads, &samples, &status, running))
}

/// `/status`'s upstreams as (name, in_flight), or why it could not be read.
async fn admin_status(admin: std::net::SocketAddr) -> Result<Vec<(String, u64)>, String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = format!("http://{admin}/status");
    let resp = client
        .get(uri.parse().map_err(|e| format!("{uri}: {e}"))?)
        .await
        .map_err(|e| format!("GET /status: {e}"))?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("/status body: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&body.to_bytes()).map_err(|e| format!("/status: {e}"))?;
    let ups = v["upstreams"]
        .as_array()
        .ok_or("/status has no upstreams")?;
    Ok(ups
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap_or("?").to_owned(),
                u["in_flight"].as_u64().unwrap_or(0),
            )
        })
        .collect())
}

/// Prints the report; returns whether the soak passed (bascule running, every load ran, no
/// transport error on the good routes, nothing left in flight).
fn report(
    dir: &std::path::Path,
    idle: procfs::Usage,
    loads: &[(String, Result<Tally, String>)],
    samples: &[(u64, procfs::Usage)],
    status: &Result<Vec<(String, u64)>, String>,
    running: bool,
) -> bool {
    let mut ok = running;
    println!("\n| load | requests | outcomes |\n|---|---|---|");
    for (name, t) in loads {
        match t {
            Ok(t) => println!("| {name} | {} | {} |", t.total(), t.summary()),
            Err(e) => {
                ok = false;
                println!("| {name} | — | did not run: {e} |");
            }
        }
    }
    for (name, t) in loads.iter().take(2) {
        if let Ok(t) = t {
            let good = t.outcomes.get("2xx").copied().unwrap_or(0);
            let cut = t.outcomes.get(load::CUT_AT_THE_END).copied().unwrap_or(0);
            if good + cut != t.total() {
                ok = false;
                println!("\nerrors on the good route ({name}): {}", t.summary());
            }
        }
    }
    let rss: Vec<f64> = samples.iter().map(|(_, u)| u.rss_mib()).collect();
    let fds: Vec<usize> = samples.iter().map(|(_, u)| u.fds).collect();
    let (rmin, rmax) = rss
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), r| (a.min(*r), b.max(*r)));
    let (fmin, fmax) = (
        fds.iter().min().copied().unwrap_or(0),
        fds.iter().max().copied().unwrap_or(0),
    );
    println!("\n| | idle before | min | max | final (after 5 s quiet) |\n|---|---|---|---|---|");
    println!(
        "| RSS MiB | {:.1} | {rmin:.1} | {rmax:.1} | {:.1} |",
        idle.rss_mib(),
        rss.last().copied().unwrap_or(0.0)
    );
    println!(
        "| fds | {} | {fmin} | {fmax} | {} |",
        idle.fds,
        fds.last().copied().unwrap_or(0)
    );
    let every10: Vec<String> = samples
        .iter()
        .filter(|(t, _)| t % 10 == 0)
        .map(|(t, u)| format!("{t}s {:.1}", u.rss_mib()))
        .collect();
    println!("\nRSS MiB every 10 s: {}", every10.join(", "));
    match status {
        Ok(ups) => {
            let busy: Vec<&(String, u64)> = ups.iter().filter(|(_, n)| *n > 0).collect();
            println!("in flight upstream at the end: {ups:?}");
            ok &= busy.is_empty();
        }
        Err(e) => {
            println!("/status: {e}");
            ok = false;
        }
    }
    let mut tsv = String::from("secs\trss_kib\tfds\n");
    for (t, u) in samples {
        let _ = writeln!(tsv, "{t}\t{}\t{}", u.rss_kib, u.fds);
    }
    if let Err(e) = std::fs::write(dir.join("samples.tsv"), tsv) {
        println!("cannot write samples.tsv: {e}");
    }
    println!("\nsoak: {}", if ok { "passed" } else { "FAILED" });
    ok
}
