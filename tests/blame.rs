//! Who is blamed for a failure (DESIGN §7.6): a failure one request causes on every tier is the
//! request's, not the CDNs' (a client hammering a failing page cannot eject them), and bascule
//! running out of file descriptors is bascule's own — never an upstream's ejection, never a
//! config error.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{bounded, get, FakeUpstream, ProxyConfig};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(40);

fn events_about(status: &serde_json::Value, subject: &str) -> Vec<String> {
    status["events"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["subject"] == subject && e["kind"] == "upstream_state")
                .map(|e| format!("{} -> {}: {}", e["from"], e["to"], e["reason"]))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_client_hammering_a_page_every_tier_fails_ejects_no_cdn() {
    bounded(LIMIT, async {
        let cdn1 = FakeUpstream::status_on("cdn1", "/attack", 503).await;
        let cdn2 = FakeUpstream::status_on("cdn2", "/attack", 503).await;
        let origin = FakeUpstream::status_on("origin", "/attack", 503).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults("[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 3\nejection = \"10s\"")
            .one_route("www", &[&cdn1, &cdn2, &origin], "")
            .start()
            .await;
        // Three parallel attack requests, then one reader, twenty times over.
        for _ in 0..20 {
            let attacks: Vec<_> = (0..3)
                .map(|_| tokio::spawn(get(proxy.addr, "www.example.com", "/attack")))
                .collect();
            for a in attacks {
                let r = a.await.expect("attack request");
                assert_eq!(r.status, 503, "the last tier's answer is passed through");
            }
            let r = get(proxy.addr, "www.example.com", "/").await;
            assert_eq!(r.header("x-bascule-upstream"), "cdn1", "readers stay on the primary");
        }
        let st = proxy.status().await;
        for u in ["cdn1", "cdn2", "origin"] {
            assert_eq!(events_about(&st, u), Vec::<String>::new(), "{u}");
        }
        assert!(cdn1.hits() >= 80, "every attack reached cdn1 first");
    })
    .await;
}

#[tokio::test]
async fn a_failure_the_next_tier_does_not_share_still_counts_against_the_cdn() {
    bounded(LIMIT, async {
        let cdn1 = FakeUpstream::status_on("cdn1", "/page", 503).await;
        let cdn2 = FakeUpstream::ok("cdn2").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .defaults("[defaults.health]\ninterval = \"60s\"\n[defaults.passive]\nconsecutive_failures = 3\nejection = \"10s\"")
            .one_route("www", &[&cdn1, &cdn2], "")
            .start()
            .await;
        for _ in 0..3 {
            let r = get(proxy.addr, "www.example.com", "/page").await;
            assert_eq!(r.header("x-bascule-upstream"), "cdn2");
        }
        proxy
            .wait_status(Duration::from_secs(3), "cdn1 ejected", |s| {
                s["upstreams"][0]["state"] == "ejected"
            })
            .await;
    })
    .await;
}

#[tokio::test]
async fn running_out_of_file_descriptors_blames_no_upstream_and_no_config() {
    bounded(LIMIT, async {
        let cdn = FakeUpstream::hang_on("cdn", "/hang").await;
        let origin = FakeUpstream::ok("origin").await;
        let config = ProxyConfig::new()
            .admin("")
            .open_files(160)
            .defaults("connect_timeout = \"1s\"\n[defaults.health]\ninterval = \"200ms\"\nfall = 1\n[defaults.passive]\nconsecutive_failures = 1\nejection = \"30s\"")
            .one_route("www", &[&cdn, &origin], "");
        let proxy = config.clone().start().await;
        // Six HTTP/2 connections with 32 hanging requests each want ~190 upstream sockets:
        // more than 160 descriptors hold.
        let mut conns = Vec::new();
        let mut pending = Vec::new();
        for _ in 0..6 {
            let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("h2 handshake");
            conns.push(tokio::spawn(conn));
            for n in 0..32 {
                let mut send = send.clone();
                // Distinct queries: the shield would coalesce identical GETs into one.
                let req = Request::get(format!("http://{}/hang?c={}&n={n}", proxy.addr, conns.len()))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                pending.push(tokio::spawn(async move { send.send_request(req).await }));
            }
        }
        // While exhausted, the config file is touched (its watcher must not report an error).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proxy.rewrite(&config);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        for p in pending {
            p.abort();
        }
        for c in conns {
            c.abort();
        }
        let st = proxy
            .wait_status(Duration::from_secs(10), "descriptors free again", |_| true)
            .await;
        let _ = st;
        let s = proxy.status().await;
        assert_eq!(s["config"]["last_error"], serde_json::Value::Null, "{s:#}");
        for u in ["cdn", "origin"] {
            assert_eq!(events_about(&s, u), Vec::<String>::new(), "{u}: {s:#}");
        }
        let metrics = support::get(proxy.admin, "127.0.0.1", "/metrics").await.text();
        let local: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("bascule_local_errors_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(local > 0.0, "the exhaustion is counted as bascule's own:\n{metrics}");
        let r = get(proxy.addr, "www.example.com", "/").await;
        assert_eq!(r.header("x-bascule-upstream"), "cdn", "the CDN stays in use");
    })
    .await;
}
