//! Who serves: one request's answering upstream (`x-bascule-upstream`, which the test configs'
//! `debug_headers = true` adds), and polling until a given upstream answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::get;

/// The host every helper request asks for (the test configs route `*`).
pub const HOST: &str = "www.example.com";

/// The status and the answering upstream of one `GET /` for [`HOST`] through `addr`.
pub async fn served_by(addr: SocketAddr) -> (u16, String) {
    let r = get(addr, HOST, "/").await;
    (r.status.as_u16(), r.header("x-bascule-upstream").to_owned())
}

/// What [`until_served_by`] saw on the way.
#[derive(Debug, Clone, Copy)]
pub struct Polled {
    /// From the first request to the first answer from the upstream looked for.
    pub took: Duration,
    /// Answers on the way that were not a 200.
    pub failed: usize,
}

/// Sends `GET /` through `addr` until `upstream` answers (panics after `limit`).
pub async fn until_served_by(addr: SocketAddr, upstream: &str, limit: Duration) -> Polled {
    let start = Instant::now();
    let mut failed = 0;
    loop {
        let (code, by) = served_by(addr).await;
        if code != 200 {
            failed += 1;
        }
        if by == upstream {
            return Polled {
                took: start.elapsed(),
                failed,
            };
        }
        assert!(
            start.elapsed() < limit,
            "not served by {upstream} within {limit:?} (last answer: {code} from {by:?})"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
