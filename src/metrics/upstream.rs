//! An upstream's cached attempt counters and latency histogram, counted on the request path
//! without a lock and read back for the admin history.

use prometheus_client::metrics::counter::Counter;

use super::{LatencyCounts, LatencyHistogram, Outcome};

/// An upstream's attempt counters, indexed by [`Outcome`], and its latency histogram.
#[derive(Debug, Clone)]
pub struct UpstreamMetrics {
    attempts: [Counter; Outcome::ALL.len()],
    /// `bascule_upstream_failures_total`, indexed by [`Fault`].
    failures: [Counter; 2],
    latency: LatencyHistogram,
}

/// Whose fault a failed attempt was (DESIGN §7.1): the `fault` label of
/// `bascule_upstream_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The CDN's own.
    Cdn,
    /// The origin's (seen directly, or through a CDN).
    Origin,
}

impl Fault {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Cdn => "cdn",
            Fault::Origin => "origin",
        }
    }
}

/// An upstream's attempts so far, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptTotals {
    /// Answered (`outcome="ok"`).
    pub ok: u64,
    /// Failed on the upstream's side: `connect_error`, `timeout`, `retry_status`, `error`,
    /// `cdn_error`
    /// (`client_error` and `local_error` are not the upstream's doing).
    pub failed: u64,
}

impl UpstreamMetrics {
    /// The handles `Metrics::upstream` found for one name.
    pub(super) fn new(
        attempts: [Counter; Outcome::ALL.len()],
        failures: [Counter; 2],
        latency: LatencyHistogram,
    ) -> UpstreamMetrics {
        UpstreamMetrics {
            attempts,
            failures,
            latency,
        }
    }

    /// Counts one failed attempt, attributed to `fault`.
    pub fn failure(&self, fault: Fault) {
        self.failures[fault as usize].inc();
    }

    /// Counts one attempt that ended with `outcome`.
    pub fn attempt(&self, outcome: Outcome) {
        self.attempts[outcome as usize].inc();
    }

    /// Records the time from sending an attempt to its response head: one relaxed atomic add.
    pub fn responded(&self, latency: std::time::Duration) {
        self.latency.observe(latency);
    }

    /// The attempts counted so far (relaxed loads; for the rate history).
    pub fn totals(&self) -> AttemptTotals {
        let n = |o: Outcome| self.attempts[o as usize].get();
        AttemptTotals {
            ok: n(Outcome::Ok),
            failed: n(Outcome::ConnectError)
                + n(Outcome::Timeout)
                + n(Outcome::RetryStatus)
                + n(Outcome::Error)
                + n(Outcome::CdnError),
        }
    }

    /// The latencies recorded so far.
    pub fn latency(&self) -> LatencyCounts {
        self.latency.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;
    use std::time::Duration;

    #[test]
    fn attempt_totals_leave_out_what_is_not_the_upstreams_doing() {
        let m = Metrics::new();
        let u = m.upstream("cdn");
        for o in Outcome::ALL {
            u.attempt(o);
        }
        u.attempt(Outcome::Ok);
        u.responded(Duration::from_millis(2));
        // A new table's handles for the same name count on the same series.
        let again = m.upstream("cdn");
        assert_eq!(again.totals(), AttemptTotals { ok: 2, failed: 5 });
        assert_eq!(again.latency().total(), 1);
        assert_eq!(m.upstream("origin").totals(), AttemptTotals::default());
    }
}
