//! The request side of a simulated upstream: counts and captures each request, then answers it
//! as the mode says, worded as the upstream was built to word it.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::mode::Mode;
use super::upstream::{lock, Seen, Shared, Wording};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A simulated upstream's response.
pub(super) type Answer = Response<BoxBody<Bytes, Infallible>>;

/// Answers one request (an `Err` makes hyper close the connection without an answer).
pub(super) async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Answer, BoxError> {
    let probe = req.uri().path() == shared.probe_path;
    let mut probe_fails = false;
    // The request's number among its kind (traffic or probes), for `Mode::EveryNth`.
    let nth;
    let seen = if probe {
        let n = shared.probes.fetch_add(1, Ordering::SeqCst);
        let (parts, _) = req.into_parts();
        let seen = Seen {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body: Bytes::new(),
        };
        *lock(&shared.last_probe) = Some(seen.clone());
        if shared.probes_pass {
            return Ok(text(&shared, StatusCode::OK, "healthy".into()));
        }
        probe_fails = n % 2 == 1;
        nth = n;
        seen
    } else {
        nth = shared.hits.fetch_add(1, Ordering::SeqCst);
        let now = Instant::now();
        *lock(&shared.last_hit_at) = Some(now);
        if shared.timed {
            lock(&shared.arrivals).push(now);
        }
        let (parts, body) = req.into_parts();
        // A broken client body is kept as empty.
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
        *lock(&shared.last) = Some(seen.clone());
        seen
    };
    if shared.wording == Wording::Demo && seen.uri.path() == "/slow" {
        tokio::time::sleep(slow_query(&seen)).await;
    }
    let mode = shared.mode.borrow().clone();
    let mode = match mode.for_path(seen.uri.path()) {
        Mode::EveryNth(n, inner) if nth % (*n).max(1) as usize == 0 => inner.as_ref().clone(),
        Mode::EveryNth(..) => Mode::Ok,
        other => other.clone(),
    };
    Ok(match &mode {
        Mode::Ok | Mode::OnPath(..) | Mode::EveryNth(..) => worded(&shared, &seen, StatusCode::OK),
        Mode::Page(p) => {
            let status =
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = answer(&shared, status, Full::new(p.body.clone()).boxed());
            // The page's own fields replace the simulator's (its content type, say).
            for k in p.headers.iter().map(|(k, _)| k) {
                r.headers_mut().remove(k);
            }
            for (k, v) in &p.headers {
                r.headers_mut().append(k.clone(), v.clone());
            }
            r
        }
        Mode::FlapProbes if probe_fails => worded(&shared, &seen, StatusCode::SERVICE_UNAVAILABLE),
        Mode::FlapProbes => worded(&shared, &seen, StatusCode::OK),
        // A request on a connection about to be cut (refuse, blackhole) waits for the cut.
        Mode::Hang | Mode::Refuse | Mode::Blackhole => std::future::pending().await,
        // hyper closes a connection whose service fails, without writing a response.
        Mode::Drop => return Err("dropping the connection unanswered".into()),
        Mode::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            worded(&shared, &seen, status)
        }
        Mode::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            match shared.wording {
                Wording::Short => text(
                    &shared,
                    StatusCode::OK,
                    format!("slow from {}", shared.name),
                ),
                Wording::Demo => worded(&shared, &seen, StatusCode::OK),
            }
        }
        Mode::Echo => answer(&shared, StatusCode::OK, Full::new(echo(&seen)).boxed()),
        Mode::Body(b) => answer(&shared, StatusCode::OK, Full::new(b.clone()).boxed()),
        Mode::Drip(chunks, delay) => answer(&shared, StatusCode::OK, drip(*chunks, *delay).boxed()),
    })
}

/// The answer with `status` in the upstream's words.
fn worded(shared: &Shared, seen: &Seen, status: StatusCode) -> Answer {
    let (name, code) = (&shared.name, status.as_u16());
    let body = match (shared.wording, status) {
        (Wording::Short, StatusCode::OK) => format!("ok from {name}"),
        (Wording::Short, _) => format!("{name} says {code}"),
        (Wording::Demo, _) => format!("{code} from {name} ({} {})\n", seen.method, seen.uri.path()),
    };
    text(shared, status, body)
}

fn text(shared: &Shared, status: StatusCode, body: String) -> Answer {
    answer(shared, status, Full::new(Bytes::from(body)).boxed())
}

fn answer(shared: &Shared, status: StatusCode, body: BoxBody<Bytes, Infallible>) -> Answer {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    for (k, v) in &shared.headers {
        h.append(k.clone(), v.clone());
    }
    r
}

/// The request's head as text, a blank line, then its body.
fn echo(seen: &Seen) -> Bytes {
    let mut out = format!("{} {} {:?}\n", seen.method, seen.uri, seen.version);
    for (k, v) in &seen.headers {
        out.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("<non-ascii>")));
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&seen.body);
    Bytes::from(bytes)
}

/// `/slow?ms=N`: N ms (1000 if absent or unreadable), at most a minute.
fn slow_query(seen: &Seen) -> Duration {
    let ms = seen
        .uri
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000)
        .min(60_000);
    Duration::from_millis(ms)
}

/// `chunks` chunks "chunk I\n": the first at once, then one every `delay`.
fn drip(chunks: usize, delay: Duration) -> Channel<Bytes> {
    let (mut tx, body) = Channel::new(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            if tx
                .send_data(Bytes::from(format!("chunk {i}\n")))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    body
}
