//! Admission (DESIGN §7.3): at most `max_in_flight` requests in flight to one upstream; the
//! rest wait, in arrival order (tokio's semaphore is FIFO-fair), at most `queue_timeout`. An
//! upstream with no limit has no gate at all: nothing on its request path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The gate of one upstream with a limit. It lives on the upstream's live object and is kept
/// by a reload that leaves the limit as it was.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    limit: u32,
    waiting: AtomicUsize,
}

/// No slot came free within `queue_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overloaded;

/// Counts one waiter while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    /// A gate letting `limit` (> 0) requests through at once.
    pub fn new(limit: u32) -> Gate {
        Gate {
            slots: Arc::new(Semaphore::new(limit as usize)),
            limit,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Its `max_in_flight`.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Requests waiting for a slot now (`bascule_upstream_queue_depth`).
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        (self.limit as usize).saturating_sub(self.slots.available_permits())
    }

    /// A slot, held until the permit is dropped (the response body ended), waiting at most
    /// `timeout` behind those that came first.
    pub async fn admit(&self, timeout: Duration) -> Result<OwnedSemaphorePermit, Overloaded> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(p);
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(timeout, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) | Err(_) => Err(Overloaded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_excess_waits_in_order_and_gives_up_after_the_timeout() {
        let gate = Arc::new(Gate::new(2));
        let a = gate.admit(Duration::from_secs(1)).await.expect("slot 1");
        let _b = gate.admit(Duration::from_secs(1)).await.expect("slot 2");
        assert_eq!(gate.in_flight(), 2);
        let g = Arc::clone(&gate);
        let first = tokio::spawn(async move { g.admit(Duration::from_secs(1)).await });
        tokio::task::yield_now().await;
        let g = Arc::clone(&gate);
        let second = tokio::spawn(async move { g.admit(Duration::from_secs(1)).await.is_ok() });
        tokio::task::yield_now().await;
        assert_eq!(gate.queue_depth(), 2);
        drop(a);
        let _held = first
            .await
            .expect("task")
            .expect("the first waiter gets the freed slot");
        assert!(
            !second.await.expect("task"),
            "the second times out: Overloaded"
        );
        assert_eq!(gate.queue_depth(), 0);
    }
}
