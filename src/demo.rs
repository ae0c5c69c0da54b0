//! `bascule demo`: a self-contained failover demo on loopback. One process runs an origin and
//! two simulated CDNs (each marking its answers with its name), writes a config with the three
//! tiers and fast health checks, and runs the proxy with its admin API and dashboard. Each
//! simulated upstream can be broken (refuse connections, hang, answer 503) and healed from
//! the dashboard or with a JSON `POST /demo/NAME/MODE` on the admin API. `serve_one` runs a single
//! simulated upstream (`bascule demo-upstream`), for the compose demo's containers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::DemoControl;

/// The simulated upstreams, in tier order.
pub const UPSTREAMS: [&str; 3] = ["primary-cdn", "secondary-cdn", "origin"];

/// What a simulated upstream does (probes included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers 200.
    Ok,
    /// Not listening; open connections closed.
    Refuse,
    /// Reads requests, never answers.
    Hang,
    /// Answers 503.
    Unavailable,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "ok" | "heal" => Some(Mode::Ok),
            "refuse" => Some(Mode::Refuse),
            "hang" => Some(Mode::Hang),
            "503" => Some(Mode::Unavailable),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Mode::Ok => "ok",
            Mode::Refuse => "refuse",
            Mode::Hang => "hang",
            Mode::Unavailable => "503",
        }
    }
}

/// One simulated upstream on 127.0.0.1.
struct Simulated {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

/// The demo's simulated upstreams, switchable from the admin API.
pub struct Demo {
    upstreams: BTreeMap<String, Simulated>,
}

impl Demo {
    /// Starts the simulated upstreams on ephemeral loopback ports.
    pub async fn start() -> std::io::Result<Arc<Demo>> {
        let mut upstreams = BTreeMap::new();
        for name in UPSTREAMS {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (mode, _) = watch::channel(Mode::Ok);
            tokio::spawn(serve(name, listener, addr, mode.subscribe()));
            upstreams.insert(name.to_owned(), Simulated { addr, mode });
        }
        Ok(Arc::new(Demo { upstreams }))
    }

    /// The demo's config file: the three tiers, fast checks, a short failback delay.
    pub fn config(&self, listen: SocketAddr, admin: SocketAddr) -> String {
        let mut ups = String::new();
        for name in UPSTREAMS {
            if let Some(u) = self.upstreams.get(name) {
                ups.push_str(&format!(
                    "[upstreams.{name}]\naddress = \"http://{}\"\n\n",
                    u.addr
                ));
            }
        }
        format!(
            "# Written by `bascule demo`: edit it while the demo runs and watch it reload.\n\
             [listen]\nhttp = [\"{listen}\"]\ndebug_headers = true\n\n\
             [admin]\nlisten = \"{admin}\"\n\n\
             [log]\naccess = false\n\n\
             [defaults]\nconnect_timeout = \"500ms\"\nresponse_timeout = \"2s\"\n\
             [defaults.health]\ninterval = \"500ms\"\ntimeout = \"400ms\"\n\
             [defaults.passive]\nejection = \"5s\"\n\n\
             {ups}\
             [[routes]]\nname = \"site\"\nhosts = [\"*\"]\n\
             tiers = [\"primary-cdn\", \"secondary-cdn\", \"origin\"]\nfailback_delay = \"5s\"\n"
        )
    }

    /// Where the demo writes its config: a fresh directory under the temp dir.
    pub fn config_path() -> PathBuf {
        std::env::temp_dir()
            .join(format!("bascule-demo-{}", std::process::id()))
            .join("bascule.toml")
    }
}

/// Serves one simulated upstream named `name` on `listen` until the process ends (the
/// containers of the compose demo); always healthy: stop or disconnect its container to break
/// it.
pub async fn serve_one(name: &'static str, listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(upstream = name, %addr, "demo upstream listening");
    let (_mode, rx) = watch::channel(Mode::Ok);
    serve(name, listener, addr, rx).await;
    Ok(())
}

impl DemoControl for Demo {
    fn modes(&self) -> Vec<(String, &'static str)> {
        self.upstreams
            .iter()
            .map(|(n, u)| (n.clone(), u.mode.borrow().as_str()))
            .collect()
    }

    fn set(&self, name: &str, mode: &str) -> Result<(), String> {
        let u = self
            .upstreams
            .get(name)
            .ok_or_else(|| format!("no simulated upstream named {name:?}"))?;
        let m = Mode::parse(mode)
            .ok_or_else(|| format!("mode {mode:?}: use ok, refuse, hang or 503"))?;
        u.mode.send_replace(m);
        tracing::info!(
            upstream = name,
            mode = m.as_str(),
            "demo: simulated upstream switched"
        );
        Ok(())
    }
}

/// Serves `name` on `listener` while not refusing; re-binds `addr` when healed.
async fn serve(
    name: &'static str,
    listener: TcpListener,
    addr: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let mut listener = Some(listener);
    loop {
        if *mode.borrow_and_update() == Mode::Refuse {
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, %addr, "demo: cannot listen again; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(connection(name, stream, mode.clone()));
                }
                listener = Some(l);
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                listener = Some(l);
            }
        }
    }
}

/// One connection, cut when the upstream starts refusing.
async fn connection(
    name: &'static str,
    stream: tokio::net::TcpStream,
    mut mode: watch::Receiver<Mode>,
) {
    let m = mode.clone();
    let svc = service_fn(move |req| answer(name, req, m.clone()));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = mode.wait_for(|m| *m == Mode::Refuse) => {}
    }
}

async fn answer(
    name: &'static str,
    req: Request<Incoming>,
    mode: watch::Receiver<Mode>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let current = *mode.borrow();
    // `/slow?ms=N`: answers after N ms (at most a minute), for graceful-shutdown tests.
    if req.uri().path() == "/slow" {
        let ms = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1000)
            .min(60_000);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let status = match current {
        Mode::Ok => StatusCode::OK,
        Mode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Mode::Hang | Mode::Refuse => std::future::pending().await,
    };
    let body = format!(
        "{} from {name} ({} {})\n",
        status.as_u16(),
        req.method(),
        req.uri().path()
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("x-served-by", http::HeaderValue::from_static(name));
    Ok(r)
}
