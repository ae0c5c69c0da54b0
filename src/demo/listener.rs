//! The socket side of a simulated upstream: one accept loop that keeps the listening socket in
//! the state the mode asks for (listening, bound but refusing, or a full accept queue) on one
//! port, and serves each accepted connection with hyper-util's auto builder (HTTP/1.1, h2c).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::answer;
use super::mode::SocketState;
use super::upstream::Shared;

/// How long a listener that cannot listen again keeps trying before it says so.
const RELISTEN: Duration = Duration::from_secs(5);

/// The socket, in the state the mode asks for.
pub(super) enum Held {
    /// Accepting connections.
    Listening(TcpListener),
    /// Bound without listening (connects are refused), so the port stays ours; None if even
    /// the bind failed.
    Refusing(Option<Socket>),
    /// Listening with a backlog of 0, filled by a connection of our own that is never accepted.
    Blackhole {
        socket: Socket,
        _filler: std::net::TcpStream,
    },
}

impl Held {
    /// A fresh socket for `state` on `addr` (no retry: a busy address is an error at once).
    pub(super) fn open(state: SocketState, addr: SocketAddr) -> io::Result<Held> {
        match state {
            SocketState::Listening => bind(addr).and_then(listen).map(Held::Listening),
            SocketState::Refusing => bind(addr).map(|s| Held::Refusing(Some(s))),
            SocketState::Blackhole => blackhole(addr),
        }
    }

    /// Gives up `self` and returns the socket for `state` on the same `addr`: a refusing
    /// socket listens again on the port it kept; otherwise the port is bound afresh.
    async fn enter(self, state: SocketState, addr: SocketAddr) -> io::Result<Held> {
        let reserved = match self {
            Held::Refusing(s) => s,
            other => {
                drop(other);
                None
            }
        };
        match (state, reserved) {
            (SocketState::Listening, reserved) => {
                relisten(addr, reserved).await.map(Held::Listening)
            }
            (SocketState::Refusing, Some(s)) => Ok(Held::Refusing(Some(s))),
            (SocketState::Refusing, None) => bind(addr).map(|s| Held::Refusing(Some(s))),
            (SocketState::Blackhole, reserved) => {
                drop(reserved);
                blackhole(addr)
            }
        }
    }

    /// What the socket is doing.
    pub(super) fn state(&self) -> SocketState {
        match self {
            Held::Listening(_) => SocketState::Listening,
            Held::Refusing(_) => SocketState::Refusing,
            Held::Blackhole { .. } => SocketState::Blackhole,
        }
    }

    /// The bound address (port 0 resolved); 0.0.0.0:0 for a socket that could not bind.
    pub(super) fn addr(&self) -> SocketAddr {
        let bound = match self {
            Held::Listening(l) => l.local_addr().ok(),
            Held::Refusing(s) => s.as_ref().and_then(|s| socket_addr(s).ok()),
            Held::Blackhole { socket, .. } => socket_addr(socket).ok(),
        };
        bound.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

/// Accepts and serves while the mode lets it; on every switch, puts the socket in the state the
/// new mode asks for (closing every open connection when it stops listening).
pub(super) async fn run(mut held: Held, addr: SocketAddr, shared: Arc<Shared>) {
    let mut mode = shared.mode.subscribe();
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let want = mode.borrow_and_update().socket();
        if want != held.state() {
            if matches!(held, Held::Listening(_)) {
                connections.abort_all();
            }
            held = match held.enter(want, addr).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(upstream = %shared.name, %addr, error = %e, "simulated upstream: cannot switch its socket; it refuses");
                    Held::Refusing(bind(addr).ok())
                }
            };
            shared.socket.send_replace(held.state());
            if held.state() != want {
                // Try again (a fresh bind may succeed later) unless the mode changes first.
                let _changed =
                    tokio::time::timeout(Duration::from_millis(200), mode.changed()).await;
                continue;
            }
        }
        match &held {
            Held::Listening(l) => tokio::select! {
                accepted = l.accept() => match accepted {
                    Ok((stream, _)) => {
                        shared.connections.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(serve(stream, Arc::clone(&shared)));
                    }
                    // Out of file descriptors, most likely: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                changed = mode.changed() => if changed.is_err() { return },
            },
            _ => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Serves one connection (HTTP/1.1 or h2c) until the peer closes it or the task is aborted.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _nodelay = stream.set_nodelay(true);
    let svc = service_fn(move |req| answer::handle(req, Arc::clone(&shared)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // As many headers as a proxy may pass on (hyper's default stops at 100).
    builder.http1().max_headers(4096);
    // The connection ends when the peer closes it; its error, if any, is not interesting here.
    let _closed = builder.serve_connection(TokioIo::new(stream), svc).await;
}

/// Listens on `addr`: on the socket kept bound while refusing if there is one, else on a fresh
/// bind, retried for up to [`RELISTEN`] (old connections may linger on the port).
async fn relisten(addr: SocketAddr, reserved: Option<Socket>) -> io::Result<TcpListener> {
    if let Some(listener) = reserved.and_then(|s| listen(s).ok()) {
        return Ok(listener);
    }
    let deadline = Instant::now() + RELISTEN;
    loop {
        match bind(addr).and_then(listen) {
            Ok(listener) => return Ok(listener),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A TCP socket bound to `addr` with SO_REUSEADDR (so the port can be bound again while old
/// connections linger), not yet listening. A bound port is also skipped by the kernel when it
/// picks ephemeral ports, so a refusing upstream's port cannot be taken by someone's connect.
fn bind(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn listen(socket: Socket) -> io::Result<TcpListener> {
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// A socket listening on `addr` with a backlog of 0, and the one connection that fills it.
fn blackhole(addr: SocketAddr) -> io::Result<Held> {
    let socket = bind(addr)?;
    socket.listen(0)?;
    let filler = std::net::TcpStream::connect(socket_addr(&socket)?)?;
    Ok(Held::Blackhole {
        socket,
        _filler: filler,
    })
}

fn socket_addr(socket: &Socket) -> io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an inet socket"))
}
