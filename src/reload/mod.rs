//! Reloads: triggers (file events, a content-hash poll, SIGHUP, `POST /reload`) → load →
//! validate → compile → swap. The whole file is parsed, validated and compiled before anything
//! changes; an invalid file changes nothing, is logged with its `FILE:LINE:COL` errors, counted
//! and kept as `last_error` until the next good reload. In-flight requests finish on the
//! snapshot they started with.
//!
//! File watching (DESIGN §4 "Hot reload"): the directories of the config file and of its
//! certificate and key files are watched, so that an editor's rename-over-write, certbot's
//! symlink swap and a Kubernetes ConfigMap's `..data` symlink swap are seen, and the files
//! themselves, so that in-place writes through a single-file bind mount are seen (re-armed
//! after every event, since a rename leaves a watch on the old inode). Bursts are debounced; a
//! slow poll of the content's hash covers filesystems without events. A file event that leaves
//! the config and its TLS files as applied is a no-op — a renewed certificate is a reload like
//! any other; SIGHUP and `POST /reload` always apply.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

mod watch;

use crate::checker::Checkers;
use crate::config::{self, fingerprint, hash_bytes, tls_files, Config};
use crate::events::{Change, Event};
use crate::metrics::Metrics;
use crate::routing::{Changes, CompileError, Registry, RoutingTable};
use watch::{debounce, FileWatcher};

/// Quiet time after a file event before reloading (editors write in bursts).
const DEBOUNCE: Duration = Duration::from_millis(25);
/// A burst of events delays a reload at most this long.
const DEBOUNCE_MAX: Duration = Duration::from_millis(250);
/// The content-hash poll, for filesystems that send no events.
const POLL: Duration = Duration::from_secs(2);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP: always applies.
    Signal,
    /// `POST /reload`: always applies.
    Admin,
    /// A file event or the poll: applies only when the content changed.
    File,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Signal => "SIGHUP",
            Trigger::Admin => "POST /reload",
            Trigger::File => "file change",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new table serves, with this generation.
    Applied(u64),
    /// A file event left the content as applied: nothing to do.
    Unchanged,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is unreadable or invalid (every error, `FILE:LINE:COL`).
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The config is valid but its live objects could not be built.
    #[error("{0}")]
    Compile(#[from] CompileError),
    /// bascule is out of file descriptors: not the file's fault, so it is neither reported as
    /// `last_error` nor remembered; the poll tries again.
    #[error("reload deferred: bascule is out of file descriptors: {0}")]
    Deferred(String),
}

/// Owns the serving table's replacement: everything a reload touches.
pub struct Reloader {
    path: PathBuf,
    table: Arc<ArcSwap<RoutingTable>>,
    registry: Registry,
    /// The app's health checkers, synced to each new table.
    checkers: Arc<Checkers>,
    metrics: Arc<Metrics>,
    last_error: Arc<Mutex<Option<String>>>,
    /// Serializes reloads (SIGHUP, the admin API and file events may race), and holds the
    /// hash of the content the last failed reload read: file events and the poll do not retry
    /// the same broken content (the error was reported once).
    reloading: Mutex<Option<u64>>,
}

impl Reloader {
    /// A reloader of the config at `path` into `table`, with live objects from `registry`,
    /// keeping `checkers` in step with each new table.
    pub fn new(
        path: &Path,
        table: Arc<ArcSwap<RoutingTable>>,
        registry: Registry,
        metrics: Arc<Metrics>,
        checkers: Arc<Checkers>,
    ) -> Reloader {
        Reloader {
            path: path.to_path_buf(),
            table,
            registry,
            checkers,
            metrics,
            last_error: Arc::default(),
            reloading: Mutex::new(None),
        }
    }

    /// The last failed reload's message, until the next good one (shared with the admin API).
    pub fn last_error(&self) -> Arc<Mutex<Option<String>>> {
        self.last_error.clone()
    }

    /// Reloads now (blocking: reads and compiles files). An invalid file changes nothing.
    pub fn reload(&self, trigger: Trigger) -> Result<Outcome, ReloadError> {
        let mut failed_hash = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.table.load_full();
        let on_disk = self.content_hash(&current.config);
        if trigger == Trigger::File
            && (on_disk == current.config.content_hash || Some(on_disk) == *failed_hash)
        {
            debug!("config file event with unchanged content: nothing to do");
            return Ok(Outcome::Unchanged);
        }
        let result = config::load(&self.path)
            .map_err(ReloadError::from)
            .and_then(|config| {
                let restart = needs_restart(&current.config, &config);
                let generation = current.generation + 1;
                RoutingTable::compile(Arc::new(config), generation, &self.registry)
                    .map(|t| (t, restart))
                    .map_err(ReloadError::from)
            });
        let signals = self.registry.signals();
        let subject = self.path.display().to_string();
        let why = trigger.as_str();
        match result {
            Ok((table, restart)) => {
                let generation = table.generation;
                let table = Arc::new(table);
                self.table.store(Arc::clone(&table));
                let changes = table.commit(&self.registry);
                self.checkers.sync(&table);
                signals.resteer();
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                *failed_hash = None;
                self.metrics.reloaded(true, generation);
                let mut summary = summary(&changes);
                if let Some(r) = restart {
                    warn!("{r} changed: it takes effect after a restart");
                    summary.push_str(&format!("; {r} changed, needs a restart"));
                }
                info!(generation, changes = %summary, "config reloaded ({why})");
                signals.emit(Event::now(
                    subject,
                    Change::Reload {
                        from: current.generation,
                        to: generation,
                    },
                    format!("{why}: {summary}"),
                ));
                Ok(Outcome::Applied(generation))
            }
            Err(e) if crate::resources::fds_exhausted() => {
                // bascule's own exhaustion, not a broken file: nothing is reported or
                // remembered, so the poll tries again once descriptors are free.
                let first = e.to_string().lines().next().unwrap_or("").to_owned();
                warn!("reload ({why}) deferred: bascule is out of file descriptors ({first})");
                Err(ReloadError::Deferred(first))
            }
            Err(e) => {
                let text = e.to_string();
                error!(
                    "reload ({why}) failed, keeping generation {}:\n{text}",
                    current.generation
                );
                *failed_hash = Some(on_disk);
                self.metrics.reloaded(false, current.generation);
                let g = current.generation;
                signals.emit(Event::now(
                    subject,
                    Change::Reload { from: g, to: g },
                    format!("{why}: failed: {}", text.lines().next().unwrap_or("")),
                ));
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                Err(e)
            }
        }
    }

    /// The fingerprint of the file and of the serving config's certificate and key files as
    /// they are now (an unreadable config file hashes as 0: a reload then reports why, once).
    fn content_hash(&self, applied: &Config) -> u64 {
        let text = std::fs::read(&self.path).map_or(0, |b| hash_bytes(&b));
        fingerprint(text, tls_files(&applied.certificates, &applied.upstreams))
    }

    /// The config file and the serving config's certificate and key files.
    fn watched_files(&self) -> Vec<PathBuf> {
        let table = self.table.load();
        std::iter::once(self.path.clone())
            .chain(
                tls_files(&table.config.certificates, &table.config.upstreams)
                    .map(Path::to_path_buf),
            )
            .collect()
    }

    /// Watches the config file until `shutdown`, reloading on changes. Runs on a runtime;
    /// reloads themselves run on the blocking pool.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let mut watcher = match FileWatcher::new(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, path = %self.path.display(), "cannot watch the config file; polling its content every {}", humantime::format_duration(POLL));
                None
            }
        };
        if let Some(w) = watcher.as_mut() {
            w.sync(self.watched_files());
        }
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() {
                        return;
                    }
                    debounce(&mut rx).await;
                }
                _ = poll.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let me = Arc::clone(&self);
            let outcome = tokio::task::spawn_blocking(move || me.reload(Trigger::File)).await;
            if let Err(e) = outcome {
                error!(error = %e, "reload task failed");
            }
            if let Some(w) = watcher.as_mut() {
                w.sync(self.watched_files());
            }
        }
    }
}

/// Which restart-only settings differ, if any.
fn needs_restart(old: &Config, new: &Config) -> Option<String> {
    let mut what = Vec::new();
    if old.listen.http != new.listen.http || old.listen.https != new.listen.https {
        what.push("listen addresses");
    }
    if old.admin != new.admin {
        what.push("[admin]");
    }
    if old.limits != new.limits {
        what.push("[limits]");
    }
    if old.log != new.log {
        what.push("[log]");
    }
    (!what.is_empty()).then(|| what.join(", "))
}

/// "upstreams +a -b ~c, routes +r" (or "no changes").
pub fn summary(c: &Changes) -> String {
    let part = |what: &str, added: &[String], removed: &[String], changed: &[String]| {
        let mut items: Vec<String> = Vec::new();
        items.extend(added.iter().map(|n| format!("+{n}")));
        items.extend(removed.iter().map(|n| format!("-{n}")));
        items.extend(changed.iter().map(|n| format!("~{n}")));
        (!items.is_empty()).then(|| format!("{what} {}", items.join(" ")))
    };
    let retuned = (!c.upstreams_retuned.is_empty())
        .then(|| format!("retuned in place {}", c.upstreams_retuned.join(" ")));
    let parts: Vec<String> = [
        part(
            "upstreams",
            &c.upstreams_added,
            &c.upstreams_removed,
            &c.upstreams_changed,
        ),
        retuned,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_what_changed() {
        let c = Changes {
            upstreams_added: vec!["b".into()],
            upstreams_removed: vec!["a".into()],
            upstreams_changed: vec!["c".into()],
            upstreams_retuned: vec!["d".into()],
            routes_added: vec!["r".into()],
            ..Changes::default()
        };
        assert_eq!(
            summary(&c),
            "upstreams +b -a ~c, retuned in place d, routes +r"
        );
        assert_eq!(summary(&Changes::default()), "no changes");
    }
}
