//! In-process fake upstreams: hyper servers on 127.0.0.1:0 that answer 200 with a body naming
//! themselves, record when each live request (anything but `/healthz`) arrived, and can be
//! switched into a failure [`Mode`] and back while the load runs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The path that the proxies' active health checks probe.
pub const HEALTH_PATH: &str = "/healthz";

/// What a fake upstream does; the mode applies to health probes as well as live traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200 "NAME ok".
    Ok,
    /// Not listening: the listener is closed, every open connection is closed, and new
    /// connections are refused. The port stays bound (not listening) so that nothing else
    /// takes it, and healing listens on the same port again.
    Refuse,
    /// Accepts and reads requests, never answers.
    Hang,
    /// Answers every request with this status.
    Status(u16),
}

/// Live requests received, shared between the accept task and the harness.
#[derive(Default)]
struct Hits {
    count: AtomicUsize,
    at: Mutex<Vec<Instant>>,
}

/// A running fake upstream; stopped (all its connections closed) when dropped.
pub struct FakeUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    hits: Arc<Hits>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts a fake named `name` on a fresh port of 127.0.0.1. Needs a tokio runtime.
    pub fn start(name: &'static str) -> FakeUpstream {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        let socket = bind(any).expect("bind a fake upstream on 127.0.0.1:0");
        let listener = listen(socket).expect("listen on a fake upstream's port");
        let addr = listener
            .local_addr()
            .expect("fake upstream's local address");
        let (mode, mode_rx) = watch::channel(Mode::Ok);
        let hits = Arc::new(Hits::default());
        let task = tokio::spawn(accept_loop(name, listener, mode_rx, hits.clone()));
        FakeUpstream {
            addr,
            mode,
            hits,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the behaviour; takes effect for the next request (and, for `Refuse`, at once
    /// for the listener and every open connection).
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Live requests received so far.
    pub fn hit_count(&self) -> usize {
        self.hits.count.load(Ordering::Relaxed)
    }

    /// When each live request arrived, in arrival order (close to time order).
    pub fn hit_times(&self) -> Vec<Instant> {
        self.hits.at.lock().expect("hits lock").clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// Accepts connections while the mode allows it; closes everything on `Refuse` and listens on
/// the same port again when the mode leaves it.
async fn accept_loop(
    name: &'static str,
    listener: TcpListener,
    mut mode: watch::Receiver<Mode>,
    hits: Arc<Hits>,
) {
    let addr = listener
        .local_addr()
        .expect("fake upstream's local address");
    let mut listener = Some(listener);
    let mut reserved: Option<Socket> = None;
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if let Some(l) = &listener {
            tokio::select! {
                accepted = l.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve(name, stream, mode.clone(), hits.clone()));
                    }
                    // Out of file descriptors, most likely: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                changed = mode.changed() => if changed.is_err() { return },
            }
        } else if mode.changed().await.is_err() {
            return;
        }
        let refusing = *mode.borrow_and_update() == Mode::Refuse;
        if refusing && listener.is_some() {
            listener = None;
            connections.abort_all();
            reserved = bind(addr).ok();
        } else if !refusing && listener.is_none() {
            listener = relisten(addr, reserved.take()).await;
        }
    }
}

/// Listens on `addr` again, on the socket kept bound while refusing if there is one, else on
/// a fresh bind retried for up to 5 s. None (the fake keeps refusing) if that fails.
async fn relisten(addr: SocketAddr, reserved: Option<Socket>) -> Option<TcpListener> {
    if let Some(listener) = reserved.and_then(|s| listen(s).ok()) {
        return Some(listener);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match bind(addr).and_then(listen) {
            Ok(listener) => return Some(listener),
            Err(e) if Instant::now() > deadline => {
                eprintln!(
                    "warning: fake upstream cannot listen on {addr} again ({e}); it keeps refusing"
                );
                return None;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A TCP socket bound to `addr` with SO_REUSEADDR (so the port can be bound again while old
/// connections linger), not yet listening. A bound port is also skipped by the kernel when it
/// picks ephemeral ports, so a refusing fake's port cannot be taken by someone's connect.
fn bind(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn listen(socket: Socket) -> std::io::Result<TcpListener> {
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Serves one connection (HTTP/1.1 or h2c) until the peer closes it or the task is aborted.
async fn serve(
    name: &'static str,
    stream: TcpStream,
    mode: watch::Receiver<Mode>,
    hits: Arc<Hits>,
) {
    let _nodelay = stream.set_nodelay(true);
    let svc = service_fn(move |req| handle(req, name, *mode.borrow(), hits.clone()));
    // The connection ends when the peer closes it; its error, if any, is not interesting here.
    let _closed = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

async fn handle(
    req: Request<Incoming>,
    name: &'static str,
    mode: Mode,
    hits: Arc<Hits>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != HEALTH_PATH {
        hits.at.lock().expect("hits lock").push(Instant::now());
        hits.count.fetch_add(1, Ordering::Relaxed);
    }
    match mode {
        // A request on a connection accepted just before the switch to Refuse is answered.
        Mode::Ok | Mode::Refuse => Ok(answer(StatusCode::OK, format!("{name} ok"))),
        Mode::Hang => std::future::pending().await,
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).expect("a valid status code");
            Ok(answer(status, format!("{name} says {code}")))
        }
    }
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    response
}
