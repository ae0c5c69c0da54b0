//! Fake upstreams in one line (linkerd2-proxy's `app/integration` idea), over the library's
//! one simulated upstream, `bascule::demo::SimUpstream` (a real hyper server on 127.0.0.1:0
//! with hit counters, a capture of the last request and a mode switchable at runtime):
//!
//! ```ignore
//! let cdn = FakeUpstream::refuse("cdn").await;      // connects are refused
//! let origin = FakeUpstream::ok("origin").await;    // 200 "ok from origin"
//! let flaky = FakeUpstream::switchable("cdn", "/healthz").await;
//! flaky.set(Mode::Refuse).await;                    // listener closed, port kept
//! ```
//!
//! The one-behaviour fakes answer [`HEALTH_PATH`] 200 and count it apart from traffic, so that
//! active health probes never disturb what a test measures; a switchable fake's probes obey its
//! mode, so active checks see what traffic sees.

use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;

pub use bascule::demo::{Mode, Seen, SimUpstream, PROBE_PATH as HEALTH_PATH};

/// A fake upstream for one test: a [`SimUpstream`] that records arrival times; it stops when
/// dropped.
pub struct FakeUpstream(SimUpstream);

impl Deref for FakeUpstream {
    type Target = SimUpstream;

    fn deref(&self) -> &SimUpstream {
        &self.0
    }
}

impl FakeUpstream {
    /// Answers 200 with body "ok from NAME".
    pub async fn ok(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Ok).await
    }

    /// Accepts and reads requests but never answers them.
    pub async fn hang(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Hang).await
    }

    /// Reads each request, then closes its connection without an answer.
    pub async fn drop_connection(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Drop).await
    }

    /// Answers every request with `code` and body "NAME says CODE".
    pub async fn status(name: &str, code: u16) -> FakeUpstream {
        Self::one(name, Mode::Status(code)).await
    }

    /// Answers 200 "slow from NAME" after `delay`.
    pub async fn slow(name: &str, delay: Duration) -> FakeUpstream {
        Self::one(name, Mode::Slow(delay)).await
    }

    /// Answers 200 with the request head as text, a blank line, then the request body.
    pub async fn echo(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Echo).await
    }

    /// Answers 200 with exactly `body`.
    pub async fn body(name: &str, body: Bytes) -> FakeUpstream {
        Self::one(name, Mode::Body(body)).await
    }

    /// Answers 200 "ok from NAME" with `headers` added to the response.
    pub async fn with_headers(name: &str, headers: &[(&str, &str)]) -> FakeUpstream {
        let b = headers
            .iter()
            .fold(Self::builder(name), |b, (k, v)| b.header(k, v));
        Self::started(b).await
    }

    /// Behaves as `mode`, with `headers` added to every response.
    pub async fn with_headers_mode(
        name: &str,
        headers: &[(&str, &str)],
        mode: Mode,
    ) -> FakeUpstream {
        let b = headers
            .iter()
            .fold(Self::builder(name).mode(mode), |b, (k, v)| b.header(k, v));
        Self::started(b).await
    }

    /// Answers 200 with `chunks` body chunks "chunk I\n": the first at once, then one every
    /// `delay` (a streamed response).
    pub async fn drip(name: &str, chunks: usize, delay: Duration) -> FakeUpstream {
        Self::one(name, Mode::Drip(chunks, delay)).await
    }

    /// Answers `code` to requests for `path`, 200 "ok from NAME" to the rest (one failing page).
    pub async fn status_on(name: &str, path: &str, code: u16) -> FakeUpstream {
        Self::one(
            name,
            Mode::OnPath(path.into(), Box::new(Mode::Status(code))),
        )
        .await
    }

    /// Never answers requests for `path`; 200 "ok from NAME" to the rest.
    pub async fn hang_on(name: &str, path: &str) -> FakeUpstream {
        Self::one(name, Mode::OnPath(path.into(), Box::new(Mode::Hang))).await
    }

    /// Answers every request with the captured response in `tests/fixtures/cdn/FIXTURE.http`
    /// (a CDN's error page, or an origin's error passed through a CDN).
    pub async fn page(name: &str, fixture: &str) -> FakeUpstream {
        Self::one(name, Mode::Page(fixture_page(fixture))).await
    }

    /// A port kept bound without listening: connecting there is refused.
    pub async fn refuse(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Refuse).await
    }

    /// A listener whose accept queue is full and never drained: connecting there neither
    /// succeeds nor is refused (the SYN is dropped), so only a connect timeout ends it.
    pub async fn blackhole(name: &str) -> FakeUpstream {
        Self::one(name, Mode::Blackhole).await
    }

    /// Healthy at first, switched with `set`; requests for `probe_path` are health probes that
    /// obey the mode, counted and captured apart from traffic.
    pub async fn switchable(name: &str, probe_path: &str) -> FakeUpstream {
        Self::started(SimUpstream::builder(name).probe_path(probe_path).timed()).await
    }

    /// Like `switchable`, with `headers` added to every response.
    pub async fn switchable_with_headers(
        name: &str,
        probe_path: &str,
        headers: &[(&str, &str)],
    ) -> FakeUpstream {
        let b = headers.iter().fold(
            SimUpstream::builder(name).probe_path(probe_path).timed(),
            |b, (k, v)| b.header(k, v),
        );
        Self::started(b).await
    }

    /// One behaviour, probes always answered 200.
    async fn one(name: &str, mode: Mode) -> FakeUpstream {
        Self::started(Self::builder(name).mode(mode)).await
    }

    fn builder(name: &str) -> bascule::demo::Builder {
        SimUpstream::builder(name).probes_pass().timed()
    }

    async fn started(b: bascule::demo::Builder) -> FakeUpstream {
        FakeUpstream(
            b.start()
                .await
                .expect("start a fake upstream on 127.0.0.1:0"),
        )
    }
}

/// Splits an echo answer into its head lines and the body it echoed.
pub fn split_echo(body: &[u8]) -> (String, Bytes) {
    let at = body
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("echo answer has a blank line");
    (
        String::from_utf8_lossy(&body[..at]).into_owned(),
        Bytes::copy_from_slice(&body[at + 2..]),
    )
}

/// The captured response in `tests/fixtures/cdn/NAME.http`.
pub fn fixture_page(name: &str) -> bascule::demo::Page {
    let path = format!(
        "{}/tests/fixtures/cdn/{name}.http",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bascule::demo::Page::parse(&text).unwrap_or_else(|| panic!("{path}: not a response"))
}
