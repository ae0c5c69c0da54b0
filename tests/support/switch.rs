//! A fake upstream whose behaviour a test switches while it runs: healthy, refusing
//! connections, hanging, answering a status, or failing every other health probe. Health
//! probes (requests for its probe path) obey the same mode, so active checks see what traffic
//! sees; they are counted and captured apart from traffic.
//!
//! ```ignore
//! let cdn = SwitchUpstream::start("cdn", "/healthz").await;
//! cdn.set(Mode::Refuse).await;   // listener closed, open connections cut
//! cdn.set(Mode::Ok).await;       // listening again on the same port
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::upstream::Seen;

/// What the fake does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200 "ok from NAME" to everything.
    Ok,
    /// Nothing listens; open connections are closed.
    Refuse,
    /// Reads requests, never answers (probes included).
    Hang,
    /// Answers every request, probes included, with this status.
    Status(u16),
    /// Traffic gets 200; health probes alternate 200 and 503 (a 50 % failure rate).
    FlapProbes,
}

struct Shared {
    name: String,
    probe_path: String,
    mode: watch::Sender<Mode>,
    hits: AtomicUsize,
    probes: AtomicUsize,
    last_probe: Mutex<Option<Seen>>,
    /// When each traffic request arrived.
    hit_times: Mutex<Vec<Instant>>,
}

/// A switchable fake upstream on a fixed 127.0.0.1 port.
pub struct SwitchUpstream {
    /// Where it listens (also while refusing: the port is kept for healing).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl SwitchUpstream {
    /// Starts healthy on an ephemeral port; `probe_path` is the path it treats as a probe.
    pub async fn start(name: &str, probe_path: &str) -> SwitchUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (mode, _) = watch::channel(Mode::Ok);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            probe_path: probe_path.to_owned(),
            mode,
            hits: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            last_probe: Mutex::new(None),
            hit_times: Mutex::new(Vec::new()),
        });
        let accept = tokio::spawn(accept_loop(Some(listener), addr, shared.clone()));
        SwitchUpstream {
            addr,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the behaviour; returns once a switch to or from `Refuse` took effect.
    pub async fn set(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
        // The accept loop closes or re-binds within a few milliseconds.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Traffic requests received (probes excluded).
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Health probes received.
    pub fn probes(&self) -> usize {
        self.shared.probes.load(Ordering::SeqCst)
    }

    /// The last health probe received.
    pub fn last_probe(&self) -> Option<Seen> {
        self.shared.last_probe.lock().expect("lock").clone()
    }

    /// When the last traffic request arrived.
    pub fn last_hit_at(&self) -> Option<Instant> {
        self.shared.hit_times.lock().expect("lock").last().copied()
    }

    /// Traffic requests that arrived after `t`.
    pub fn hits_since(&self, t: Instant) -> usize {
        let times = self.shared.hit_times.lock().expect("lock");
        times.iter().filter(|h| **h > t).count()
    }
}

impl Drop for SwitchUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts while the mode is not `Refuse`; on `Refuse` drops the listener and every
/// connection, and re-binds the same port when the mode changes back.
async fn accept_loop(mut listener: Option<TcpListener>, addr: SocketAddr, shared: Arc<Shared>) {
    let mut mode_rx = shared.mode.subscribe();
    loop {
        let refusing = *mode_rx.borrow_and_update() == Mode::Refuse;
        if refusing {
            listener = None;
            if mode_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => panic!("cannot re-bind {addr}: {e}"),
            },
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(serve(stream, shared.clone()));
                }
                listener = Some(l);
            }
            changed = mode_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                listener = Some(l);
            }
        }
    }
}

/// Serves one connection until it ends or the mode turns to `Refuse`.
async fn serve(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let mut mode_rx = shared.mode.subscribe();
    let s = shared.clone();
    let svc = service_fn(move |req| handle(req, s.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = mode_rx.wait_for(|m| *m == Mode::Refuse) => {}
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let probe = req.uri().path() == shared.probe_path;
    let mode = *shared.mode.borrow();
    let mut flap_fail = false;
    if probe {
        let n = shared.probes.fetch_add(1, Ordering::SeqCst);
        flap_fail = n % 2 == 1;
        let (parts, _) = req.into_parts();
        *shared.last_probe.lock().expect("lock") = Some(Seen {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body: Bytes::new(),
        });
    } else {
        shared.hits.fetch_add(1, Ordering::SeqCst);
        shared.hit_times.lock().expect("lock").push(Instant::now());
    }
    let status = match mode {
        Mode::Ok => StatusCode::OK,
        Mode::FlapProbes if probe && flap_fail => StatusCode::SERVICE_UNAVAILABLE,
        Mode::FlapProbes => StatusCode::OK,
        Mode::Hang | Mode::Refuse => std::future::pending().await,
        Mode::Status(code) => StatusCode::from_u16(code).expect("valid status"),
    };
    let body = format!("{} from {}", status.as_u16(), shared.name);
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    Ok(r)
}
