//! Memory after bursts (issue 11): does bascule give back what a burst of connections took?
//!
//! Starts one fake upstream in-process (`benches/failover/fake.rs`, 200 "origin ok") and the
//! release bascule as a child (`--threads N`, or the runtime's default with `--threads 0`),
//! then runs `--bursts` bursts: open `--conns` keep-alive connections (at most `--parallel`
//! connecting at once), one GET on each, hold them all open `--hold-ms`, close them all, wait
//! `--settle-ms`. bascule's resident memory (`VmRSS`) and open descriptors are sampled before
//! the first burst (idle), while each burst's connections are held (peak), after each burst
//! has settled, and at the end of a `--quiet-secs` quiet period. Every loop is bounded: each
//! connection has 10 s, each burst 120 s.
//!
//! ```sh
//! cargo bench --bench burst                                # 5,000 connections, 7 bursts
//! cargo bench --bench burst -- --threads 0 --quiet-secs 130 # default worker count; past the
//!                                            # pools' idle timeout and bascule's late trim
//! ```
//!
//! Options: `--conns N` (5000), `--bursts N` (7), `--parallel N` (500), `--hold-ms MS`
//! (1000), `--settle-ms MS` (3000), `--quiet-secs S` (15), `--threads N` (1; 0: default),
//! `--bin PATH` (the release bascule). Environment variables reach bascule unchanged (e.g.
//! `GLIBC_TUNABLES`). Only 127.0.0.1 is used.

// The soak harness uses more of these helpers than this one does.
#[path = "../common/child.rs"]
mod child;
#[allow(dead_code)]
#[path = "../common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "../common/procfs.rs"]
mod procfs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use child::Bascule;
use procfs::Usage;

const USAGE: &str = "usage: cargo bench --bench burst -- [--conns N] [--bursts N] [--parallel N] \
[--hold-ms MS] [--settle-ms MS] [--quiet-secs S] [--threads N] [--bin PATH]";

/// Each connection must connect and get its answer within this.
const PER_CONNECTION: Duration = Duration::from_secs(10);
/// Each burst must have opened all its connections within this.
const PER_BURST: Duration = Duration::from_secs(120);

struct Options {
    conns: usize,
    bursts: usize,
    parallel: usize,
    hold: Duration,
    settle: Duration,
    quiet: Duration,
    threads: Option<usize>,
    bin: PathBuf,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            conns: 5000,
            bursts: 7,
            parallel: 500,
            hold: Duration::from_millis(1000),
            settle: Duration::from_millis(3000),
            quiet: Duration::from_secs(15),
            threads: Some(1),
            bin: child::default_bin(),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                "--conns" => o.conns = cli::number(&arg, &value()?)?,
                "--bursts" => o.bursts = cli::number(&arg, &value()?)?,
                "--parallel" => o.parallel = cli::number::<usize>(&arg, &value()?)?.max(1),
                "--hold-ms" => o.hold = Duration::from_millis(cli::number(&arg, &value()?)?),
                "--settle-ms" => o.settle = Duration::from_millis(cli::number(&arg, &value()?)?),
                "--quiet-secs" => o.quiet = Duration::from_secs(cli::number(&arg, &value()?)?),
                "--threads" => {
                    o.threads = Some(cli::number(&arg, &value()?)?).filter(|n: &usize| *n > 0)
                }
                "--bin" => o.bin = PathBuf::from(value()?),
                _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
            }
        }
        Ok(o)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !cli::benchmarking("burst", &args) {
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(args.into_iter()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let fd_limit = procfs::raise_fd_limit();
    if fd_limit < 2 * options.conns as u64 + 256 {
        eprintln!(
            "the open-files limit is {fd_limit}; {} connections need about {} (raise it with ulimit -n)",
            options.conns,
            2 * options.conns + 256
        );
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burst: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(o: Options) -> Result<(), String> {
    let origin = bascule::demo::SimUpstream::start("origin", bascule::demo::Mode::Ok)
        .await
        .map_err(|e| format!("fake origin: {e}"))?;
    let dir = child::work_dir("burst");
    let upstream = origin.address();
    let mut proxy = Bascule::start(&o.bin, &dir, o.threads, |addr, admin| {
        format!(
            "[listen]\nhttp = [\"{addr}\"]\n\n[admin]\nlisten = \"{admin}\"\n\n\
             [log]\naccess = false\n\n[upstreams.origin]\naddress = \"{upstream}\"\n\n\
             [[routes]]\nname = \"all\"\nhosts = [\"*\"]\ntiers = [\"origin\"]\n"
        )
    })?;
    proxy.wait_ready(Duration::from_secs(10)).await?;
    let pid = proxy.pid();
    let threads = o.threads.map_or("default".to_owned(), |n| n.to_string());
    println!(
        "burst: {} bursts of {} connections, bascule {} --threads {threads} (pid {pid}), work dir {}",
        o.bursts,
        o.conns,
        o.bin.display(),
        dir.display()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sample = || procfs::usage(pid).ok_or("bascule has exited".to_owned());
    println!("\n| when | RSS MiB | fds | note |\n|---|---|---|---|");
    row("idle, before the first burst", sample()?, "");
    for b in 1..=o.bursts {
        let start = Instant::now();
        let (held, failed) = open_all(proxy.addr, o.conns, o.parallel).await;
        let opened = start.elapsed();
        tokio::time::sleep(o.hold).await;
        let note = format!(
            "{} open, {failed} failed, opened in {:.1} s",
            held.len(),
            opened.as_secs_f64()
        );
        row(&format!("burst {b}: connections held"), sample()?, &note);
        drop(held);
        tokio::time::sleep(o.settle).await;
        row(&format!("burst {b}: closed, settled"), sample()?, "");
        if !proxy.running() {
            return Err("bascule exited during the bursts".into());
        }
    }
    let quiet_start = Instant::now();
    let mut next = Duration::from_secs(5);
    while quiet_start.elapsed() < o.quiet {
        tokio::time::sleep(next.min(o.quiet).saturating_sub(quiet_start.elapsed())).await;
        let at = quiet_start.elapsed().as_secs().min(o.quiet.as_secs());
        row(
            &format!("quiet, {at} s after the last burst"),
            sample()?,
            "",
        );
        next += Duration::from_secs(5);
    }
    if let Some((cpu, faults)) = procfs::cpu(pid) {
        println!("\nbascule's CPU time over the run: {cpu:.2?}, minor page faults: {faults}");
    }
    println!("\nbascule: {}", proxy.stop().await);
    Ok(())
}

fn row(when: &str, u: Usage, note: &str) {
    println!("| {when} | {:.1} | {} | {note} |", u.rss_mib(), u.fds);
}

/// Opens `n` connections to `addr` with one GET answered 200 on each, `parallel` at a time;
/// returns the open ones and how many failed.
async fn open_all(addr: SocketAddr, n: usize, parallel: usize) -> (Vec<TcpStream>, usize) {
    let gate = Arc::new(Semaphore::new(parallel));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            tokio::time::timeout(PER_CONNECTION, one_get(addr))
                .await
                .ok()?
                .ok()
        });
    }
    let (mut held, mut failed) = (Vec::with_capacity(n), 0);
    let deadline = tokio::time::Instant::now() + PER_BURST;
    while let Ok(Some(done)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        match done {
            Ok(Some(s)) => held.push(s),
            _ => failed += 1,
        }
    }
    failed += set.len();
    set.abort_all();
    (held, failed)
}

/// Connects, sends one GET and reads its whole answer; the connection stays open.
async fn one_get(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: burst\r\n\r\n")
        .await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(done) = complete(&buf) {
            return if done {
                Ok(s)
            } else {
                Err(std::io::Error::other("not a 200"))
            };
        }
        if buf.len() > 64 << 10 {
            return Err(std::io::Error::other("answer too long"));
        }
    }
}

/// Some(whether it is a 200) once `buf` holds a whole response with a Content-Length body.
fn complete(buf: &[u8]) -> Option<bool> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + length).then(|| head.starts_with("HTTP/1.1 200"))
}
