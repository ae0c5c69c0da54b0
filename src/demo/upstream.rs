//! A simulated upstream: a real hyper server (HTTP/1.1 and h2c) on a given address, whose
//! [`Mode`] can be switched while it runs. `bascule demo` and `bascule demo-upstream` play their
//! origin and CDNs with it; the integration tests and the benches use it as their fake upstream.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use bascule::demo::{Mode, SimUpstream};
//! let cdn = SimUpstream::start("cdn", Mode::Ok).await?; // 127.0.0.1:0, 200 "ok from cdn"
//! cdn.set(Mode::Refuse).await; // listener closed, open connections cut, port kept
//! cdn.set(Mode::Ok).await; // listening again on the same port
//! # Ok(()) }
//! ```
//!
//! Requests for the probe path ([`PROBE_PATH`] unless set) are health probes: counted and
//! captured apart from traffic, and either obeying the mode (the default) or always answered
//! 200 "healthy" ([`Builder::probes_pass`]).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::listener;
use super::mode::{Mode, SocketState};

/// The path a simulated upstream treats as a health probe unless told otherwise.
pub const PROBE_PATH: &str = "/healthz";

/// How a simulated upstream words its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wording {
    /// "ok from NAME", "NAME says CODE", "slow from NAME"; every answer carries
    /// `content-type: text/plain` and `x-upstream: NAME`.
    #[default]
    Short,
    /// `bascule demo`'s: "CODE from NAME (METHOD PATH)\n" with `x-served-by: NAME`; and
    /// `/slow?ms=N` waits N ms (1000 if absent, at most a minute) before the mode applies.
    Demo,
}

/// One request as a simulated upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Request method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// Protocol version spoken to the upstream.
    pub version: Version,
    /// Every header, duplicates kept.
    pub headers: HeaderMap,
    /// The whole body (empty for probes, whose bodies are not read).
    pub body: Bytes,
}

impl Seen {
    /// Every value of header `name`, joined with ", " (None when absent).
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>"))
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

/// What the accept loop, the connections and the handle share.
pub(super) struct Shared {
    pub(super) name: String,
    pub(super) probe_path: String,
    pub(super) probes_pass: bool,
    pub(super) wording: Wording,
    /// Added to every answer: the name header, then the builder's extra headers.
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) timed: bool,
    pub(super) mode: watch::Sender<Mode>,
    /// What the listener is doing, published by the accept loop after each switch.
    pub(super) socket: watch::Sender<SocketState>,
    pub(super) connections: AtomicUsize,
    pub(super) hits: AtomicUsize,
    pub(super) probes: AtomicUsize,
    pub(super) last: Mutex<Option<Seen>>,
    pub(super) last_probe: Mutex<Option<Seen>>,
    pub(super) last_hit_at: Mutex<Option<Instant>>,
    /// When each traffic request arrived (kept only when `timed`).
    pub(super) arrivals: Mutex<Vec<Instant>>,
}

/// Settings of a simulated upstream before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    addr: SocketAddr,
    mode: Mode,
    probe_path: String,
    probes_pass: bool,
    wording: Wording,
    headers: Vec<(String, String)>,
    timed: bool,
}

impl Builder {
    /// Listens on `addr` (default 127.0.0.1:0, an ephemeral loopback port).
    pub fn at(mut self, addr: SocketAddr) -> Builder {
        self.addr = addr;
        self
    }

    /// Starts in `mode` (default [`Mode::Ok`]).
    pub fn mode(mut self, mode: Mode) -> Builder {
        self.mode = mode;
        self
    }

    /// Treats requests for `path` as health probes (default [`PROBE_PATH`]).
    pub fn probe_path(mut self, path: &str) -> Builder {
        self.probe_path = path.to_owned();
        self
    }

    /// Answers every probe 200 "healthy" whatever the mode (default: probes obey the mode), so
    /// active checks never disturb what a test measures.
    pub fn probes_pass(mut self) -> Builder {
        self.probes_pass = true;
        self
    }

    /// Words answers as `wording` says (default [`Wording::Short`]).
    pub fn wording(mut self, wording: Wording) -> Builder {
        self.wording = wording;
        self
    }

    /// Adds `name: value` to every answer.
    pub fn header(mut self, name: &str, value: &str) -> Builder {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Records each traffic request's arrival time, for [`SimUpstream::hit_times`] and
    /// [`SimUpstream::hits_since`] (memory grows with traffic: for tests and benches).
    pub fn timed(mut self) -> Builder {
        self.timed = true;
        self
    }

    /// Binds the address and starts serving (needs a tokio runtime).
    pub async fn start(self) -> io::Result<SimUpstream> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let own = HeaderValue::from_str(&self.name).map_err(|_| invalid("name: not a header"))?;
        let name_header = match self.wording {
            Wording::Short => "x-upstream",
            Wording::Demo => "x-served-by",
        };
        let mut headers = vec![(HeaderName::from_static(name_header), own)];
        if self.wording == Wording::Short {
            let plain = HeaderValue::from_static("text/plain");
            headers.insert(0, (http::header::CONTENT_TYPE, plain));
        }
        for (k, v) in &self.headers {
            let k = HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid("header name"))?;
            let v = HeaderValue::from_str(v).map_err(|_| invalid("header value"))?;
            headers.push((k, v));
        }
        let held = listener::Held::open(self.mode.socket(), self.addr)?;
        let addr = held.addr();
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            probe_path: self.probe_path,
            probes_pass: self.probes_pass,
            wording: self.wording,
            headers,
            timed: self.timed,
            mode: watch::Sender::new(self.mode),
            socket: watch::Sender::new(held.state()),
            connections: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            last: Mutex::new(None),
            last_probe: Mutex::new(None),
            last_hit_at: Mutex::new(None),
            arrivals: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(listener::run(held, addr, Arc::clone(&shared)));
        Ok(SimUpstream {
            name: self.name,
            addr,
            shared,
            task,
        })
    }
}

/// A running simulated upstream; stopped (listener and connections closed) when dropped.
pub struct SimUpstream {
    /// The name it puts in its answers.
    pub name: String,
    /// Where it listens (also while refusing: the port is kept for healing).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SimUpstream {
    /// Settings for a simulated upstream named `name`, to change before [`Builder::start`].
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mode: Mode::Ok,
            probe_path: PROBE_PATH.to_owned(),
            probes_pass: false,
            wording: Wording::Short,
            headers: Vec::new(),
            timed: false,
        }
    }

    /// Starts `name` in `mode` on 127.0.0.1:0 with the default settings.
    pub async fn start(name: &str, mode: Mode) -> io::Result<SimUpstream> {
        SimUpstream::builder(name).mode(mode).start().await
    }

    /// `http://ADDR`, for a config's `address`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode.borrow().clone()
    }

    /// Switches to `mode`: at once for new requests; the listener follows within milliseconds
    /// (closing, with every open connection, or listening again).
    pub fn switch(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Switches to `mode` and returns once the listener follows (at most a few seconds).
    pub async fn set(&self, mode: Mode) {
        let want = mode.socket();
        let mut socket = self.shared.socket.subscribe();
        self.switch(mode);
        let settled = socket.wait_for(|s| *s == want);
        // A listener that cannot listen again keeps refusing; the caller sees that.
        let _late = tokio::time::timeout(Duration::from_secs(6), settled).await;
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Traffic requests received (probes excluded).
    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// Health probes received.
    pub fn probes(&self) -> usize {
        self.shared.probes.load(Ordering::SeqCst)
    }

    /// The last traffic request received whole.
    pub fn last(&self) -> Option<Seen> {
        lock(&self.shared.last).clone()
    }

    /// The last health probe received (its head).
    pub fn last_probe(&self) -> Option<Seen> {
        lock(&self.shared.last_probe).clone()
    }

    /// When the last traffic request arrived.
    pub fn last_hit_at(&self) -> Option<Instant> {
        *lock(&self.shared.last_hit_at)
    }

    /// When each traffic request arrived, in arrival order (empty unless [`Builder::timed`]).
    pub fn hit_times(&self) -> Vec<Instant> {
        lock(&self.shared.arrivals).clone()
    }

    /// Traffic requests that arrived after `t` (0 unless [`Builder::timed`]).
    pub fn hits_since(&self, t: Instant) -> usize {
        lock(&self.shared.arrivals)
            .iter()
            .filter(|h| **h > t)
            .count()
    }
}

impl Drop for SimUpstream {
    fn drop(&mut self) {
        // The accept task owns the connections' JoinSet: aborting it closes them all.
        self.task.abort();
    }
}

/// A lock that a panicked holder did not poison for the rest.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
