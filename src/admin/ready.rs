//! Readiness (`GET /ready`): whether this process should be sent new connections. Not before
//! its listeners are bound, and no more once shutdown has begun — while the admin API, and so
//! the liveness check (`GET /status`), keeps answering through the grace period. A load
//! balancer or Kubernetes Service that follows readiness stops sending new connections at
//! SIGTERM instead of finding the listening sockets closed.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Where the process is in its life, as readiness sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The listeners are not bound yet.
    Starting,
    /// Serving: ready.
    Serving,
    /// SIGTERM or SIGINT arrived: in-flight requests are finishing, new ones are refused.
    Stopping,
}

impl Phase {
    /// The name in `/ready`'s answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Stopping => "stopping",
        }
    }

    /// Why the process is not ready, or None when it is.
    pub fn not_ready_because(self) -> Option<&'static str> {
        match self {
            Phase::Starting => Some("starting: the listeners are not bound yet"),
            Phase::Serving => None,
            Phase::Stopping => {
                Some("shutting down: new connections are refused, in-flight requests are finishing")
            }
        }
    }
}

/// The shared phase; clones see the same one. Stopping is final.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const STOPPING: u8 = 2;

impl Readiness {
    /// The listeners are bound and accepting (no effect once stopping).
    pub fn serving(&self) {
        let _already_stopping =
            self.0
                .compare_exchange(STARTING, SERVING, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            STARTING => Phase::Starting,
            SERVING => Phase::Serving,
            _ => Phase::Stopping,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_between_binding_and_shutdown() {
        let r = Readiness::default();
        assert_eq!(r.phase(), Phase::Starting);
        assert!(r.phase().not_ready_because().is_some());
        r.clone().serving();
        assert_eq!(r.phase(), Phase::Serving);
        assert_eq!(r.phase().not_ready_because(), None);
        r.stopping();
        assert_eq!(r.phase(), Phase::Stopping);
    }

    #[test]
    fn stopping_is_final() {
        let r = Readiness::default();
        r.stopping();
        r.serving();
        assert_eq!(r.phase(), Phase::Stopping);
    }
}
