//! Fake upstreams in one line (linkerd2-proxy's `app/integration` idea): real hyper servers on
//! 127.0.0.1:0, each with one behaviour, a hit counter and a capture of the last request.
//!
//! ```ignore
//! let cdn = FakeUpstream::refuse("cdn").await;      // connects are refused
//! let origin = FakeUpstream::ok("origin").await;    // 200 "ok from origin"
//! ```
//!
//! Requests for [`HEALTH_PATH`] are answered 200 and neither counted nor captured, so that
//! active health probes (if the proxy sends them) never disturb what a test measures.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The path fake upstreams treat as a health probe.
pub const HEALTH_PATH: &str = "/healthz";

/// What a fake upstream does with a request.
#[derive(Clone)]
enum Knob {
    /// 200 with body "ok from NAME".
    Ok,
    /// Reads the request, never answers.
    Hang,
    /// Reads the request, then closes the connection without answering.
    Drop,
    /// Answers with this status and body "NAME says CODE".
    Status(u16),
    /// Waits, then answers 200 "slow from NAME".
    Slow(Duration),
    /// 200 with the request's head as text, a blank line, then the request body.
    Echo,
    /// 200 with exactly these bytes.
    Body(Bytes),
    /// 200 "ok from NAME" with these extra response headers.
    Headers(Vec<(String, String)>),
    /// 200 with this many chunks "chunk I\n", the first at once, then one per delay.
    Drip(usize, Duration),
    /// The inner behaviour for requests to this path; 200 "ok from NAME" for the rest.
    OnPath(String, Box<Knob>),
}

/// One request as a fake upstream received it.
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
    /// The whole body.
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

#[derive(Default)]
struct State {
    connections: AtomicUsize,
    hits: AtomicUsize,
    last: Mutex<Option<Seen>>,
}

/// A fake upstream server (or, for `refuse`, a port where nothing listens).
pub struct FakeUpstream {
    /// The name it puts in its answers.
    pub name: String,
    /// Where it listens (or listened, for `refuse`).
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
    /// Sockets kept open for as long as the fake lives (`blackhole`).
    _held: Vec<Box<dyn std::any::Any + Send>>,
}

impl FakeUpstream {
    /// Answers 200 with body "ok from NAME".
    pub async fn ok(name: &str) -> FakeUpstream {
        Self::serve(name, Knob::Ok).await
    }

    /// Accepts and reads requests but never answers them.
    pub async fn hang(name: &str) -> FakeUpstream {
        Self::serve(name, Knob::Hang).await
    }

    /// Reads each request, then closes its connection without an answer.
    pub async fn drop_connection(name: &str) -> FakeUpstream {
        Self::serve(name, Knob::Drop).await
    }

    /// Answers every request with `code` and body "NAME says CODE".
    pub async fn status(name: &str, code: u16) -> FakeUpstream {
        Self::serve(name, Knob::Status(code)).await
    }

    /// Answers 200 "slow from NAME" after `delay`.
    pub async fn slow(name: &str, delay: Duration) -> FakeUpstream {
        Self::serve(name, Knob::Slow(delay)).await
    }

    /// Answers 200 with the request head as text, a blank line, then the request body.
    pub async fn echo(name: &str) -> FakeUpstream {
        Self::serve(name, Knob::Echo).await
    }

    /// Answers 200 with exactly `body`.
    pub async fn body(name: &str, body: Bytes) -> FakeUpstream {
        Self::serve(name, Knob::Body(body)).await
    }

    /// Answers 200 "ok from NAME" with `headers` added to the response.
    pub async fn with_headers(name: &str, headers: &[(&str, &str)]) -> FakeUpstream {
        let h = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Self::serve(name, Knob::Headers(h)).await
    }

    /// Answers 200 with `chunks` body chunks "chunk I\n": the first at once, then one every
    /// `delay` (a streamed response).
    pub async fn drip(name: &str, chunks: usize, delay: Duration) -> FakeUpstream {
        Self::serve(name, Knob::Drip(chunks, delay)).await
    }

    /// Answers `code` to requests for `path`, 200 "ok from NAME" to the rest (one failing page).
    pub async fn status_on(name: &str, path: &str, code: u16) -> FakeUpstream {
        Self::serve(
            name,
            Knob::OnPath(path.into(), Box::new(Knob::Status(code))),
        )
        .await
    }

    /// Never answers requests for `path`; 200 "ok from NAME" to the rest.
    pub async fn hang_on(name: &str, path: &str) -> FakeUpstream {
        Self::serve(name, Knob::OnPath(path.into(), Box::new(Knob::Hang))).await
    }

    /// Binds a port, then closes it: connecting there is refused.
    pub async fn refuse(name: &str) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        drop(listener);
        FakeUpstream {
            name: name.to_owned(),
            addr,
            state: Arc::default(),
            accept: None,
            _held: Vec::new(),
        }
    }

    /// A listener whose accept queue is full and never drained: connecting there neither
    /// succeeds nor is refused (the SYN is dropped), so only a connect timeout ends it.
    pub async fn blackhole(name: &str) -> FakeUpstream {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        sock.bind(&any.into()).expect("bind");
        sock.listen(0).expect("listen");
        let addr = sock
            .local_addr()
            .expect("local addr")
            .as_socket()
            .expect("inet addr");
        // One connection fills a backlog of 0; it is never accepted.
        let filler = std::net::TcpStream::connect(addr).expect("filler connect");
        FakeUpstream {
            name: name.to_owned(),
            addr,
            state: Arc::default(),
            accept: None,
            _held: vec![Box::new(sock), Box::new(filler)],
        }
    }

    /// `http://127.0.0.1:PORT`, for the config's `address`.
    pub fn address(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests received (health probes excluded).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The last request received whole (health probes excluded).
    pub fn last(&self) -> Option<Seen> {
        self.state.last.lock().expect("capture lock").clone()
    }

    async fn serve(name: &str, knob: Knob) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state: Arc<State> = Arc::default();
        let (n, s) = (name.to_owned(), state.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let (n, s, k) = (n.clone(), s.clone(), knob.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(req, n.clone(), s.clone(), k.clone()));
                    // h1 and h2c (prior knowledge), like a real origin might speak; as many
                    // headers as bascule may pass on (hyper's default stops at 100).
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http1().max_headers(4096);
                    let _closed = builder.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        FakeUpstream {
            name: name.to_owned(),
            addr,
            state,
            accept: Some(accept),
            _held: Vec::new(),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.accept.take() {
            task.abort();
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    name: String,
    state: Arc<State>,
    knob: Knob,
) -> Result<Response<BoxBody<Bytes, Infallible>>, BoxError> {
    if req.uri().path() == HEALTH_PATH {
        return Ok(text(StatusCode::OK, &name, "healthy".into()));
    }
    let knob = match knob {
        Knob::OnPath(path, inner) if req.uri().path() == path => *inner,
        Knob::OnPath(..) => Knob::Ok,
        other => other,
    };
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    // A broken client body is kept as what arrived before the break.
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
    };
    *state.last.lock().expect("capture lock") = Some(seen.clone());
    Ok(match knob {
        Knob::Ok => text(StatusCode::OK, &name, format!("ok from {name}")),
        Knob::Hang => std::future::pending().await,
        // hyper closes a connection whose service fails, without writing a response.
        Knob::Drop => return Err("dropping the connection unanswered".into()),
        Knob::Status(code) => text(
            StatusCode::from_u16(code).expect("valid status"),
            &name,
            format!("{name} says {code}"),
        ),
        Knob::Slow(delay) => {
            tokio::time::sleep(delay).await;
            text(StatusCode::OK, &name, format!("slow from {name}"))
        }
        Knob::Echo => {
            let mut out = format!("{} {} {:?}\n", seen.method, seen.uri, seen.version);
            for (k, v) in &seen.headers {
                out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("<non-ascii>")));
            }
            out.push('\n');
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&seen.body);
            answer(StatusCode::OK, &name, Bytes::from(bytes))
        }
        Knob::Body(b) => answer(StatusCode::OK, &name, b),
        Knob::Headers(extra) => {
            let mut r = text(StatusCode::OK, &name, format!("ok from {name}"));
            for (k, v) in extra {
                r.headers_mut().append(
                    http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                    HeaderValue::from_str(&v).expect("header value"),
                );
            }
            r
        }
        Knob::OnPath(..) => unreachable!("resolved above"),
        Knob::Drip(chunks, delay) => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    if i > 0 {
                        tokio::time::sleep(delay).await;
                    }
                    if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                        return;
                    }
                }
            });
            let mut r = Response::new(Drip(rx).boxed());
            r.headers_mut().insert(
                "x-upstream",
                HeaderValue::from_str(&name).expect("ascii name"),
            );
            r
        }
    })
}

fn text(status: StatusCode, name: &str, body: String) -> Response<BoxBody<Bytes, Infallible>> {
    answer(status, name, Bytes::from(body))
}

fn answer(status: StatusCode, name: &str, body: Bytes) -> Response<BoxBody<Bytes, Infallible>> {
    let mut r = Response::new(Full::new(body).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/plain"));
    h.insert(
        "x-upstream",
        HeaderValue::from_str(name).expect("ascii upstream name"),
    );
    r
}

/// A response body fed chunk by chunk through a channel.
struct Drip(mpsc::Receiver<Bytes>);

impl http_body::Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// Splits an echo answer into its head lines and the body it echoed.
pub fn split_echo(body: &[u8]) -> (String, Bytes) {
    let at = body
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("echo answer has a blank line");
    (
        String::from_utf8_lossy(&body[..at]).into_owned(),
        Bytes::copy_from_slice(&body[at + 2..]),
    )
}
