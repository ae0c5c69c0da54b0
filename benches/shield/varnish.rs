//! The Varnish target of the surge (`--varnish`): the Debian package's `varnishd` (7.x) in the
//! foreground as our child (`-F`), in its own instance directory (`-n`) so that it never
//! touches a system instance, on a fixed 127.0.0.1 port, `-s malloc,256m`, no management
//! port (`-T none`). The VCL is what a user would write for "two CDNs, then the origin": the
//! three backends probed on the path the harness serves to probes, a `fallback` director in
//! that order, and grace left at its default (`default_grace` 10 s); nothing else is tuned.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::running::Running;

/// The VCL: probes as the other targets' checks are (every 500 ms, one failure marks a
/// backend sick, one success healthy: `.window = 1`, `.threshold = 1`).
pub fn vcl(cdn1: SocketAddr, cdn2: SocketAddr, origin: SocketAddr) -> String {
    let backend = |name: &str, a: SocketAddr| {
        format!(
            "backend {name} {{ .host = \"{}\"; .port = \"{}\"; .probe = healthz; }}\n",
            a.ip(),
            a.port()
        )
    };
    format!(
        "vcl 4.1;\nimport directors;\n\
         probe healthz {{ .url = \"/healthz\"; .interval = 500ms; .window = 1; .threshold = 1; }}\n\
         {}{}{}\
         sub vcl_init {{\n  new tiers = directors.fallback();\n  tiers.add_backend(cdn1);\n  \
         tiers.add_backend(cdn2);\n  tiers.add_backend(origin);\n}}\n\
         sub vcl_recv {{ set req.backend_hint = tiers.backend(); }}\n",
        backend("cdn1", cdn1),
        backend("cdn2", cdn2),
        backend("origin", origin)
    )
}

/// Starts `varnishd` on `port` with the VCL for these tiers; its output goes to `dir`.
pub async fn start(
    dir: &Path,
    port: u16,
    cdn1: SocketAddr,
    cdn2: SocketAddr,
    origin: SocketAddr,
) -> Result<Running, String> {
    let file = dir.join("shield.vcl");
    std::fs::write(&file, vcl(cdn1, cdn2, origin)).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(dir.join("varnishd.log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new("varnishd")
        .arg("-F")
        .arg("-n")
        .arg(dir.join("instance"))
        .arg("-a")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-f")
        .arg(&file)
        .args(["-s", "malloc,256m", "-T", "none"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("varnishd: {e}"))?;
    Running::ready(child, SocketAddr::from(([127, 0, 0, 1], port)), "varnishd").await
}
