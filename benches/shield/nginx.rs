//! The nginx target of the surge (`--nginx`): 1 worker, `proxy_cache` + `proxy_cache_use_stale
//! error timeout updating http_500 http_502 http_503 http_504` + `proxy_cache_lock on`, the CDNs
//! as primary servers (`max_fails=1`) and the origin as `backup`, as our child in the foreground.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::running::Running;

fn nginx_config(
    dir: &std::path::Path,
    port: u16,
    cdn1: SocketAddr,
    cdn2: SocketAddr,
    origin: SocketAddr,
) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1; daemon off; master_process off; pid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log crit;\nevents {{ worker_connections 8192; }}\n\
         http {{ access_log off; keepalive_timeout 75s; keepalive_requests 10000000;\n\
         client_body_temp_path {d}/t1; proxy_temp_path {d}/t2; fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;\n\
         proxy_cache_path {d}/cache levels=1:2 keys_zone=shield:10m max_size=256m;\n\
         upstream tiers {{ server {cdn1} max_fails=1 fail_timeout=30s; server {cdn2} max_fails=1 fail_timeout=30s; server {origin} backup; keepalive 64; }}\n\
         server {{ listen 127.0.0.1:{port} backlog=4096;\n\
         location / {{ proxy_pass http://tiers; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
         proxy_next_upstream error timeout http_502 http_503 http_504;\n\
         proxy_cache shield; proxy_cache_lock on;\n\
         proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504; }} }} }}\n"
    )
}

/// Starts nginx on `port` with the config for these tiers, in `dir`.
pub async fn start(
    dir: &Path,
    port: u16,
    cdn1: SocketAddr,
    cdn2: SocketAddr,
    origin: SocketAddr,
) -> Result<Running, String> {
    std::fs::create_dir_all(dir.join("cache")).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("nginx.conf"),
        nginx_config(dir, port, cdn1, cdn2, origin),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new("nginx")
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    Running::ready(child, SocketAddr::from(([127, 0, 0, 1], port)), "nginx").await
}
