//! Shared helpers of the integration tests: fake upstreams (`upstream`), the real `bascule`
//! binary on a generated config (`bascule`), and clients (`client`). Everything talks to real
//! sockets on 127.0.0.1 with ephemeral ports; nothing of bascule's own code is mocked.

// Each test binary uses a different part of these helpers.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod bascule;
pub mod browser;
pub mod client;
pub mod config;
pub mod exposition;
pub mod files;
pub mod h2frames;
pub mod listening;
pub mod serving;
pub mod tls;
pub mod tools;
pub mod upstream;

use std::future::Future;
use std::time::Duration;

pub use admin::{admin_get, admin_request};
pub use bascule::{Bascule, TempDir};
pub use client::{get, get_h2c, raw_exchange, read_response, request, wait_closed, Reply};
pub use config::ProxyConfig;
pub use serving::{served_by, until_served_by, Polled, HOST};
pub use upstream::{split_echo, FakeUpstream, Mode, Seen};

/// Runs a test body with a deadline; a test that overruns fails instead of hanging the suite.
pub async fn bounded<F: Future>(limit: Duration, body: F) -> F::Output {
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("test did not finish within {limit:?}"))
}

/// The usual deadline for one test.
pub const TEST_LIMIT: Duration = Duration::from_secs(20);

/// SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` bytes of a deterministic pseudo-random pattern (xorshift), so corruption shows.
pub fn pattern(len: usize, seed: u64) -> bytes::Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    bytes::Bytes::from(out)
}
