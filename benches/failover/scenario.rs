//! How the upstreams break and heal in each scenario. The textbook failures break the primary
//! alone, at once and for good until the heal; the outage-shaped ones (DESIGN §7.1) are what
//! CDNs really did:
//!
//! - `branded-500`: the primary answers everything, health probes included, with Cloudflare's
//!   own `500 Internal server error` page (tests/fixtures/cdn/cloudflare-500.http), as on
//!   18 November 2025;
//! - `flapping`: the primary serves that page in bursts that come and go — 3.5 s bad, 1.5 s
//!   good, over and over through the break (70 % of the time bad);
//! - `origin-outage`: the origin fails (503) and both CDNs pass its 503 on, health probes
//!   included, for the break; then everything is healthy again. Measured: how much the primary
//!   CDN still answers during the outage and in the 10 s after it.
//!
//! And the partial and flapping failures of DESIGN §7.2 (issue 18):
//!
//! - `half-failing`: the primary serves that page to every other request (never two in a
//!   row), its probes likewise (so `fall = 2` never marks it down): only a failure rate can
//!   eject it;
//! - `relapsing`: the page for 2 s, then health for 3 s, over and over through the break (run
//!   it with `--break-secs 60` and `failback_delay = "2s"`): how often the proxy fails back
//!   into a CDN that keeps relapsing;
//! - `standby`: nothing breaks (run it with `standby_share = 0.02`): the secondary's share of
//!   the break's requests is the warm standby's;
//! - `standby-broken`: the *secondary* serves the page, probes included, for the break, while
//!   the primary is healthy: what readers see of a broken warm standby (nothing, if it works).
//!
//! And what hedging and the retry budget must get right (DESIGN §7.4, issue 17):
//!
//! - `slow-primary` (DESIGN §7.4): the primary answers everything, probes included, after
//!   300 ms — slow but healthy: no failover, and few hedges;
//! - `brownout` (DESIGN §7.4): the origin answers every second request with 503 and every tier
//!   passes that on (probes alternate too, so the checks stay green): retries are held to the
//!   retry budget, so upstream requests stay ≤ (1 + budget) × client requests plus
//!   `budget_min_per_sec` per second.

use std::time::Duration;

use bascule::demo::{Mode, Page, SimUpstream};

use crate::proxy::Upstreams;

/// How the upstreams break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Refuse,
    Hang,
    Status503,
    Status520,
    Branded500,
    Flapping,
    OriginOutage,
    HalfFailing,
    Relapsing,
    Standby,
    StandbyBroken,
    SlowPrimary,
    Brownout,
}

/// How long the slow-but-healthy primary takes to answer.
const SLOW: Duration = Duration::from_millis(300);

/// One bad-then-good cycle of `flapping`.
const FLAP_BAD: Duration = Duration::from_millis(3500);
const FLAP_GOOD: Duration = Duration::from_millis(1500);
/// One bad-then-good cycle of `relapsing`.
const RELAPSE_BAD: Duration = Duration::from_secs(2);
const RELAPSE_GOOD: Duration = Duration::from_secs(3);

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 13] = [
        Scenario::Refuse,
        Scenario::Hang,
        Scenario::Status503,
        Scenario::Status520,
        Scenario::Branded500,
        Scenario::Flapping,
        Scenario::OriginOutage,
        Scenario::HalfFailing,
        Scenario::Relapsing,
        Scenario::Standby,
        Scenario::StandbyBroken,
        Scenario::SlowPrimary,
        Scenario::Brownout,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Refuse => "refuse",
            Scenario::Hang => "hang",
            Scenario::Status503 => "503",
            Scenario::Status520 => "520",
            Scenario::Branded500 => "branded-500",
            Scenario::Flapping => "flapping",
            Scenario::OriginOutage => "origin-outage",
            Scenario::HalfFailing => "half-failing",
            Scenario::Relapsing => "relapsing",
            Scenario::Standby => "standby",
            Scenario::StandbyBroken => "standby-broken",
            Scenario::SlowPrimary => "slow-primary",
            Scenario::Brownout => "brownout",
        }
    }

    /// The scenario named `text`.
    pub fn parse(text: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == text)
    }

    /// How long the load goes on after the heal at least (the origin outage's "10 s after").
    pub fn after_heal(self) -> Duration {
        match self {
            Scenario::OriginOutage => Duration::from_secs(10),
            _ => Duration::ZERO,
        }
    }

    /// Breaks the upstreams and keeps them broken for `length` (the flapping primary going
    /// back and forth meanwhile), then heals every one.
    pub async fn break_for(self, ups: &Upstreams<'_>, length: Duration) {
        let until = tokio::time::Instant::now() + length;
        match self {
            Scenario::Refuse => ups.primary.switch(Mode::Refuse),
            Scenario::Hang => ups.primary.switch(Mode::Hang),
            Scenario::Status503 => ups.primary.switch(Mode::Status(503)),
            Scenario::Status520 => ups.primary.switch(Mode::Status(520)),
            Scenario::Branded500 => ups.primary.switch(Mode::Page(branded_500())),
            Scenario::Flapping => flap(ups.primary, (FLAP_BAD, FLAP_GOOD), until).await,
            Scenario::HalfFailing => ups
                .primary
                .switch(Mode::EveryNth(2, Box::new(Mode::Page(branded_500())))),
            Scenario::Relapsing => flap(ups.primary, (RELAPSE_BAD, RELAPSE_GOOD), until).await,
            Scenario::Standby => {}
            Scenario::StandbyBroken => ups.secondary.switch(Mode::Page(branded_500())),
            Scenario::OriginOutage => {
                for u in [ups.origin, ups.primary, ups.secondary] {
                    u.switch(Mode::Status(503));
                }
            }
            Scenario::SlowPrimary => ups.primary.switch(Mode::Slow(SLOW)),
            Scenario::Brownout => {
                for u in [ups.origin, ups.primary, ups.secondary] {
                    u.switch(Mode::EveryNth(2, Box::new(Mode::Status(503))));
                }
            }
        }
        tokio::time::sleep_until(until).await;
        for u in [ups.primary, ups.secondary, ups.origin] {
            u.switch(Mode::Ok);
        }
    }
}

/// Cloudflare's branded 500 page of 18 November 2025, as the tests' fixture holds it.
fn branded_500() -> Page {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cdn/cloudflare-500.http"
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Page::parse(&text).unwrap_or_else(|| panic!("{path}: not a response"))
}

/// Switches `primary` between the branded page and health, `bad` then `good`, until `until`.
async fn flap(
    primary: &SimUpstream,
    (bad, good): (Duration, Duration),
    until: tokio::time::Instant,
) {
    let page = branded_500();
    while tokio::time::Instant::now() < until {
        primary.switch(Mode::Page(page.clone()));
        tokio::time::sleep_until((tokio::time::Instant::now() + bad).min(until)).await;
        primary.switch(Mode::Ok);
        tokio::time::sleep_until((tokio::time::Instant::now() + good).min(until)).await;
    }
}
