//! Open-loop load: GET requests scheduled at a fixed rate by the clock, each sent when due
//! whether or not earlier ones have been answered, over a pool of keep-alive HTTP/1.1
//! connections. Latency counts from the scheduled send time (latency-corrected), so a stall
//! of the proxy shows up in full even if the generator itself fell behind.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Each request, connect to last body byte, must complete within this.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The response header naming the upstream that answered.
const UPSTREAM_HEADER: &str = "x-bascule-upstream";

/// Which upstream answered, from the response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Primary,
    Secondary,
    Origin,
    /// A header naming something else (HAProxy's `<NOSRV>`, say).
    Other,
    /// No header (a transport error, or an answer the proxy made itself).
    Unknown,
}

impl Served {
    fn from_header(value: Option<&http::HeaderValue>) -> Served {
        match value.map(|v| v.as_bytes()) {
            Some(b"primary") => Served::Primary,
            Some(b"secondary") => Served::Secondary,
            Some(b"origin") => Served::Origin,
            Some(_) => Served::Other,
            None => Served::Unknown,
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A complete response with this status.
    Status(u16),
    /// The connection to the proxy could not be made.
    Connect,
    /// The connection closed before the response was complete.
    Closed,
    /// Any other transport error.
    Transport,
    /// No complete response within [`DEADLINE`].
    Deadline,
    /// Not sent: the in-flight cap was reached (the load generator's limit, not the proxy's).
    NotSent,
}

impl Outcome {
    /// What a client sees as a failure: anything but a 2xx response.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Status(code) if (200..300).contains(&code))
    }
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Scheduled send time, from the start of the load.
    pub at: Duration,
    /// From the scheduled send time to the end of the response (or the error).
    pub latency: Duration,
    pub outcome: Outcome,
    pub served: Served,
}

/// A running load; [`Load::finish`] stops it and hands back every sample.
pub struct Load {
    /// When the first request was scheduled; every time in the samples counts from here.
    pub start: Instant,
    stop: watch::Sender<bool>,
    task: JoinHandle<Finished>,
}

/// What the generator hands back.
pub struct Finished {
    pub samples: Vec<Sample>,
    /// Requests still running when the drain bound expired (aborted, not in `samples`).
    pub unfinished: usize,
}

impl Load {
    /// Starts sending `rate` requests per second to `target`, for at most `max_duration`,
    /// with at most `max_in_flight` outstanding.
    pub fn start(
        target: SocketAddr,
        rate: u32,
        max_in_flight: usize,
        max_duration: Duration,
    ) -> Load {
        let start = Instant::now();
        let (stop, stop_rx) = watch::channel(false);
        let generator = Generator {
            client: client(),
            uri: format!("http://{target}/bench"),
            start,
            rate: u64::from(rate.max(1)),
            max_in_flight,
            max_duration,
            samples: Arc::new(Mutex::new(Vec::new())),
        };
        let task = tokio::spawn(generator.run(stop_rx));
        Load { start, stop, task }
    }

    /// Time since the start of the load.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Stops scheduling, waits for in-flight requests (each is bounded by [`DEADLINE`]), and
    /// returns the samples in scheduled order.
    pub async fn finish(self) -> Finished {
        self.stop.send_replace(true);
        let mut finished = self.task.await.expect("the load generator task panicked");
        finished.samples.sort_by_key(|s| s.at);
        finished
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(50))
        .build(connector)
}

struct Generator {
    client: Client<HttpConnector, Empty<Bytes>>,
    uri: String,
    start: Instant,
    rate: u64,
    max_in_flight: usize,
    max_duration: Duration,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Generator {
    async fn run(self, mut stop: watch::Receiver<bool>) -> Finished {
        let mut in_flight = JoinSet::new();
        let max_requests = self.rate * (self.max_duration.as_secs() + 1);
        for i in 0..max_requests {
            let due = self.start + Duration::from_nanos(i * 1_000_000_000 / self.rate);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
            while in_flight.try_join_next().is_some() {}
            if in_flight.len() >= self.max_in_flight {
                self.record(due, Outcome::NotSent, Served::Unknown);
                continue;
            }
            let (client, uri, samples) =
                (self.client.clone(), self.uri.clone(), self.samples.clone());
            let start = self.start;
            in_flight.spawn(async move {
                let (outcome, served) = send(&client, &uri).await;
                let sample = Sample {
                    at: due - start,
                    latency: due.elapsed(),
                    outcome,
                    served,
                };
                samples.lock().expect("samples lock").push(sample);
            });
        }
        let unfinished = drain(in_flight).await;
        let samples = std::mem::take(&mut *self.samples.lock().expect("samples lock"));
        Finished {
            samples,
            unfinished,
        }
    }

    fn record(&self, due: Instant, outcome: Outcome, served: Served) {
        let sample = Sample {
            at: due - self.start,
            latency: due.elapsed(),
            outcome,
            served,
        };
        self.samples.lock().expect("samples lock").push(sample);
    }
}

/// Waits for the requests still running (each ends within its deadline); aborts any left
/// after that, and returns how many were.
async fn drain(mut in_flight: JoinSet<()>) -> usize {
    let bound = DEADLINE + Duration::from_secs(2);
    let all_done = async { while in_flight.join_next().await.is_some() {} };
    if tokio::time::timeout(bound, all_done).await.is_err() {
        let left = in_flight.len();
        in_flight.abort_all();
        return left;
    }
    0
}

/// One GET, whole body read, within the deadline.
async fn send(client: &Client<HttpConnector, Empty<Bytes>>, uri: &str) -> (Outcome, Served) {
    let request = Request::get(uri)
        .body(Empty::new())
        .expect("a valid request");
    let exchange = async {
        let response = client.request(request).await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let served = Served::from_header(response.headers().get(UPSTREAM_HEADER));
        let body = response.into_body().collect().await;
        body.map_err(|e| classify(&e))?;
        Ok::<_, Outcome>((Outcome::Status(status), served))
    };
    match tokio::time::timeout(DEADLINE, exchange).await {
        Ok(Ok(done)) => done,
        Ok(Err(outcome)) => (outcome, Served::Unknown),
        Err(_) => (Outcome::Deadline, Served::Unknown),
    }
}

/// Connect failure, early close, or something else, from an error and its sources.
fn classify(error: &(dyn std::error::Error + 'static)) -> Outcome {
    if let Some(e) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
        if e.is_connect() {
            return Outcome::Connect;
        }
    }
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return Outcome::Closed;
            }
        }
        current = e.source();
    }
    Outcome::Transport
}
