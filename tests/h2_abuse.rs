//! HTTP/2 abuse is bounded (DESIGN §4 "Bad input", §7.6): rapid reset, CONTINUATION floods
//! and zero-window readers neither grow bascule's memory without bound nor keep it from
//! serving everyone else, and the upstream requests they started are freed. The abusive
//! client speaks raw frames (prior-knowledge h2c; `h2frames`); a canary client sends normal
//! GETs throughout, and bascule's resident memory is sampled while the abuse runs.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::h2frames::{self as h2, Raw};
use support::{bounded, get, Bascule, FakeUpstream, ProxyConfig};
use tokio::task::JoinSet;

/// Each of these tests has this long in all.
const LIMIT: Duration = Duration::from_secs(40);
/// The most bascule's resident memory may grow over its start while it is abused.
const RSS_BOUND_KIB: u64 = 64 << 10;

/// bascule's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// What happened to the proxy and to everyone else while the abuse ran.
struct Watched<T> {
    abuse: T,
    canary: Vec<u16>,
    rss_start: u64,
    rss_peak: u64,
}

impl<T> Watched<T> {
    /// Every canary GET was answered 200, there were some, and memory stayed bounded.
    fn assert_bounded_and_served(&self, what: &str) {
        assert!(
            self.canary.len() >= 3,
            "{what}: only {} canary GETs ran",
            self.canary.len()
        );
        let failed: Vec<&u16> = self.canary.iter().filter(|s| **s != 200).collect();
        assert!(
            failed.is_empty(),
            "{what}: canary answers {failed:?} of {}",
            self.canary.len()
        );
        let grew = self.rss_peak.saturating_sub(self.rss_start);
        eprintln!(
            "{what}: RSS {} KiB at start, peak {} KiB (+{grew} KiB); {} canary GETs, all 200",
            self.rss_start,
            self.rss_peak,
            self.canary.len()
        );
        assert!(grew < RSS_BOUND_KIB, "{what}: RSS grew by {grew} KiB");
    }
}

/// Runs `abuse` while a canary GETs `/` every 50 ms and bascule's RSS is sampled every 20 ms.
async fn watched<T>(proxy: &Bascule, abuse: impl std::future::Future<Output = T>) -> Watched<T> {
    let (addr, pid) = (proxy.addr, proxy.pid());
    assert_eq!(get(addr, "a", "/").await.status, 200, "warm-up");
    let rss_start = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_start));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let canary = tokio::spawn(canary(addr, stop.clone()));
    let abuse = abuse.await;
    stop.store(true, Ordering::Relaxed);
    let canary = canary.await.expect("the canary client");
    sampler.await.expect("the sampler");
    Watched {
        abuse,
        canary,
        rss_start,
        rss_peak: peak.load(Ordering::Relaxed),
    }
}

/// Normal GETs of `/`, each on a new connection, 50 ms apart, until `stop`; their statuses.
async fn canary(addr: SocketAddr, stop: Arc<AtomicBool>) -> Vec<u16> {
    let mut statuses = Vec::new();
    while !stop.load(Ordering::Relaxed) && statuses.len() < 2000 {
        statuses.push(get(addr, "a", "/").await.status.as_u16());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses
}

/// Waits until no upstream has a request in flight (`/status`), at most 5 s.
async fn upstreams_freed(proxy: &Bascule) {
    proxy
        .wait_status(Duration::from_secs(5), "upstream requests freed", |st| {
            st["upstreams"]
                .as_array()
                .is_some_and(|a| a.iter().all(|u| u["in_flight"] == 0))
        })
        .await;
}

/// A site whose `/hang` never answers, and the proxy in front of it (admin API on).
async fn hanging_site(limits: &str) -> (FakeUpstream, Bascule) {
    let site = FakeUpstream::hang_on("site", "/hang").await;
    let proxy = ProxyConfig::new()
        .admin("")
        .limits(limits)
        .upstream("site", &site)
        .route("all", &["*"], "/", r#"["site"]"#)
        .start()
        .await;
    (site, proxy)
}

/// Abuse lasts at least this long, so that the canary runs beside it.
const AT_LEAST: Duration = Duration::from_secs(2);

/// One connection of rapid reset: HEADERS for a request that hangs upstream and RST_STREAM at
/// once, in batches of 200, until `pairs` are sent or the server closes the connection.
/// Returns the pairs sent and what the server said.
async fn rapid_reset(addr: SocketAddr, pairs: usize) -> (usize, h2::Seen) {
    let Raw { read, mut write } = h2::open(addr, &[]).await;
    let seen = tokio::spawn(h2::drain(read, Duration::from_secs(5)));
    let (mut id, mut sent) = (1u32, 0);
    while sent < pairs {
        let mut batch = Vec::new();
        for _ in 0..200 {
            h2::request(&mut batch, id, "/hang");
            h2::push(&mut batch, h2::RST_STREAM, 0, id, &h2::CANCEL.to_be_bytes());
            id += 2;
        }
        sent += 200;
        if h2::send(&mut write, &batch).await.is_err() || seen.is_finished() {
            break;
        }
    }
    drop(write);
    (sent, seen.await.expect("reader"))
}

#[tokio::test]
async fn rapid_reset_is_bounded_and_frees_the_upstream_requests() {
    bounded(LIMIT, async {
        let (site, proxy) = hanging_site("").await;
        let addr = proxy.addr;
        let start = Instant::now();
        // At least 10,000 pairs and AT_LEAST, at most 400 connections of 2,000 pairs and 15 s.
        let w = watched(&proxy, async move {
            let (mut sent, mut conns, mut goaways) = (0, 0, 0);
            while (sent < 10_000 || start.elapsed() < AT_LEAST)
                && conns < 400
                && start.elapsed() < Duration::from_secs(15)
            {
                conns += 1;
                let (n, seen) = rapid_reset(addr, 2_000).await;
                sent += n;
                goaways += usize::from(seen.goaway == Some(h2::ENHANCE_YOUR_CALM));
            }
            (sent, conns, goaways)
        })
        .await;
        let (sent, conns, goaways) = w.abuse;
        eprintln!(
            "rapid reset: {sent} HEADERS + RST_STREAM on {conns} connections in {:?}, {goaways} GOAWAY (ENHANCE_YOUR_CALM), {} reached the upstream",
            start.elapsed(),
            site.hits()
        );
        assert!(sent >= 10_000, "the abuse ran: {sent}");
        assert!(goaways > 0, "rapid resetters are sent away");
        w.assert_bounded_and_served("rapid reset");
        upstreams_freed(&proxy).await;
        assert_eq!(get(proxy.addr, "a", "/").await.status, 200);
    })
    .await;
}

/// Floods on `addr` one connection after another for at least AT_LEAST (at most 200);
/// `value_len` sizes each CONTINUATION frame's header field.
async fn floods(addr: SocketAddr, value_len: usize) -> Vec<(usize, h2::Seen, Duration)> {
    let start = Instant::now();
    let mut results = Vec::new();
    while start.elapsed() < AT_LEAST && results.len() < 200 {
        results.push(h2::continuation_flood(addr, value_len, 10_000).await);
    }
    results
}

#[tokio::test]
async fn a_continuation_flood_gets_goaway_and_is_closed() {
    bounded(LIMIT, async {
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .upstream("site", &site)
            .route("all", &["*"], "/", r#"["site"]"#)
            .start()
            .await;
        let addr = proxy.addr;
        let before = site.hits();
        let w = watched(&proxy, async move {
            let mut flooders = JoinSet::new();
            // Four flooders send tiny CONTINUATION frames (one small header field each), four
            // send full 16 KiB ones; none ever sets END_HEADERS.
            for n in 0..8 {
                flooders.spawn(floods(addr, if n % 2 == 0 { 16 } else { 16_000 }));
            }
            let mut results = Vec::new();
            while let Some(r) = flooders.join_next().await {
                results.extend(r.expect("flooder"));
            }
            results
        })
        .await;
        let most = w.abuse.iter().map(|r| r.0).max().unwrap_or(0);
        let slowest = w.abuse.iter().map(|r| r.2).max().unwrap_or_default();
        eprintln!(
            "CONTINUATION flood: {} connections, at most {most} frames sent on one, closed within {slowest:?}",
            w.abuse.len()
        );
        // (Tiny frames may all fit in the socket buffers before the server reads the sixth,
        // so how many were written says nothing.)
        for (_, seen, took) in &w.abuse {
            assert!(seen.closed, "the connection was closed: {seen:?}");
            assert_eq!(seen.goaway, Some(h2::ENHANCE_YOUR_CALM), "GOAWAY: {seen:?}");
            assert!(*took < Duration::from_secs(5), "closed in time: {took:?}");
        }
        w.assert_bounded_and_served("CONTINUATION flood");
        let canaries = w.canary.len() + 1;
        assert_eq!(site.hits() - before, canaries, "no flooded request was forwarded");
    })
    .await;
}

#[tokio::test]
async fn zero_window_readers_are_cut_after_send_timeout_and_free_the_upstream() {
    bounded(LIMIT, async {
        let big = FakeUpstream::body("big", Bytes::from(vec![b'z'; 4 << 20])).await;
        let site = FakeUpstream::ok("site").await;
        let proxy = ProxyConfig::new()
            .admin("")
            .limits("send_timeout = \"1s\"")
            .upstream("big", &big)
            .upstream("site", &site)
            .route("big", &["*"], "/big", r#"["big"]"#)
            .route("all", &["*"], "/", r#"["site"]"#)
            .start()
            .await;
        let start = Instant::now();
        let w = watched(&proxy, async {
            let mut readers = Vec::new();
            // Four connections that never open their windows, 64 streams each (the proxy
            // takes 32 of each upstream at a time, max_in_flight_per_connection).
            for _ in 0..4 {
                let Raw { read, mut write } =
                    h2::open(proxy.addr, &[(h2::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
                let mut batch = Vec::new();
                for i in 0..64 {
                    h2::request(&mut batch, 1 + 2 * i, "/big");
                }
                h2::send(&mut write, &batch).await.expect("requests sent");
                readers.push((write, tokio::spawn(h2::drain(read, Duration::from_secs(15)))));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let in_flight = proxy.upstream_status("big").await["in_flight"].clone();
            let mut seen = Vec::new();
            for (_write, reader) in readers {
                seen.push(reader.await.expect("reader"));
            }
            (in_flight, seen, start.elapsed())
        })
        .await;
        let (in_flight, seen, took) = &w.abuse;
        eprintln!("zero window: {in_flight} upstream requests in flight at 0.5 s; {seen:?}; all cut after {took:?}");
        assert!(in_flight.as_u64() >= Some(1), "the big answers were in flight: {in_flight}");
        for s in seen {
            assert!(s.closed, "the connection was cut: {s:?}");
            assert_eq!(s.data_bytes, 0, "no window, no data: {s:?}");
        }
        assert!(*took >= Duration::from_secs(1), "not before send_timeout (1 s): {took:?}");
        assert!(*took < Duration::from_secs(6), "cut after send_timeout (1 s): {took:?}");
        w.assert_bounded_and_served("zero window");
        upstreams_freed(&proxy).await;
    })
    .await;
}
