//! The `outcome` label of `bascule_upstream_attempts_total`: how one attempt ended.

/// How one attempt at an upstream ended: the `outcome` label of
/// `bascule_upstream_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a status that is not a failure.
    Ok,
    /// Connect failed (refused, unreachable, DNS, TLS handshake).
    ConnectError,
    /// Connect or response-head deadline passed.
    Timeout,
    /// Answered with a status in `retry.on_status`.
    RetryStatus,
    /// The exchange broke after the request was sent.
    Error,
    /// The client's request body stalled or broke (the client's doing).
    ClientError,
    /// bascule ran out of descriptors or memory (bascule's own).
    LocalError,
    /// A CDN answered with its own error page (DESIGN §7.1).
    CdnError,
    /// Lost a hedge race: dropped when another attempt answered first (DESIGN §7.4).
    Cancelled,
    /// No admission slot within `queue_timeout` (DESIGN §7.3): nothing was sent.
    Overloaded,
}

impl Outcome {
    /// Every outcome, in label-index order.
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::ConnectError,
        Outcome::Timeout,
        Outcome::RetryStatus,
        Outcome::Error,
        Outcome::ClientError,
        Outcome::LocalError,
        Outcome::CdnError,
        Outcome::Cancelled,
        Outcome::Overloaded,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::RetryStatus => "retry_status",
            Outcome::Error => "error",
            Outcome::ClientError => "client_error",
            Outcome::LocalError => "local_error",
            Outcome::CdnError => "cdn_error",
            Outcome::Cancelled => "cancelled",
            Outcome::Overloaded => "overloaded",
        }
    }
}
