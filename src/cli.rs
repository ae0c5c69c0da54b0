//! The command line's shape (clap derive): the subcommands and the argument groups they
//! share. Part of the binary, not the library; `main` matches on [`Command`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use bascule::config;

#[derive(Parser)]
#[command(
    name = "bascule",
    version,
    about = "Edge reverse proxy: primary CDN, else secondary CDN, else origin"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The config file argument that run, check and health share. Optional: the help states its
/// default once, in words (clap's own `[env: …] [default: …]` are hidden).
#[derive(Args)]
pub(crate) struct ConfigArg {
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
    pub(crate) config: PathBuf,
}

/// Where a running bascule's admin API is, and its token: the operator commands share these.
#[derive(Args)]
pub(crate) struct AdminArgs {
    /// The admin API's base URL
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9901")]
    pub(crate) admin: String,
    /// The admin API's bearer token
    #[arg(
        long,
        value_name = "TOKEN",
        env = "BASCULE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
}

/// `drain` and `undrain`: which upstream, why, and where.
#[derive(Args)]
pub(crate) struct UpstreamArgs {
    /// The upstream's name
    pub(crate) upstream: String,
    /// Why (kept in the events; shown by `bascule status` while drained)
    #[arg(long, value_name = "REASON")]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

/// `pin`: which route, which tier, why, and where.
#[derive(Args)]
pub(crate) struct PinArgs {
    /// The route's name
    pub(crate) route: String,
    /// The tier: its 0-based index, or the name of an upstream in it
    pub(crate) tier: String,
    /// Why (kept in the events; shown by `bascule status` while pinned)
    #[arg(long, value_name = "REASON")]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

/// `unpin`: which route, why, and where.
#[derive(Args)]
pub(crate) struct RouteArgs {
    /// The route's name
    pub(crate) route: String,
    /// Why (kept in the events)
    #[arg(long, value_name = "REASON")]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

/// `purge`: which stored copies, and where.
#[derive(Args)]
pub(crate) struct PurgeArgs {
    /// The site's host name, e.g. www.example.com
    pub(crate) host: String,
    /// A path, e.g. /news/story, or a prefix ending in '*', e.g. '/news/*'
    pub(crate) path: String,
    #[command(flatten)]
    pub(crate) admin: AdminArgs,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
