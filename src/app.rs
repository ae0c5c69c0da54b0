//! Wiring and lifecycle: loads the config, compiles the first routing table, starts the
//! health checkers, the steering task, the admin API and the listeners, runs until
//! SIGTERM/SIGINT, and owns shutdown. SIGHUP and `POST /reload` reload the config file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::admin::AdminApi;
use crate::checker::Checkers;
use crate::client::Dns;
use crate::config::{self, Config};
use crate::health::events::{Event, EventKind, EventLog, Signal, Signals};
use crate::proxy::Proxy;
use crate::routing::{Changes, Registry, RoutingTable};
use crate::server::{self, Server};
use crate::steering::Steering;

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

/// Shared state of a running proxy: the serving table and the live objects behind it.
pub struct App {
    path: PathBuf,
    table: Arc<ArcSwap<RoutingTable>>,
    registry: Registry,
    checkers: Checkers,
    events: EventLog,
    last_error: Arc<Mutex<Option<String>>>,
    /// Taken by `serve` to start the steering task.
    signal_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>>,
    /// Serializes reloads (SIGHUP and `POST /reload` may race).
    reloading: Mutex<()>,
}

impl App {
    /// Compiles `config` into the first routing table (generation 1).
    pub fn new(path: &Path, config: Config) -> Result<Arc<App>, RunError> {
        let (signals, signal_rx) = Signals::channel();
        let registry = Registry::new(Dns::system(), signals);
        let table =
            RoutingTable::compile(Arc::new(config), 1, &registry).map_err(RunError::Startup)?;
        table.commit(&registry);
        Ok(Arc::new(App {
            path: path.to_path_buf(),
            table: Arc::new(ArcSwap::from_pointee(table)),
            registry,
            checkers: Checkers::default(),
            events: EventLog::default(),
            last_error: Arc::default(),
            signal_rx: Mutex::new(Some(signal_rx)),
            reloading: Mutex::new(()),
        }))
    }

    /// The live routing table handle.
    pub fn table(&self) -> Arc<ArcSwap<RoutingTable>> {
        self.table.clone()
    }

    /// Re-reads the config file and swaps in the new table; an invalid file changes nothing
    /// and is kept as `last_error`. `why` names the trigger in the event.
    pub fn reload(&self, why: &str) -> Result<u64, String> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.table.load_full();
        let result = config::load(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                if config.listen != current.config.listen
                    || config.admin != current.config.admin
                    || config.limits != current.config.limits
                {
                    warn!("listener, admin or limits settings changed: they take effect after a restart");
                }
                RoutingTable::compile(Arc::new(config), current.generation + 1, &self.registry)
            });
        let signals = self.registry.signals();
        let subject = self.path.display().to_string();
        match result {
            Ok(table) => {
                let generation = table.generation;
                let table = Arc::new(table);
                self.table.store(Arc::clone(&table));
                let changes = table.commit(&self.registry);
                self.checkers.sync(&table);
                signals.resteer();
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                info!(generation, changes = %summary(&changes), "config reloaded ({why})");
                signals.emit(Event::now(
                    EventKind::Reload,
                    subject,
                    current.generation.to_string(),
                    generation.to_string(),
                    format!("{why}: {}", summary(&changes)),
                ));
                Ok(generation)
            }
            Err(e) => {
                error!(
                    "reload ({why}) failed, keeping generation {}:\n{e}",
                    current.generation
                );
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                let g = current.generation.to_string();
                signals.emit(Event::now(
                    EventKind::Reload,
                    subject,
                    g.clone(),
                    g,
                    format!("{why}: failed: {}", e.lines().next().unwrap_or("")),
                ));
                Err(e)
            }
        }
    }

    /// Binds every listener, serves until SIGTERM/SIGINT, then drains within the grace period.
    pub async fn serve(self: Arc<Self>) -> Result<(), RunError> {
        let config = self.table.load().config.clone();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut loops = Vec::new();
        // The admin API first: once the proxy accepts, /status answers too.
        if config.admin.enabled {
            let addr = config.admin.listen;
            let l = server::bind(addr)
                .map_err(|e| RunError::Startup(format!("cannot listen on {addr} (admin): {e}")))?;
            info!(%addr, "admin API listening");
            let app = Arc::clone(&self);
            let api = AdminApi {
                table: self.table(),
                events: self.events.clone(),
                last_error: self.last_error.clone(),
                reload: Arc::new(move || app.reload("POST /reload")),
                token: config.admin.token.clone(),
            };
            loops.push(tokio::spawn(api.serve(l, shutdown_rx.clone())));
        }
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
        let signal_rx = self
            .signal_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| RunError::Startup("serve called twice".into()))?;
        let steering =
            tokio::spawn(Steering::new(self.table(), signal_rx, self.events.clone()).run());
        self.checkers.sync(&self.table.load());

        let server = Arc::new(Server::new(Proxy::new(self.table()), config.limits.clone()));
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
                _ = hup.recv() => {
                    // Errors are logged and kept as last_error by reload itself.
                    let _logged = self.reload("SIGHUP");
                }
            }
        }
        info!(grace = ?config.limits.shutdown_grace, "shutting down: no new connections, finishing in-flight requests");
        let _receivers_may_be_gone = shutdown_tx.send(true);
        for l in loops {
            let _finished = l.await;
        }
        self.checkers.stop();
        steering.abort();
        if server.drain(config.limits.shutdown_grace).await {
            info!("all connections closed");
        } else {
            warn!("shutdown grace period over; closing remaining connections");
        }
        Ok(())
    }
}

/// "upstreams +a -b ~c, routes +r" (or "no changes").
fn summary(c: &Changes) -> String {
    let part = |what: &str, added: &[String], removed: &[String], changed: &[String]| {
        let mut items: Vec<String> = Vec::new();
        items.extend(added.iter().map(|n| format!("+{n}")));
        items.extend(removed.iter().map(|n| format!("-{n}")));
        items.extend(changed.iter().map(|n| format!("~{n}")));
        (!items.is_empty()).then(|| format!("{what} {}", items.join(" ")))
    };
    let parts: Vec<String> = [
        part(
            "upstreams",
            &c.upstreams_added,
            &c.upstreams_removed,
            &c.upstreams_changed,
        ),
        part(
            "routes",
            &c.routes_added,
            &c.routes_removed,
            &c.routes_changed,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "no changes".to_owned()
    } else {
        parts.join(", ")
    }
}
