//! One attempt at one upstream: send with the upstream's response deadline, time the response
//! head (after an admission slot, when the upstream has `max_in_flight`), tell a CDN's own error page from an answer it passes on (DESIGN §7.1), and classify
//! the outcome for the forwarder.

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;

use http::{Request, Response};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::debug;

use super::body::ProxyBody;
use super::error::Failure;
use super::headers;
use crate::cdn;
use crate::client::body::UpstreamBody;
use crate::config::Role;
use crate::routing::Upstream;

/// How one attempt ended.
pub(super) enum Sent {
    /// An answer to pass to the client.
    Answer(Response<ProxyBody>),
    /// A failure, with the upstream's response when it was a status in `on_status` (passed
    /// through if nothing better comes), and what happened (for the ejection event).
    Failed(Failure, Option<Response<ProxyBody>>, String),
}

/// Sends `req` to `upstream`. Its `response_timeout` runs from the end of the request body:
/// from the start for a buffered body, from `body_sent` for a streamed one (while a stream is
/// being sent, the client's `body_timeout` guards it instead). The time to a response head is
/// recorded in the upstream's latency histogram and its hedge estimate (`HeadTimes`).
pub(super) async fn send(
    upstream: &Upstream,
    req: Request<UpstreamBody>,
    body_sent: Option<oneshot::Receiver<()>>,
    on_status: &crate::config::StatusSet,
) -> Sent {
    let deadline = upstream.spec.response_timeout;
    // Admission (DESIGN §7.3): only upstreams with a limit have a gate.
    let admitted = match &upstream.gate {
        None => None,
        Some(gate) => match gate.admit(upstream.spec.queue_timeout).await {
            Ok(permit) => Some(permit),
            Err(_) => {
                debug!(
                    upstream = upstream.name(),
                    "no admission slot within queue_timeout"
                );
                let what = "max_in_flight reached for queue_timeout".to_owned();
                return Sent::Failed(Failure::Overloaded, None, what);
            }
        },
    };
    let in_flight = upstream.live.health.start_request();
    let started = Instant::now();
    let response = upstream.live.client.request(req);
    let result = match body_sent {
        None => tokio::time::timeout(deadline, response).await,
        Some(sent) => {
            tokio::pin!(response);
            tokio::select! {
                biased;
                r = &mut response => Ok(r),
                _ = sent => tokio::time::timeout(deadline, response).await,
            }
        }
    };
    match result {
        Ok(Ok(resp)) => {
            let took = started.elapsed();
            upstream.live.metrics.responded(took);
            upstream.live.head_times.record(started, took);
            let status = resp.status().as_u16();
            let (mut parts, mut body) = resp.into_parts();
            // A CDN's 5xx: its own error page, or the origin's answer passed through?
            let (generated, prefix) = if status >= 500 && upstream.spec.role == Role::Cdn {
                let marker = upstream.spec.origin_marker.as_ref();
                judge_cdn_error(status, &parts.headers, &mut body, marker, deadline).await
            } else {
                (None, None)
            };
            headers::rewrite_response(&mut parts.headers);
            let resp = Response::from_parts(parts, {
                let mut body = ProxyBody::upstream_after(prefix, body, in_flight);
                body.admitted(admitted);
                body
            });
            if let Some(cdn) = generated {
                debug!(
                    upstream = upstream.name(),
                    status, cdn, "the CDN's own error page"
                );
                let what = format!("{cdn} error page, status {status}");
                Sent::Failed(Failure::CdnError, Some(resp), what)
            } else if on_status.contains(status) {
                debug!(upstream = upstream.name(), status, "retryable status");
                Sent::Failed(Failure::Status, Some(resp), format!("status {status}"))
            } else {
                Sent::Answer(resp)
            }
        }
        Ok(Err(e)) => {
            let f = Failure::of(&e);
            let cause = crate::client::error_chain(&e);
            debug!(upstream = upstream.name(), error = %cause, failure = f.outcome().as_str(), "attempt failed");
            Sent::Failed(f, None, cause)
        }
        Err(_elapsed) => {
            debug!(upstream = upstream.name(), "response timeout");
            let what = "no response headers within response_timeout".to_owned();
            Sent::Failed(Failure::ResponseTimeout, None, what)
        }
    }
}

/// Whether a CDN's 5xx answer is its own error page (DESIGN §7.1): status and headers first,
/// then — only if a signature needs it — at most `cdn::BODY_PREFIX` bytes of the body, read
/// within `deadline`. Returns the CDN it names, if any, and what was read (it goes to the
/// client first if the answer is passed on).
async fn judge_cdn_error(
    status: u16,
    headers: &http::HeaderMap,
    body: &mut crate::client::Body,
    marker: Option<&http::HeaderName>,
    deadline: std::time::Duration,
) -> (Option<&'static str>, Option<Bytes>) {
    let by_head = cdn::generated_by(status, headers, b"", marker);
    if by_head.is_some() || marker.is_some() || !cdn::needs_body(status, headers) {
        return (by_head, None);
    }
    let until = tokio::time::Instant::now() + deadline;
    let mut read = BytesMut::new();
    while read.len() < cdn::BODY_PREFIX && !body.is_end_stream() {
        match tokio::time::timeout_at(until, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            // The end, a broken body, or no more bytes in time: judge what arrived.
            Ok(Some(Err(_)) | None) | Err(_) => break,
        }
    }
    let read = read.freeze();
    (cdn::generated_by(status, headers, &read, None), Some(read))
}
