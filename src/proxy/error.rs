//! How an attempt failed, what that allows (retry, replay), and what the client is told when
//! every attempt failed.

use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use crate::client::ConnectError;

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
    /// The exchange broke after the request was (perhaps partly) sent.
    Other,
}

impl Failure {
    /// Classifies a client error from hyper-util.
    pub fn of(err: &hyper_util::client::legacy::Error) -> Failure {
        if !err.is_connect() {
            return Failure::Other;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = source {
            if let Some(ConnectError::Timeout) = e.downcast_ref::<ConnectError>() {
                return Failure::ConnectTimeout;
            }
            source = e.source();
        }
        Failure::Connect
    }

    /// Whether the failure proves that nothing of the request reached the upstream.
    pub fn nothing_sent(self) -> bool {
        match self {
            Failure::Connect | Failure::ConnectTimeout => true,
            Failure::ResponseTimeout | Failure::Status | Failure::Other => false,
        }
    }

    /// Whether it was a timeout (the final answer is then 504 rather than 502).
    pub fn is_timeout(self) -> bool {
        match self {
            Failure::ConnectTimeout | Failure::ResponseTimeout => true,
            Failure::Connect | Failure::Status | Failure::Other => false,
        }
    }

    /// The metric outcome label (`bascule_upstream_attempts_total{outcome}`).
    pub fn outcome(self) -> &'static str {
        match self {
            Failure::Connect => "connect_error",
            Failure::ConnectTimeout | Failure::ResponseTimeout => "timeout",
            Failure::Status => "retry_status",
            Failure::Other => "error",
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

/// The request could not be read or forwarded as given.
pub fn bad_request() -> Response<ProxyBody> {
    local(StatusCode::BAD_REQUEST, "400 Bad Request\n")
}

/// The request target is longer than bascule forwards.
pub fn uri_too_long() -> Response<ProxyBody> {
    local(StatusCode::URI_TOO_LONG, "414 URI Too Long\n")
}
