//! The `bascule` command line: parses arguments, sets up logging and the runtime, and hands
//! over to the library.

mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use bascule::admin::client;
use bascule::admin::command::{self, Action};
use bascule::app::{App, Role, RunError};
use bascule::config::{self, LogFormat};
use bascule::demo::{self, Demo};

use cli::{AdminArgs, Cli, Command};

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
