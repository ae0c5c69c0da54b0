//! How an attempt failed, what that allows (retry, replay), and what the client is told when
//! every attempt failed.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use crate::client::body::BodyError;
use crate::client::ConnectError;
use crate::metrics::Outcome;

/// Why one attempt at one upstream failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connecting failed (refused, unreachable, DNS, TLS handshake): nothing was sent.
    Connect,
    /// Connecting took longer than `connect_timeout`: nothing was sent.
    ConnectTimeout,
    /// No response headers within `response_timeout`: the request may have been processed.
    ResponseTimeout,
    /// The upstream answered with a status in `retry.on_status`.
    Status,
    /// A CDN answered with its own error page (DESIGN §7.1), whatever `on_status` says.
    CdnError,
    /// The exchange broke after the request was (perhaps partly) sent.
    Other,
    /// The client's request body stalled for `body_timeout` or broke: the client's doing.
    ClientBody,
    /// bascule itself ran out of a resource (file descriptors, memory) before sending.
    Local,
    /// The upstream's `max_in_flight` slots stayed taken for `queue_timeout`: not sent.
    Overloaded,
}

impl Failure {
    /// Classifies a failed exchange with an upstream.
    pub fn of(err: &crate::client::Error) -> Failure {
        use crate::client::Error;
        match err {
            Error::Connect(ConnectError::Timeout) => Failure::ConnectTimeout,
            Error::Connect(ConnectError::Local(_)) => Failure::Local,
            Error::Connect(_) | Error::Closed => Failure::Connect,
            Error::Exchange(e) => {
                // The client's own body failing is reported through hyper as a user error.
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    if s.is::<BodyError>() {
                        return Failure::ClientBody;
                    }
                    source = s.source();
                }
                Failure::Other
            }
        }
    }

    /// Whether the failure proves that nothing of the request reached the upstream.
    pub fn nothing_sent(self) -> bool {
        match self {
            Failure::Connect | Failure::ConnectTimeout | Failure::Local | Failure::Overloaded => {
                true
            }
            Failure::ResponseTimeout
            | Failure::Status
            | Failure::CdnError
            | Failure::Other
            | Failure::ClientBody => false,
        }
    }

    /// Whether the upstream answered with a response that may be passed to the client when
    /// nothing better comes (a status in `on_status`, a CDN's error page).
    pub fn answered(self) -> bool {
        matches!(self, Failure::Status | Failure::CdnError)
    }

    /// Whether it says something about the upstream (the client's body and bascule's own
    /// resources say nothing).
    pub fn is_upstream_side(self) -> bool {
        !matches!(
            self,
            Failure::ClientBody | Failure::Local | Failure::Overloaded
        )
    }

    /// Whether it was a timeout (the final answer is then 504 rather than 502).
    pub fn is_timeout(self) -> bool {
        match self {
            Failure::ConnectTimeout | Failure::ResponseTimeout => true,
            Failure::Connect
            | Failure::Status
            | Failure::CdnError
            | Failure::Other
            | Failure::ClientBody
            | Failure::Local
            | Failure::Overloaded => false,
        }
    }

    /// Whether this failure counts against the upstream's health (passive ejection), given
    /// whether another upstream answered the same request (DESIGN §7.6, the blame rule):
    /// - an unreachable upstream (refused, connect error or timeout, TLS handshake) is at
    ///   fault whatever the request was;
    /// - a failure that depends on the request (a status in `on_status`, no response head in
    ///   time, an exchange broken mid-way) is the upstream's only when another upstream answered
    ///   the same request; when every attempt failed, the request (or what all tiers reach,
    ///   the origin) is at fault, so one client hammering a failing path cannot eject a CDN;
    /// - a stalled or broken client body is the client's, a local resource failure bascule's.
    pub fn blames_upstream(self, answered_elsewhere: bool) -> bool {
        match self {
            Failure::Connect | Failure::ConnectTimeout => true,
            Failure::ResponseTimeout | Failure::Status | Failure::CdnError | Failure::Other => {
                answered_elsewhere
            }
            // A full queue is bascule's own limit doing its job, not the upstream failing.
            Failure::ClientBody | Failure::Local | Failure::Overloaded => false,
        }
    }

    /// The attempt's outcome (`bascule_upstream_attempts_total{outcome}`).
    pub fn outcome(self) -> Outcome {
        match self {
            Failure::Connect => Outcome::ConnectError,
            Failure::ConnectTimeout | Failure::ResponseTimeout => Outcome::Timeout,
            Failure::Status => Outcome::RetryStatus,
            Failure::CdnError => Outcome::CdnError,
            Failure::Other => Outcome::Error,
            Failure::ClientBody => Outcome::ClientError,
            Failure::Local => Outcome::LocalError,
            Failure::Overloaded => Outcome::Overloaded,
        }
    }
}

/// A short plain-text local answer; names no internal host.
pub fn local(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer when every attempt failed, by the last failure.
pub fn exhausted(last: Option<Failure>) -> Response<ProxyBody> {
    if matches!(last, Some(Failure::Local | Failure::Overloaded)) {
        let mut r = local(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: overloaded, try again shortly\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    if last.is_some_and(Failure::is_timeout) {
        local(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: no upstream answered in time\n",
        )
    } else {
        local(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: no upstream could serve this request\n",
        )
    }
}

/// No route for the request's host and path.
pub fn no_route() -> Response<ProxyBody> {
    local(
        StatusCode::NOT_FOUND,
        "404 Not Found: no route for this host and path\n",
    )
}

/// The client's request body stalled for `body_timeout`: 408, and the connection is closed
/// (HTTP/1.1; an HTTP/2 stream is reset instead).
pub fn body_timeout() -> Response<ProxyBody> {
    let mut r = local(
        StatusCode::REQUEST_TIMEOUT,
        "408 Request Timeout: the request body stalled\n",
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The request could not be read or forwarded as given.
pub fn bad_request() -> Response<ProxyBody> {
    local(StatusCode::BAD_REQUEST, "400 Bad Request\n")
}

/// The request target is longer than bascule forwards.
pub fn uri_too_long() -> Response<ProxyBody> {
    local(StatusCode::URI_TOO_LONG, "414 URI Too Long\n")
}
