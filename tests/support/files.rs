//! How config files get changed in the wild, for the reload tests: an editor's or `sed -i`'s
//! rename-over-write, an in-place write (a single-file bind mount), and a Kubernetes ConfigMap
//! volume, whose file is a symlink through `..data` to a timestamped directory that the kubelet
//! replaces by swapping the `..data` symlink.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes `text` to a temporary file beside `path`, then renames it over `path` (vim, sed -i).
pub fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// Truncates `path` and writes `text` into the same inode (a single-file bind mount).
pub fn write_in_place(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open in place");
    f.write_all(text.as_bytes()).expect("write in place");
}

fn timestamped(dir: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!(
        "..2026_11_27_00_00_00.{:09}",
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Lays `text` out in `dir` as a ConfigMap volume does; returns the path to run with
/// (`dir/bascule.toml` → `..data/bascule.toml`, `..data` → `..<timestamp>`).
pub fn configmap_layout(dir: &Path, text: &str) -> PathBuf {
    let data = timestamped(dir);
    std::fs::create_dir(&data).expect("create data dir");
    std::fs::write(data.join("bascule.toml"), text).expect("write config");
    let name = data.file_name().expect("dir name");
    std::os::unix::fs::symlink(name, dir.join("..data")).expect("..data symlink");
    let path = dir.join("bascule.toml");
    std::os::unix::fs::symlink("..data/bascule.toml", &path).expect("file symlink");
    path
}

/// Updates a ConfigMap volume in `dir` the way the kubelet does: a new timestamped directory,
/// a `..data_tmp` symlink to it renamed over `..data`, the old directory removed.
pub fn configmap_swap(dir: &Path, text: &str) {
    let old = std::fs::read_link(dir.join("..data")).expect("read ..data");
    let data = timestamped(dir);
    std::fs::create_dir(&data).expect("create data dir");
    std::fs::write(data.join("bascule.toml"), text).expect("write config");
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(data.file_name().expect("dir name"), &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(dir.join(old)).expect("remove the old data dir");
}
