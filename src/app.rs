//! Wiring and lifecycle: loads the config, compiles the first routing table, binds listeners,
//! runs until SIGTERM/SIGINT, and owns shutdown. SIGHUP reloads the config file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::client::Dns;
use crate::config::{self, Config};
use crate::proxy::Proxy;
use crate::routing::{RoutingTable, UpstreamRegistry};
use crate::server::{self, Server};

/// Why the process could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid or unreadable.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// A listener could not be bound, or the table could not be built.
    #[error("{0}")]
    Startup(String),
}

/// Shared state of a running proxy.
pub struct App {
    path: PathBuf,
    table: Arc<ArcSwap<RoutingTable>>,
    registry: UpstreamRegistry,
}

impl App {
    /// Compiles `config` into the first routing table (generation 1).
    pub fn new(path: &Path, config: Config) -> Result<App, RunError> {
        let registry = UpstreamRegistry::new(Dns::system());
        let table =
            RoutingTable::compile(Arc::new(config), 1, &registry).map_err(RunError::Startup)?;
        Ok(App {
            path: path.to_path_buf(),
            table: Arc::new(ArcSwap::from_pointee(table)),
            registry,
        })
    }

    /// The live routing table handle.
    pub fn table(&self) -> Arc<ArcSwap<RoutingTable>> {
        self.table.clone()
    }

    /// Re-reads the config file and swaps in the new table; an invalid file changes nothing.
    pub fn reload(&self) -> Result<u64, String> {
        let config = config::load(&self.path).map_err(|e| e.to_string())?;
        let current = self.table.load();
        if config.listen != current.config.listen
            || config.admin != current.config.admin
            || config.limits != current.config.limits
        {
            warn!("listener, admin or limits settings changed: they take effect after a restart");
        }
        let generation = current.generation + 1;
        let table = RoutingTable::compile(Arc::new(config), generation, &self.registry)?;
        self.table.store(Arc::new(table));
        Ok(generation)
    }

    /// Binds every listener, serves until SIGTERM/SIGINT, then drains within the grace period.
    pub async fn serve(self) -> Result<(), RunError> {
        let config = self.table.load().config.clone();
        let mut listeners = Vec::new();
        for addr in config.listen.http.iter().chain(config.listen.https.iter()) {
            let l = server::bind(*addr)
                .map_err(|e| RunError::Startup(format!("cannot listen on {addr}: {e}")))?;
            info!(%addr, "listening");
            listeners.push(l);
        }
        if !config.listen.https.is_empty() {
            warn!("listen.https is not served yet by this build: TLS listeners accept plain HTTP");
        }
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = Arc::new(Server::new(Proxy::new(self.table()), config.limits.clone()));
        let mut loops = Vec::new();
        for l in listeners {
            let (s, rx) = (server.clone(), shutdown_rx.clone());
            loops.push(tokio::spawn(async move { s.accept_loop(l, rx).await }));
        }
        info!(path = %self.path.display(), routes = config.routes.len(), upstreams = config.upstreams.len(), "bascule started");

        let sig = |k| signal(k).map_err(|e| RunError::Startup(format!("signal handler: {e}")));
        let (mut term, mut int, mut hup) = (
            sig(SignalKind::terminate())?,
            sig(SignalKind::interrupt())?,
            sig(SignalKind::hangup())?,
        );
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => match self.reload() {
                    Ok(g) => info!(generation = g, "reloaded on SIGHUP"),
                    Err(e) => error!("reload failed, keeping the running config:\n{e}"),
                },
            }
        }
        info!(grace = ?config.limits.shutdown_grace, "shutting down: no new connections, finishing in-flight requests");
        let _ = shutdown_tx.send(true);
        for l in loops {
            let _ = l.await;
        }
        if server.drain(config.limits.shutdown_grace).await {
            info!("all connections closed");
        } else {
            warn!("shutdown grace period over; closing remaining connections");
        }
        Ok(())
    }
}
