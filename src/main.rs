//! The `bascule` command line: parses arguments, sets up logging and the runtime, and hands
//! over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use bascule::app::App;
use bascule::config::{self, LogFormat};

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

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Config file [default: $BASCULE_CONFIG, else config/bascule.toml]
        #[arg(
            short,
            long,
            env = "BASCULE_CONFIG",
            default_value = "config/bascule.toml"
        )]
        config: PathBuf,
        /// Worker threads [default: one per core]
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a config file and print its routes; exit 0 if valid, 1 if not.
    Check {
        /// Config file [default: $BASCULE_CONFIG, else config/bascule.toml]
        #[arg(
            short,
            long,
            env = "BASCULE_CONFIG",
            default_value = "config/bascule.toml"
        )]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config, threads } => match run(&config, threads) {
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
    tune_allocator();
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
        app.serve().await
    })?;
    Ok(())
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

/// Keeps freed body buffers in the heap instead of returning them to the kernel after each
/// response (glibc's dynamic thresholds otherwise mmap/trim 64 KiB-class buffers, and every
/// request faults in fresh pages). Idle memory is unchanged: only memory once used is kept,
/// up to the trim threshold.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}
