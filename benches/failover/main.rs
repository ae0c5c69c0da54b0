//! Failover benchmark: what clients see when the primary CDN breaks and heals under load.
//!
//! For each scenario the harness starts three fake upstreams in-process (`primary`,
//! `secondary`, `origin`: `bascule::demo::SimUpstream`s on 127.0.0.1:0), the proxy under test
//! as a child process (the release `bascule` with `--threads 1`, HAProxy with `--haproxy`, or
//! nginx with `--nginx`), and an open-loop load of `--rate` GET requests per second (latency
//! counted from each request's scheduled send time). After a 5 s warm-up (`--warmup-secs`) it
//! breaks the primary, keeps it broken for `--break-secs`, heals it, and keeps the load going
//! until the primary has received requests steadily for 2 s, or for at most `--heal-window`.
//! Scenarios (how the primary breaks, for live traffic and health probes alike):
//!
//! - `refuse`: stops listening and closes every open connection (new connects are refused);
//! - `hang`: accepts and reads requests but never answers;
//! - `503`, `520`: answers everything with that status;
//! - `branded-500`, `flapping`, `origin-outage`: what CDNs really did (see `scenario.rs`);
//! - `half-failing`, `relapsing`, `standby`, `standby-broken`: partial and flapping failures
//!   and the warm standby (DESIGN §7.2, see `scenario.rs`);
//! - `slow-primary`, `brownout`: what hedging and the retry budget must get right (DESIGN
//!   §7.4): a primary that answers after 300 ms, and an origin answering half its requests
//!   with 503 through every tier while the checks stay green.
//!
//! Reported per scenario (one markdown row; `--out FILE` also writes TSV):
//!
//! - **client errors**: requests that ended in a transport error, the 30 s deadline, or a
//!   non-2xx status, out of all requests scheduled;
//! - **primary abandoned after**: from the break to the last live request the primary
//!   *received* before the heal (its own arrival times; 0 when none arrived), "not abandoned"
//!   when it still received requests up to the heal;
//! - **p50 / p99 / max during transition**: latency of requests scheduled from the break to 1 s
//!   after the primary was abandoned (the whole break if it was not), with the warm-up p99
//!   beside it;
//! - **upstream requests per client request**: live requests the three upstreams received per
//!   request scheduled, in the warm-up (what hedging costs when nothing is broken) and during
//!   the break (what retries and hedges added);
//! - **failback after**: from the heal to the scheduled send time of the first request after
//!   it that the primary answered (2xx with `x-bascule-upstream: primary`), next to the value
//!   the config implies (bascule: rise × interval + failback_delay; HAProxy: rise × inter);
//! - who served the requests (`x-bascule-upstream`) in the warm-up, the break and after the heal;
//! - (details) when the primary was first out of use (its first pause of 500 ms or more in
//!   the break) and how many times it was back in use after such a pause (failbacks).
//!
//! Phases go by scheduled send time, so a request scheduled a millisecond before the break may
//! already meet the broken primary and count in the warm-up as served by the secondary.
//!
//! Run (bascule's defaults; `--extra-toml` is appended to its config, e.g. a `[defaults]` table
//! with `response_timeout = "2s"`; bare keys at the top of that file belong to the route):
//!
//! ```sh
//! cargo bench --bench failover                                # all thirteen scenarios, < 13 min
//! cargo bench --bench failover -- --scenario hang --extra-toml fast.toml --out hang.tsv
//! cargo bench --bench failover -- --haproxy                   # the same against HAProxy
//! cargo bench --bench failover -- --nginx                     # ... and against nginx
//! ```
//!
//! Options: `--scenario NAME|all` (all; names as above), `--rate N` (1000), `--warmup-secs S`
//! (5), `--break-secs S` (20), `--heal-window S` (25), `--bin PATH` (the release bascule built by `cargo bench`),
//! `--extra-toml FILE`, `--out FILE`, `--haproxy`, `--nginx`, `--max-in-flight N` (20,000, or less if the
//! file-descriptor limit is lower). Only 127.0.0.1 and ephemeral ports are used; work files
//! (configs, the proxy's stdout and stderr, `samples.tsv` with every request) are kept under
//! cargo's target tmp dir, one directory per target and scenario.

#[path = "../common/cli.rs"]
mod cli;
#[path = "../../tests/support/listening.rs"]
#[allow(dead_code)]
mod listening;
mod load;
mod nginx;
mod proxy;
mod report;
mod scenario;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bascule::demo::SimUpstream;
use load::{Finished, Load};
use proxy::{Proxy, Target, Upstreams};
use report::{Context, Report, Timeline};
use scenario::Scenario;

/// Healthy traffic before the primary breaks, unless `--warmup-secs` says otherwise.
const WARMUP: Duration = Duration::from_secs(5);
/// After the heal, the load stops once the primary has received requests this long.
const STEADY: Duration = Duration::from_secs(2);
/// How long the proxy may take to accept connections after it starts.
const STARTUP: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: cargo bench --bench failover -- [--scenario refuse|hang|503|520|\
branded-500|flapping|origin-outage|half-failing|relapsing|standby|standby-broken|\
slow-primary|brownout|all] \
[--rate N] [--warmup-secs S] [--break-secs S] [--heal-window S] [--bin PATH] [--extra-toml FILE] [--out FILE] \
[--haproxy | --nginx] [--max-in-flight N]";

struct Options {
    scenarios: Vec<Scenario>,
    rate: u32,
    warmup: Duration,
    break_for: Duration,
    heal_window: Duration,
    target: Target,
    out: Option<PathBuf>,
    max_in_flight: usize,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>, fd_limit: u64) -> Result<Options, String> {
        let (mut scenarios, mut rate, mut max_in_flight) = (Scenario::ALL.to_vec(), 1000, None);
        let (mut break_secs, mut heal_secs) = (20, 25);
        let mut warmup = WARMUP;
        let (mut bin, mut extra, mut out) = (None, None, None);
        let (mut haproxy, mut nginx) = (false, false);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to every harness = false bench.
                "--bench" => {}
                "--scenario" => scenarios = parse_scenarios(&value()?)?,
                "--rate" => rate = cli::number(&arg, &value()?)?,
                "--break-secs" => break_secs = cli::number(&arg, &value()?)?,
                "--warmup-secs" => warmup = Duration::from_secs(cli::number(&arg, &value()?)?),
                "--heal-window" => heal_secs = cli::number(&arg, &value()?)?,
                "--max-in-flight" => max_in_flight = Some(cli::number(&arg, &value()?)?),
                "--bin" => bin = Some(PathBuf::from(value()?)),
                "--extra-toml" => extra = Some(PathBuf::from(value()?)),
                "--out" => out = Some(PathBuf::from(value()?)),
                "--haproxy" => haproxy = true,
                "--nginx" => nginx = true,
                _ => return Err(format!("unknown argument {arg:?}")),
            }
        }
        let max_in_flight = max_in_flight.unwrap_or(default_max_in_flight(fd_limit));
        if rate == 0 || max_in_flight == 0 {
            return Err("--rate and --max-in-flight must be at least 1".into());
        }
        Ok(Options {
            scenarios,
            rate,
            warmup,
            break_for: Duration::from_secs(break_secs),
            heal_window: Duration::from_secs(heal_secs),
            target: target(haproxy, nginx, bin, extra)?,
            out,
            max_in_flight,
        })
    }
}

/// HAProxy, or bascule at `bin` (default: the release binary `cargo bench` builds, i.e.
/// `target/release/bascule` unless CARGO_TARGET_DIR says otherwise) with `extra` appended.
fn target(
    haproxy: bool,
    nginx: bool,
    bin: Option<PathBuf>,
    extra: Option<PathBuf>,
) -> Result<Target, String> {
    if haproxy || nginx {
        if bin.is_some() || extra.is_some() {
            return Err("--bin and --extra-toml apply to bascule, not --haproxy or --nginx".into());
        }
        if haproxy && nginx {
            return Err("--haproxy or --nginx: one target per run".into());
        }
        return Ok(if haproxy {
            Target::Haproxy
        } else {
            Target::Nginx
        });
    }
    let extra_toml = match extra {
        Some(p) => Some(std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    Ok(Target::Bascule {
        bin: bin.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bascule"))),
        extra_toml,
    })
}

fn parse_scenarios(text: &str) -> Result<Vec<Scenario>, String> {
    if text == "all" {
        return Ok(Scenario::ALL.to_vec());
    }
    Scenario::parse(text)
        .map(|s| vec![s])
        .ok_or(format!("unknown scenario {text:?}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !cli::benchmarking("failover", &args) {
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(args.into_iter(), raise_fd_limit()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("failover: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("failover: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(o: &Options) -> Result<(), String> {
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("failover-{}", std::process::id()));
    if let Target::Bascule { bin, .. } = &o.target {
        if !bin.exists() {
            return Err(format!(
                "{} not found: build it (cargo build --release) or pass --bin",
                bin.display()
            ));
        }
    }
    println!(
        "failover: {} at {} req/s, break {} s, heal window up to {} s, max in flight {}; work files in {}",
        o.target.name(),
        o.rate,
        o.break_for.as_secs(),
        o.heal_window.as_secs(),
        o.max_in_flight,
        root.display()
    );
    let mut reports = Vec::new();
    for &scenario in &o.scenarios {
        let dir = root.join(format!("{}-{}", o.target.name(), scenario.name()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let report = run_scenario(o, scenario, &dir).await?;
        println!("{}", report.details());
        reports.push(report);
    }
    println!("\n{}", Report::markdown_header());
    for r in &reports {
        println!("{}", r.markdown_row());
    }
    if let Some(out) = &o.out {
        let mut text = format!("{}\n", Report::tsv_header());
        for r in &reports {
            text.push_str(&r.tsv_row());
            text.push('\n');
        }
        std::fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    }
    Ok(())
}

/// One scenario from start to report: fakes, proxy, load over the timeline, teardown.
async fn run_scenario(o: &Options, scenario: Scenario, dir: &Path) -> Result<Report, String> {
    let primary = fake("primary").await?;
    let secondary = fake("secondary").await?;
    let origin = fake("origin").await?;
    let ups = Upstreams {
        primary: &primary,
        secondary: &secondary,
        origin: &origin,
    };
    let mut proxy = Proxy::start(&o.target, dir, &ups)?;
    proxy
        .wait_ready(STARTUP)
        .await
        .map_err(|e| format!("{} ({}): {e}", o.target.name(), dir.display()))?;
    let (finished, timeline, primary_hits, upstream_hits) =
        drive(o, scenario, &ups, proxy.addr).await;
    let expected_failback = proxy.expected_failback;
    match proxy.stop().await {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("warning: {} exited with {status}", o.target.name()),
        Err(e) => eprintln!("warning: {}: {e}", o.target.name()),
    }

    let samples_file = dir.join("samples.tsv");
    std::fs::write(&samples_file, report::samples_tsv(&finished.samples))
        .map_err(|e| format!("cannot write {}: {e}", samples_file.display()))?;
    let cx = Context {
        target: o.target.name(),
        scenario: scenario.name(),
        timeline,
        primary_hits,
        upstream_hits,
        expected_failback,
        period: Duration::from_secs(1) / o.rate,
        unfinished: finished.unfinished,
    };
    Ok(Report::new(&finished.samples, cx))
}

/// A fake upstream on 127.0.0.1:0 answering 200 and recording when each live request arrived;
/// health probes (`/healthz`) obey its mode too.
async fn fake(name: &str) -> Result<SimUpstream, String> {
    SimUpstream::builder(name)
        .timed()
        .start()
        .await
        .map_err(|e| format!("cannot start the fake upstream {name}: {e}"))
}

/// Runs the load against `proxy` through warm-up, break and heal, until the primary has been
/// steady again or the heal window is over. Returns the samples, the timeline, when the
/// primary received each live request, and when any of the three did, all from the start of
/// the load.
async fn drive(
    o: &Options,
    scenario: Scenario,
    ups: &Upstreams<'_>,
    proxy: SocketAddr,
) -> (Finished, Timeline, Vec<Duration>, Vec<Duration>) {
    let primary = ups.primary;
    let heal_window = o.heal_window.max(scenario.after_heal());
    let max_duration = o.warmup + o.break_for + heal_window + Duration::from_secs(1);
    let load = Load::start(proxy, o.rate, o.max_in_flight, max_duration);
    tokio::time::sleep_until((load.start + o.warmup).into()).await;
    let broke = load.elapsed();
    scenario.break_for(ups, o.break_for).await;
    let healed = load.elapsed();
    let at_least = tokio::time::Instant::now() + scenario.after_heal();
    wait_until_primary_steady(primary, heal_window, tick(o.rate)).await;
    tokio::time::sleep_until(at_least).await;
    let ended = load.elapsed();
    let start = load.start;
    let finished = load.finish().await;
    let since_start = |u: &SimUpstream| {
        u.hit_times()
            .into_iter()
            .map(|h| h.saturating_duration_since(start))
            .collect::<Vec<_>>()
    };
    let hits = since_start(primary);
    let all_hits = [ups.primary, ups.secondary, ups.origin]
        .into_iter()
        .flat_map(since_start)
        .collect();
    let timeline = Timeline {
        broke,
        healed,
        ended,
    };
    (finished, timeline, hits, all_hits)
}

/// How often to look at the primary's hit count after the heal: often enough to see a gap in
/// its traffic, never so often that a low rate looks like one.
fn tick(rate: u32) -> Duration {
    (Duration::from_secs(3) / rate).max(Duration::from_millis(100))
}

/// Returns once the primary has received at least one request in every tick for [`STEADY`],
/// or when `window` has passed.
async fn wait_until_primary_steady(primary: &SimUpstream, window: Duration, tick: Duration) {
    let deadline = Instant::now() + window;
    let mut steady_since: Option<Instant> = None;
    let mut seen = primary.hits();
    while Instant::now() < deadline {
        tokio::time::sleep(tick).await;
        let now = primary.hits();
        steady_since = if now > seen {
            steady_since.or(Some(Instant::now()))
        } else {
            None
        };
        seen = now;
        if steady_since.is_some_and(|t| t.elapsed() >= STEADY) {
            return;
        }
    }
}

/// 20,000, or what the file-descriptor limit allows: the harness holds a socket per request in
/// flight plus the fake upstreams' side of the proxy's connections to them.
fn default_max_in_flight(fd_limit: u64) -> usize {
    let fd_limit = usize::try_from(fd_limit).unwrap_or(usize::MAX);
    (fd_limit.saturating_sub(1000) / 2).clamp(100, 20_000)
}

/// Raises the soft limit on open files to the hard one (the proxy, a child, inherits it);
/// returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        let current = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
            limit.rlim_max
        } else {
            current
        }
    }
}
