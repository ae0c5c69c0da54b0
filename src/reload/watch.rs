//! The file side of hot reload: inotify (or platform) watches on the config file, its TLS files
//! and their directories, and the debounce of event bursts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{DEBOUNCE, DEBOUNCE_MAX};

/// Waits until events stop for `DEBOUNCE` (at most `DEBOUNCE_MAX` in all), draining them.
pub(super) async fn debounce(rx: &mut mpsc::UnboundedReceiver<()>) {
    let until = Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet = tokio::time::sleep(DEBOUNCE);
        tokio::select! {
            more = rx.recv() => if more.is_none() { return },
            _ = quiet => return,
        }
        if Instant::now() >= until {
            return;
        }
    }
}

/// Inotify (or platform) watches on the directories of the config file and of its
/// certificate and key files, and on those files themselves.
pub(super) struct FileWatcher {
    inner: notify::RecommendedWatcher,
    dirs: HashSet<PathBuf>,
    files: Vec<PathBuf>,
}

impl FileWatcher {
    pub(super) fn new(tx: mpsc::UnboundedSender<()>) -> notify::Result<FileWatcher> {
        let inner = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Every event in a watched directory is a hint; the content hash decides.
            if event.is_ok_and(|e| !e.kind.is_access()) {
                let _receiver_gone_at_shutdown = tx.send(());
            }
        })?;
        Ok(FileWatcher {
            inner,
            dirs: HashSet::new(),
            files: Vec::new(),
        })
    }

    /// Watches `files` and their directories (keeping existing directory watches, adding new
    /// ones), and re-watches the files themselves: after a rename-over, a file watch is left
    /// on the dead inode.
    pub(super) fn sync(&mut self, files: Vec<PathBuf>) {
        for f in &self.files {
            let _not_watched = self.inner.unwatch(f);
        }
        for f in &files {
            let dir = match f.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !self.dirs.contains(&dir) {
                match self.inner.watch(&dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.dirs.insert(dir);
                    }
                    Err(e) => {
                        warn!(error = %e, dir = %dir.display(), "cannot watch directory; the content poll still covers it")
                    }
                }
            }
            if let Err(e) = self.inner.watch(f, RecursiveMode::NonRecursive) {
                debug!(error = %e, file = %f.display(), "cannot watch the file itself (its directory still is)");
            }
        }
        self.files = files;
    }
}
