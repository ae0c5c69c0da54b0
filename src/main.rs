//! The `bascule` command line: parses arguments, sets up logging and the runtime, and hands
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use bascule::admin::client;
use bascule::admin::command::{self, Action};
use bascule::app::{App, Role, RunError};
use bascule::config::{self, LogFormat};
use bascule::demo::{self, Demo};

#[derive(Parser)]
#[command(
    name = "bascule",
    version,
    about = "Edge reverse proxy: primary CDN, else secondary CDN, else origin"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The config file argument that run, check and health share. Optional: the help states its
/// default once, in words (clap's own `[env: …] [default: …]` are hidden).
#[derive(Args)]
struct ConfigArg {
    /// Config file [default: $BASCULE_CONFIG, else config/bascule.toml]
    #[arg(
        short,
        long,
        value_name = "FILE",
        env = "BASCULE_CONFIG",
        hide_env = true,
        default_value = "config/bascule.toml",
        hide_default_value = true
    )]
    config: PathBuf,
}

/// Where a running bascule's admin API is, and its token: the operator commands share these.
#[derive(Args)]
struct AdminArgs {
    /// The admin API's base URL
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9901")]
    admin: String,
    /// The admin API's bearer token
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BASCULE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// `drain` and `undrain`: which upstream, why, and where.
#[derive(Args)]
struct UpstreamArgs {
    /// The upstream's name
    upstream: String,
    /// Why (kept in the events; shown by `bascule status` while drained)
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `pin`: which route, which tier, why, and where.
#[derive(Args)]
struct PinArgs {
    /// The route's name
    route: String,
    /// The tier: its 0-based index, or the name of an upstream in it
    tier: String,
    /// Why (kept in the events; shown by `bascule status` while pinned)
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `unpin`: which route, why, and where.
#[derive(Args)]
struct RouteArgs {
    /// The route's name
    route: String,
    /// Why (kept in the events)
    #[arg(long, value_name = "REASON")]
    reason: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

/// `purge`: which stored copies, and where.
#[derive(Args)]
struct PurgeArgs {
    /// The site's host name, e.g. www.example.com
    host: String,
    /// A path, e.g. /news/story, or a prefix ending in '*', e.g. '/news/*'
    path: String,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    #[command(override_usage = "bascule run [-c <FILE>] [--threads <N>]")]
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Worker threads [default: one per core]
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
    },
    /// Validate a config file and print its routes; exit 0 if valid, 1 if not.
    #[command(override_usage = "bascule check [-c <FILE>]")]
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print each route's active tier and the upstreams' health, from a running bascule.
    #[command(override_usage = "bascule status [--json]")]
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print /status as JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// Send no new requests to an upstream (say, a CDN before its maintenance) until undrained.
    #[command(override_usage = "bascule drain <UPSTREAM> [--reason <REASON>]")]
    Drain(UpstreamArgs),
    /// Remove stored copies from the cache: one path, or every path under a prefix ('/news/*').
    #[command(override_usage = "bascule purge <HOST> <PATH>")]
    Purge(PurgeArgs),
    /// Use a drained upstream again, at once.
    #[command(override_usage = "bascule undrain <UPSTREAM> [--reason <REASON>]")]
    Undrain(UpstreamArgs),
    /// Force a route onto one tier (a tier with nothing usable is still skipped).
    #[command(override_usage = "bascule pin <ROUTE> <TIER> [--reason <REASON>]")]
    Pin(PinArgs),
    /// Let a pinned route choose its tier by health again, at once.
    #[command(override_usage = "bascule unpin <ROUTE> [--reason <REASON>]")]
    Unpin(RouteArgs),
    /// Re-read the config file now, as SIGHUP does; a bad file changes nothing (exit 1).
    #[command(override_usage = "bascule reload")]
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Exit 0 if the bascule running on this host answers (its admin API; with the admin API
    /// off, its first listener accepts), else 1: the container health check.
    #[command(override_usage = "bascule health [-c <FILE>] [--ready]")]
    Health {
        #[command(flatten)]
        config: ConfigArg,
        /// Ask GET /ready instead of /status: fails from SIGTERM on (the readiness probe)
        #[arg(long)]
        ready: bool,
    },
    /// Wait DURATION (e.g. 5s), then exit 0: a preStop hook for an image without `sleep`.
    #[command(override_usage = "bascule sleep <DURATION>")]
    Sleep {
        /// How long: a number with a unit (ms, s, m)
        #[arg(value_parser = config::units::duration)]
        duration: std::time::Duration,
    },
    /// Serve one simulated upstream (answers 200 naming itself; /slow?ms=N waits): the compose
    /// demo's origin and CDNs.
    DemoUpstream {
        /// The name it puts in its answers
        #[arg(long)]
        name: String,
        /// Where it listens
        #[arg(long, default_value = "0.0.0.0:8000")]
        listen: std::net::SocketAddr,
    },
    /// Run a self-contained demo: an origin, two simulated CDNs and the proxy, on loopback.
    #[command(override_usage = "bascule demo [--listen <ADDR>] [--admin <ADDR>]")]
    Demo {
        /// Where the demo proxy listens
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where its admin API and dashboard listen
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config.config),
        Command::Status { admin, json } => one_shot("status", |rt| {
            rt.block_on(command::status(&admin.admin, admin.token.as_deref(), json))
        }),
        Command::Drain(a) => {
            let (upstream, reason) = (a.upstream, a.reason);
            operate(&a.admin, Action::Drain { upstream, reason })
        }
        Command::Undrain(a) => {
            let (upstream, reason) = (a.upstream, a.reason);
            operate(&a.admin, Action::Undrain { upstream, reason })
        }
        Command::Pin(a) => {
            let (route, tier, reason) = (a.route, a.tier, a.reason);
            operate(
                &a.admin,
                Action::Pin {
                    route,
                    tier,
                    reason,
                },
            )
        }
        Command::Unpin(a) => {
            let (route, reason) = (a.route, a.reason);
            operate(&a.admin, Action::Unpin { route, reason })
        }
        Command::Reload { admin } => operate(&admin, Action::Reload),
        Command::Purge(a) => {
            let (host, path) = (a.host, a.path);
            operate(&a.admin, Action::Purge { host, path })
        }
        Command::Health { config, ready } => one_shot("health", |rt| {
            rt.block_on(client::health(&config.config, ready))
                .map(|()| String::new())
        }),
        Command::Sleep { duration } => {
            std::thread::sleep(duration);
            ExitCode::SUCCESS
        }
        Command::DemoUpstream { name, listen } => demo_upstream(name, listen),
        Command::Demo { listen, admin } => match demo(listen, admin) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bascule demo: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Run { config, threads } => match run(&config.config, threads) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Config errors are FILE:LINE:COL lines, printed as they are.
                match (
                    e.downcast_ref::<config::ConfigError>(),
                    e.downcast_ref::<RunError>(),
                ) {
                    (Some(ce), _) => eprintln!("{ce}"),
                    (None, Some(re @ RunError::Bind { addr, role, .. })) => eprintln!(
                        "bascule: {re} — another process holds it (`ss -ltnp 'sport = :{}'` \
                         names it): stop it, or change {} in {}",
                        addr.port(),
                        role.key(),
                        config.config.display()
                    ),
                    _ => eprintln!("bascule: {e:#}"),
                }
                ExitCode::from(1)
            }
        },
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path) {
        Ok(c) => {
            for r in &c.routes {
                println!("{}", r.summary());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(path: &std::path::Path, threads: Option<usize>) -> anyhow::Result<()> {
    // One malloc arena per worker thread: more only keep what their threads freed.
    let workers = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    bascule::memory::tune(workers);
    // Before the config has loaded, errors are plain text on stderr.
    let config = config::load(path)?;
    init_logging(config.log.format);
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    let runtime = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = App::new(path, config)?;
        let bound = app.bind()?;
        app.serve(bound, None).await
    })?;
    Ok(())
}

/// `bascule drain|undrain|pin|unpin|reload|purge`.
fn operate(admin: &AdminArgs, action: Action) -> ExitCode {
    let token = admin.token.as_deref();
    one_shot(action.command(), |rt| {
        rt.block_on(command::run(&admin.admin, token, &action))
    })
}

/// Runs a client command on a current-thread runtime: what it returns is printed (exit 0),
/// or its error on stderr as `bascule NAME: …` (exit 1). clap's usage errors exit 2.
fn one_shot(
    name: &str,
    f: impl FnOnce(&tokio::runtime::Runtime) -> Result<String, String>,
) -> ExitCode {
    let result = match current_thread() {
        Some(rt) => f(&rt),
        None => return ExitCode::from(1),
    };
    match result {
        Ok(out) => {
            if !out.is_empty() {
                use std::io::Write as _;
                // A reader that stopped early (`| head`) is no failure of this command.
                let _reader_gone = writeln!(std::io::stdout().lock(), "{}", out.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bascule {name}: {e}");
            ExitCode::from(1)
        }
    }
}

fn current_thread() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("bascule: cannot start the async runtime: {e}"))
        .ok()
}

fn demo_upstream(name: String, listen: std::net::SocketAddr) -> ExitCode {
    init_logging(LogFormat::Text);
    one_shot("demo-upstream", |rt| {
        rt.block_on(demo::serve_one(&name, listen))
            .map(|()| String::new())
            .map_err(|e| format!("{listen}: {e}"))
    })
}

fn demo(listen: std::net::SocketAddr, admin: std::net::SocketAddr) -> anyhow::Result<()> {
    init_logging(LogFormat::Text);
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was already installed"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let sims = Demo::start()
            .await
            .context("cannot start the simulated upstreams")?;
        // Removed when this block ends: after Ctrl-C, or an error.
        let dir = demo::ConfigDir::create().context("cannot create the demo's config directory")?;
        let path = dir.config();
        std::fs::write(&path, sims.config(listen, admin))
            .with_context(|| format!("{}", path.display()))?;
        let config = config::load(&path)?;
        let app = App::new(&path, config)?;
        // Every socket first: a busy port fails here, before the banner.
        let bound = app.bind().map_err(|e| match &e {
            RunError::Bind { role, .. } => {
                let flag = if *role == Role::Admin {
                    "--admin"
                } else {
                    "--listen"
                };
                anyhow::anyhow!("{e} — pass {flag} 127.0.0.1:PORT")
            }
            _ => anyhow::Error::new(e),
        })?;
        let site = bound.http_addr().unwrap_or(listen);
        let dashboard = bound.admin_addr().unwrap_or(admin);
        println!(
            "{}",
            demo::banner(site, dashboard, &path, &demo::invocation())
        );
        app.serve(bound, Some(sims)).await?;
        drop(dir);
        Ok(())
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BASCULE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
