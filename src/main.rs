//! The `bascule` command line: parses arguments, sets up logging and the runtime, and hands
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use bascule::admin::client;
use bascule::app::App;
use bascule::config::{self, LogFormat};
use bascule::demo::Demo;

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
    #[command(override_usage = "bascule status [--admin <URL>] [--token <TOKEN>] [--json]")]
    Status {
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
        /// Print /status as JSON instead of tables
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 if the bascule running on this host answers (its admin API; with the admin API
    /// off, its first listener accepts), else 1: the container health check.
    #[command(override_usage = "bascule health [-c <FILE>]")]
    Health {
        #[command(flatten)]
        config: ConfigArg,
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
        Command::Status { admin, token, json } => status(&admin, token.as_deref(), json),
        Command::Health { config } => health(&config.config),
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
                match e.downcast_ref::<config::ConfigError>() {
                    Some(ce) => eprintln!("{ce}"),
                    None => eprintln!("bascule: {e:#}"),
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
        app.serve(None).await
    })?;
    Ok(())
}

fn status(admin: &str, token: Option<&str>, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bascule status: {e}");
            return ExitCode::from(1);
        }
    };
    let fetched = runtime.block_on(client::get(admin, "/status", token));
    let body = match fetched {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bascule status: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return ExitCode::SUCCESS;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => {
            print!("{}", client::render(&v, std::time::SystemTime::now()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bascule status: {admin}/status is not JSON: {e}");
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

fn health(config: &std::path::Path) -> ExitCode {
    let Some(runtime) = current_thread() else {
        return ExitCode::from(1);
    };
    let limit = std::time::Duration::from_secs(3);
    let (admin, token, enabled) = client::admin_of(config);
    let result = runtime.block_on(async {
        if enabled {
            client::probe(admin, token.as_deref(), limit).await
        } else {
            let addr = client::first_listener(config)
                .ok_or_else(|| format!("{}: no listener to check", config.display()))?;
            tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| format!("{addr}: no answer within {limit:?}"))?
                .map(drop)
                .map_err(|e| format!("{addr}: {e}"))
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bascule health: {e}");
            ExitCode::from(1)
        }
    }
}

fn demo_upstream(name: String, listen: std::net::SocketAddr) -> ExitCode {
    init_logging(LogFormat::Text);
    let Some(runtime) = current_thread() else {
        return ExitCode::from(1);
    };
    let served = runtime.block_on(async {
        tokio::select! {
            r = bascule::demo::serve_one(&name, listen) => r,
            _ = shutdown_signal() => Ok(()),
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bascule demo-upstream: {listen}: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM or SIGINT (as PID 1 in a container, nothing else stops a process).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
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
        let demo = Demo::start().await.context("cannot start the simulated upstreams")?;
        let path = Demo::config_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
        }
        std::fs::write(&path, demo.config(listen, admin))
            .with_context(|| format!("{}", path.display()))?;
        let config = config::load(&path)?;
        let app = App::new(&path, config)?;
        println!(
            "\nbascule demo: primary-cdn > secondary-cdn > origin, all on loopback\n\n\
             \x20 site        http://{listen}/\n\
             \x20 dashboard   http://{admin}/\n\
             \x20 config      {}   (edit it: it reloads by itself)\n\n\
             Try:\n\
             \x20 curl -si http://{listen}/ | grep -i -e x-bascule -e x-served-by\n\
             \x20 curl -s -XPOST -H 'Content-Type: application/json' http://{admin}/demo/primary-cdn/refuse  # or hang, 503\n\
             \x20 bascule status --admin http://{admin}\n\
             \x20 curl -s -XPOST -H 'Content-Type: application/json' http://{admin}/demo/primary-cdn/ok      # heal: back after 5 s\n\
             \x20 (the dashboard has the same buttons)\n\nCtrl-C stops the demo.\n",
            path.display()
        );
        app.serve(Some(demo)).await?;
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
