//! The surge (issue 16, DESIGN §7.3): both CDN tiers refuse, readers arrive open-loop at
//! `--rate` requests a second over 200 paths with Zipf popularity, and the origin answers
//! `public, max-age=MAX_AGE` after `--work-ms` of work. Measured per target: reader requests a
//! second, origin requests a second (the first seconds' misses, then after), the peak number
//! of requests in flight at the origin, and reader errors; the same with the origin answering
//! 503 for 5 s in the middle (`fail`), errors split into paths seen before and paths not.
//!
//!   flock /tmp/bench.lock cargo bench --bench shield -- [--rate N] [--secs S] [--max-age S]
//!       [--nginx] [--varnish] [--bin PATH]
//!
//! Targets: bascule (the release binary; `max_in_flight = 32` on the origin), and with
//! `--nginx` nginx 1 worker with `proxy_cache` + `proxy_cache_use_stale error timeout updating
//! http_500 http_502 http_503 http_504` + `proxy_cache_lock on`, the CDNs as primary servers
//! and the origin as `backup` (`nginx.rs`), and with `--varnish` Varnish 7 with a `fallback`
//! director over the three, probed, default grace, `-s malloc,256m` (`varnish.rs`), one after
//! the other in the same run. Only 127.0.0.1; only the processes started here are stopped.

#[allow(dead_code)]
#[path = "../common/child.rs"]
mod child;
#[allow(dead_code)]
#[path = "../common/cli.rs"]
mod cli;
mod nginx;
mod running;
mod varnish;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const PATHS: usize = 200;
/// Seconds counted as the first misses (not in the steady origin rate).
const WARM_SECS: usize = 3;

struct Options {
    rate: u64,
    secs: u64,
    max_age: u64,
    work: Duration,
    nginx: bool,
    varnish: bool,
    bin: PathBuf,
}

/// The origin: counts requests and the peak in flight; answers 503 while `failing`.
#[derive(Default)]
struct Origin {
    hits: AtomicU64,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    failing: AtomicBool,
}

async fn serve_origin(listener: TcpListener, o: Arc<Origin>, max_age: u64, work: Duration) {
    let body = Bytes::from(vec![b'n'; 1024]);
    let cc = format!("public, max-age={max_age}");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (o, body, cc) = (Arc::clone(&o), body.clone(), cc.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (o, body, cc) = (Arc::clone(&o), body.clone(), cc.clone());
                async move {
                    if req.uri().path() == "/healthz" {
                        let code = if o.failing.load(Ordering::Relaxed) {
                            503
                        } else {
                            200
                        };
                        let mut r = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
                        return Ok::<_, Infallible>(r);
                    }
                    o.hits.fetch_add(1, Ordering::Relaxed);
                    let now = o.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                    o.peak.fetch_max(now, Ordering::Relaxed);
                    tokio::time::sleep(work).await;
                    o.in_flight.fetch_sub(1, Ordering::Relaxed);
                    if o.failing.load(Ordering::Relaxed) {
                        let mut r =
                            Response::new(Full::new(Bytes::from_static(b"deploy failed\n")));
                        *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        return Ok(r);
                    }
                    let mut r = Response::new(Full::new(body));
                    r.headers_mut()
                        .insert("cache-control", cc.parse().expect("a header value"));
                    Ok(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// A port nothing listens on (connecting is refused).
async fn refusing() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// Zipf(1) over `PATHS` paths: the cumulative weights.
fn zipf_cdf() -> Vec<f64> {
    let w: Vec<f64> = (1..=PATHS).map(|k| 1.0 / k as f64).collect();
    let total: f64 = w.iter().sum();
    w.iter()
        .scan(0.0, |acc, x| {
            *acc += x / total;
            Some(*acc)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    /// Per second: (reader requests answered, errors).
    per_sec: Vec<(u64, u64)>,
    errors_seen: u64,
    errors_new: u64,
}

struct Run {
    readers: Vec<u64>,
    origin: Vec<u64>,
    peak: usize,
    errors: u64,
    errors_seen: u64,
    errors_new: u64,
}

/// Open-loop GETs at `rate`/s for `secs` to `proxy`; the origin fails during `fail` (seconds).
async fn surge(
    proxy: SocketAddr,
    o: &Origin,
    rate: u64,
    secs: u64,
    fail: Option<(u64, u64)>,
) -> Run {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(512)
        .build_http();
    let cdf = Arc::new(zipf_cdf());
    let seen: Arc<Vec<AtomicBool>> = Arc::new((0..PATHS).map(|_| AtomicBool::new(false)).collect());
    let tally = Arc::new(Mutex::new(Tally {
        per_sec: vec![(0, 0); secs as usize + 40],
        ..Tally::default()
    }));
    let hits_at_start = o.hits.load(Ordering::Relaxed);
    o.peak.store(0, Ordering::Relaxed);
    let start = tokio::time::Instant::now();
    let total = rate * secs;
    let mut origin_per_sec = Vec::new();
    let mut last_hits = hits_at_start;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(due).await;
        let sec = (i / rate) as usize;
        if origin_per_sec.len() < sec {
            let h = o.hits.load(Ordering::Relaxed);
            origin_per_sec.push(h - last_hits);
            last_hits = h;
        }
        if let Some((from, to)) = fail {
            o.failing
                .store((from..to).contains(&(sec as u64)), Ordering::Relaxed);
        }
        let x = fastrand::f64();
        let p = cdf.partition_point(|c| *c < x).min(PATHS - 1);
        let was_seen = seen[p].swap(true, Ordering::Relaxed);
        let (client, tally) = (client.clone(), Arc::clone(&tally));
        tasks.spawn(async move {
            let req = Request::get(format!("http://{proxy}/article/{p}"))
                .header("host", "news.example")
                .body(Empty::new())
                .expect("request");
            let ok = match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await
            {
                Ok(Ok(r)) => {
                    let status = r.status();
                    r.into_body().collect().await.is_ok() && status == 200
                }
                _ => false,
            };
            let done = (start.elapsed().as_secs() as usize).min(secs as usize + 39);
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            t.per_sec[done].0 += 1;
            if !ok {
                t.per_sec[done].1 += 1;
                if was_seen {
                    t.errors_seen += 1;
                } else {
                    t.errors_new += 1;
                }
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    o.failing.store(false, Ordering::Relaxed);
    let h = o.hits.load(Ordering::Relaxed);
    origin_per_sec.push(h - last_hits);
    let t = tally.lock().unwrap_or_else(|p| p.into_inner());
    Run {
        readers: t.per_sec.iter().take(secs as usize).map(|s| s.0).collect(),
        origin: origin_per_sec,
        peak: o.peak.load(Ordering::Relaxed),
        errors: t.per_sec.iter().map(|s| s.1).sum(),
        errors_seen: t.errors_seen,
        errors_new: t.errors_new,
    }
}

fn report(target: &str, scenario: &str, r: &Run) {
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let warm = r.origin.iter().take(WARM_SECS).sum::<u64>();
    let after = r.origin.get(WARM_SECS..).unwrap_or(&[]);
    let readers = mean(r.readers.get(WARM_SECS..).unwrap_or(&[]));
    let origin = mean(after);
    println!(
        "{target:<8} {scenario:<5} readers {readers:>7.0}/s  origin first {WARM_SECS}s {warm:>5} req, then {origin:>7.1}/s ({:.2} % of readers)  peak in flight {:>4}  reader errors {} (seen paths {}, new paths {})",
        100.0 * origin / readers.max(1.0),
        r.peak,
        r.errors,
        r.errors_seen,
        r.errors_new
    );
    println!("         origin per second: {:?}", r.origin);
}

fn bascule_config(
    cdn1: SocketAddr,
    cdn2: SocketAddr,
    origin: SocketAddr,
) -> impl Fn(SocketAddr, SocketAddr) -> String {
    move |http, admin| {
        format!(
            "[listen]\nhttp = [\"{http}\"]\n[admin]\nlisten = \"{admin}\"\n[log]\naccess = false\n\
             [defaults.health]\ninterval = \"500ms\"\nfall = 1\n\
             [upstreams.cdn1]\naddress = \"http://{cdn1}\"\nrole = \"cdn\"\n\
             [upstreams.cdn2]\naddress = \"http://{cdn2}\"\nrole = \"cdn\"\n\
             [upstreams.origin]\naddress = \"http://{origin}\"\nmax_in_flight = 32\n\
             [[routes]]\nname = \"news\"\nhosts = [\"*\"]\ntiers = [\"cdn1\", \"cdn2\", \"origin\"]\n"
        )
    }
}

async fn run(opts: &Options) -> Result<(), String> {
    let cdn1 = refusing().await;
    let cdn2 = refusing().await;
    let mid = opts.secs / 2;
    let fail = Some((mid.saturating_sub(2), mid.saturating_sub(2) + 5));
    println!(
        "surge: {} req/s for {} s over {PATHS} paths (Zipf 1), origin max-age={} work {:?}; fail: the origin answers 503 in seconds {:?}",
        opts.rate, opts.secs, opts.max_age, opts.work, fail
    );
    for scenario in ["surge", "fail"] {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let origin_addr = l.local_addr().map_err(|e| e.to_string())?;
        let origin = Arc::new(Origin::default());
        let server = tokio::spawn(serve_origin(
            l,
            Arc::clone(&origin),
            opts.max_age,
            opts.work,
        ));
        let dir = child::work_dir("shield");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut b = child::Bascule::start(
            &opts.bin,
            &dir,
            Some(2),
            bascule_config(cdn1, cdn2, origin_addr),
        )?;
        b.wait_ready(Duration::from_secs(10)).await?;
        // The CDNs' probes fail within a second: the surge starts with the origin active.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let f = if scenario == "fail" { fail } else { None };
        let r = surge(b.addr, &origin, opts.rate, opts.secs, f).await;
        report("bascule", scenario, &r);
        b.stop().await;
        server.abort();
    }
    let others = [("nginx", opts.nginx), ("varnish", opts.varnish)];
    for (target, _) in others.iter().filter(|t| t.1) {
        for scenario in ["surge", "fail"] {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let origin_addr = l.local_addr().map_err(|e| e.to_string())?;
            let origin = Arc::new(Origin::default());
            let server = tokio::spawn(serve_origin(
                l,
                Arc::clone(&origin),
                opts.max_age,
                opts.work,
            ));
            let dir = child::work_dir(&format!("shield-{target}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let port = refusing().await.port();
            let p = if *target == "nginx" {
                nginx::start(&dir, port, cdn1, cdn2, origin_addr).await?
            } else {
                varnish::start(&dir, port, cdn1, cdn2, origin_addr).await?
            };
            // As for bascule: the probes have marked the CDNs down before the surge starts.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let f = if scenario == "fail" { fail } else { None };
            let r = surge(p.addr, &origin, opts.rate, opts.secs, f).await;
            report(target, scenario, &r);
            p.stop().await;
            server.abort();
        }
    }
    Ok(())
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rate: 1000,
        secs: 20,
        max_age: 60,
        work: Duration::from_millis(5),
        nginx: false,
        varnish: false,
        bin: child::default_bin(),
    };
    let mut it = args.iter().filter(|a| *a != "--bench");
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rate" => o.rate = cli::number(a, &val()?)?,
            "--secs" => o.secs = cli::number(a, &val()?)?,
            "--max-age" => o.max_age = cli::number(a, &val()?)?,
            "--work-ms" => o.work = Duration::from_millis(cli::number(a, &val()?)?),
            "--nginx" => o.nginx = true,
            "--varnish" => o.varnish = true,
            "--bin" => o.bin = PathBuf::from(val()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !cli::benchmarking("shield", &args) {
        return ExitCode::SUCCESS;
    }
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("shield: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shield: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shield: {e}");
            ExitCode::FAILURE
        }
    }
}
