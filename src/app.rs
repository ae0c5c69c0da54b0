//! Wiring and lifecycle: loads the config, compiles the first routing table, starts the
//! health checkers, the steering task, the config watcher, the admin API (with its rate
//! history's sampler) and the listeners, runs until SIGTERM/SIGINT, and owns shutdown. SIGHUP
//! reloads the config file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::history::History;
use crate::admin::AdminApi;
use crate::checker::Checkers;
use crate::client::Dns;
use crate::config::Limits;
use crate::config::{self, Config};
use crate::demo::DemoControl;
use crate::events::{EventLog, Signal, Signals};
use crate::memory;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::reload::{Outcome, Reloader, Trigger};
use crate::resources;
use crate::routing::{Registry, RoutingTable};
use crate::server::{self, Server, TableCerts};
use crate::steering::Steering;
use crate::tls;

/// Why the process could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config file is invalid or unreadable.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The first table could not be built.
    #[error("{0}")]
    Compile(#[from] crate::routing::CompileError),
    /// A listener could not be bound.
    #[error("{0}")]
    Startup(String),
}

/// Shared state of a running proxy: the serving table, the reloader that replaces it, and
/// the event log and metrics the admin API shows.
pub struct App {
    path: PathBuf,
    table: Arc<ArcSwap<RoutingTable>>,
    reloader: Arc<Reloader>,
    /// One health checker per live upstream of the serving table.
    checkers: Arc<Checkers>,
    events: EventLog,
    metrics: Arc<Metrics>,
    /// Taken by `serve` to start the steering task.
    signal_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>>,
}

impl App {
    /// Compiles `config` into the first routing table (generation 1).
    pub fn new(path: &Path, config: Config) -> Result<Arc<App>, RunError> {
        let (signals, signal_rx) = Signals::channel();
        let metrics = Arc::new(Metrics::new());
        let registry = Registry::new(Dns::system(), signals, metrics.clone());
        let table = RoutingTable::compile(Arc::new(config), 1, &registry)?;
        table.commit(&registry);
        let table = Arc::new(ArcSwap::from_pointee(table));
        let checkers = Arc::new(Checkers::default());
        let reloader = Arc::new(Reloader::new(
            path,
            table.clone(),
            registry,
            metrics.clone(),
            checkers.clone(),
        ));
        Ok(Arc::new(App {
            path: path.to_path_buf(),
            table,
            reloader,
            checkers,
            events: EventLog::default(),
            metrics,
            signal_rx: Mutex::new(Some(signal_rx)),
        }))
    }

    /// The live routing table handle.
    pub fn table(&self) -> Arc<ArcSwap<RoutingTable>> {
        self.table.clone()
    }

    /// Binds every listener, serves until SIGTERM/SIGINT, then drains within the grace period.
    /// `demo` is `bascule demo`'s switchboard for its simulated upstreams.
    pub async fn serve(
        self: Arc<Self>,
        demo: Option<Arc<dyn DemoControl>>,
    ) -> Result<(), RunError> {
        let config = self.table.load().config.clone();
        let shutdown = CancellationToken::new();
        let mut loops = Vec::new();
        // The admin API first: once the proxy accepts, /status answers too.
        if config.admin.enabled {
            let addr = config.admin.listen;
            let l = server::bind(addr)
                .map_err(|e| RunError::Startup(format!("cannot listen on {addr} (admin): {e}")))?;
            // The bound address: with port 0 in the config, this line says which port it got.
            let addr = l.local_addr().unwrap_or(addr);
            info!(%addr, "admin API listening");
            let reloader = self.reloader.clone();
            let history = Arc::new(History::default());
            loops.push(tokio::spawn(
                history.clone().sample(self.table(), shutdown.clone()),
            ));
            let api = AdminApi {
                table: self.table(),
                events: self.events.clone(),
                metrics: self.metrics.clone(),
                history,
                last_error: self.reloader.last_error(),
                reload: Arc::new(move || {
                    match reloader.reload(Trigger::Admin).map_err(|e| e.to_string())? {
                        Outcome::Applied(g) => Ok(g),
                        Outcome::Unchanged => {
                            Err("unreachable: an admin reload always applies".into())
                        }
                    }
                }),
                token: config.admin.token.clone(),
                hosts: config.admin.hosts.clone(),
                demo,
            };
            loops.push(tokio::spawn(api.serve(l, shutdown.clone())));
        }
        let tls = if config.listen.https.is_empty() {
            None
        } else {
            let certs = Arc::new(TableCerts(self.table()));
            Some(TlsAcceptor::from(
                tls::server_config(certs).map_err(RunError::Startup)?,
            ))
        };
        let mut listeners = Vec::new();
        let plain = config.listen.http.iter().map(|a| (a, None));
        let secure = config.listen.https.iter().map(|a| (a, tls.clone()));
        for (addr, tls) in plain.chain(secure) {
            let l = server::bind(*addr)
                .map_err(|e| RunError::Startup(format!("cannot listen on {addr}: {e}")))?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            let addr = l.local_addr().unwrap_or(*addr);
            info!(%addr, scheme, "listening");
            listeners.push((l, tls));
        }
        let signal_rx = self
            .signal_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| RunError::Startup("serve called twice".into()))?;
        let steering = tokio::spawn(
            Steering::new(
                self.table(),
                signal_rx,
                self.events.clone(),
                self.metrics.clone(),
            )
            .run(),
        );
        self.checkers.sync(&self.table.load());
        loops.push(tokio::spawn(self.reloader.clone().watch(shutdown.clone())));

        let server = Arc::new(Server::new(
            Proxy::new(self.table(), self.metrics.clone(), &config.limits),
            sized_limits(&config.limits),
        ));
        for (l, tls) in listeners {
            let (s, rx) = (server.clone(), shutdown.clone());
            loops.push(tokio::spawn(async move { s.accept_loop(l, tls, rx).await }));
        }
        loops.push(tokio::spawn(reap_pools(self.table(), shutdown.clone())));
        let s = server.clone();
        loops.push(tokio::spawn(memory::trimmer(
            move || s.open_connections(),
            shutdown.clone(),
        )));
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
                    let reloader = self.reloader.clone();
                    // Errors are logged and kept as last_error by the reload itself.
                    let _logged = tokio::task::spawn_blocking(move || reloader.reload(Trigger::Signal)).await;
                }
            }
        }
        info!(grace = ?config.limits.shutdown_grace, "shutting down: no new connections, finishing in-flight requests");
        shutdown.cancel();
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

/// `limits` with `max_connections` sized to the open-files limit, raised first to the hard
/// limit; both said in the log.
fn sized_limits(limits: &Limits) -> Limits {
    let mut sized = limits.clone();
    match resources::raise_file_limit() {
        Ok(l) => {
            if l.now > l.was {
                info!(
                    from = l.was,
                    to = l.now,
                    "open-files limit raised to the hard limit"
                );
            }
            sized.max_connections = resources::connections_for(l.now, limits.max_connections);
            if sized.max_connections < limits.max_connections {
                warn!(
                    configured = limits.max_connections,
                    max_connections = sized.max_connections,
                    open_files = l.now,
                    "max_connections lowered to what the open-files limit allows (a client connection may need an upstream connection too)"
                );
            } else {
                info!(
                    max_connections = sized.max_connections,
                    open_files = l.now,
                    "connection limit"
                );
            }
        }
        Err(e) => warn!(error = %e, "cannot read or raise the open-files limit"),
    }
    sized
}

/// Closes the serving table's expired idle upstream connections every
/// [`client::REAP_EVERY`](crate::client::REAP_EVERY), until `shutdown`.
async fn reap_pools(table: Arc<ArcSwap<RoutingTable>>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(crate::client::REAP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for u in &table.load().upstreams {
            u.live.client.reap();
        }
    }
}
