//! What the sampler reads each second ([`Reading`]: counter totals, the server's clocks) and
//! what `/history` serves ([`Sample`]: rates between two successive readings, computed from the
//! server's own timestamps, so a slow or throttled reader still gets true rates).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::{AttemptTotals, RouteTotals};

/// The counters of the serving table at one moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Wall-clock time, milliseconds since the Unix epoch (shown, not used for rates).
    pub at_ms: u64,
    /// Monotonic time since the sampler started (rates are computed from it).
    pub mono: Duration,
    /// Each upstream of the table.
    pub upstreams: Vec<UpstreamReading>,
    /// Each route of the table.
    pub routes: Vec<RouteReading>,
}

/// One upstream's counters.
#[derive(Debug, Clone, Default)]
pub struct UpstreamReading {
    /// Its name.
    pub name: String,
    /// Attempts so far.
    pub attempts: AttemptTotals,
    /// Median time to a response head over the latency window; None without responses.
    pub p50: Option<Duration>,
    /// 95th percentile of the same.
    pub p95: Option<Duration>,
}

/// One route's counters.
#[derive(Debug, Clone, Default)]
pub struct RouteReading {
    /// Its name.
    pub name: String,
    /// Its upstreams' names, in `totals.by_upstream` order, then "-" (bascule's answers).
    pub upstreams: Vec<String>,
    /// Requests so far.
    pub totals: RouteTotals,
    /// The active tier when read.
    pub active_tier: Option<usize>,
}

/// The rates between two successive readings, as `/history` shows them.
#[derive(Debug, Serialize, PartialEq)]
pub struct Sample<'a> {
    /// The reading's number (`?after=` takes it).
    pub seq: u64,
    /// The end of the interval: server wall clock, milliseconds since the Unix epoch.
    pub t: u64,
    /// The interval's length by the server's monotonic clock, in milliseconds.
    pub dt_ms: u64,
    /// Per upstream name.
    pub upstreams: BTreeMap<&'a str, UpstreamSample>,
    /// Per route name.
    pub routes: BTreeMap<&'a str, RouteSample<'a>>,
}

/// One upstream's rates (per second) and recent latency.
#[derive(Debug, Serialize, PartialEq)]
pub struct UpstreamSample {
    /// Answered attempts per second.
    pub ok: f64,
    /// Failed attempts per second (the upstream's failures: connect, timeout, status, error).
    pub failed: f64,
    /// Median time to response head over the last seconds, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile of the same.
    pub p95_ms: Option<f64>,
}

/// One route's rates (per second) and active tier.
#[derive(Debug, Serialize, PartialEq)]
pub struct RouteSample<'a> {
    /// Requests answered per second.
    pub requests: f64,
    /// Of those, answered 5xx.
    pub errors: f64,
    /// The active tier at the end of the interval (null: none usable).
    pub active_tier: Option<usize>,
    /// Requests per second by the upstream that answered ("-": bascule itself).
    pub by_upstream: BTreeMap<&'a str, f64>,
}

/// Per-second rate of a counter that went from `before` to `after` in `secs`; a counter that
/// went down (none should) counts as zero.
fn rate(before: u64, after: u64, secs: f64) -> f64 {
    let per_s = after.saturating_sub(before) as f64 / secs;
    (per_s * 1000.0).round() / 1000.0
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl<'a> Sample<'a> {
    /// The rates from `before` to `now` (reading number `seq`); None when no time passed.
    /// Names missing from `before` (added by a reload) get no rate in this sample.
    pub fn between(seq: u64, before: &Reading, now: &'a Reading) -> Option<Sample<'a>> {
        let dt = now.mono.checked_sub(before.mono).filter(|d| !d.is_zero())?;
        let secs = dt.as_secs_f64();
        let mut upstreams = BTreeMap::new();
        for u in &now.upstreams {
            let Some(b) = before.upstreams.iter().find(|b| b.name == u.name) else {
                continue;
            };
            upstreams.insert(
                u.name.as_str(),
                UpstreamSample {
                    ok: rate(b.attempts.ok, u.attempts.ok, secs),
                    failed: rate(b.attempts.failed, u.attempts.failed, secs),
                    p50_ms: u.p50.map(millis),
                    p95_ms: u.p95.map(millis),
                },
            );
        }
        let mut routes = BTreeMap::new();
        for r in &now.routes {
            let Some(b) = before.routes.iter().find(|b| b.name == r.name) else {
                continue;
            };
            let earlier = |name: &str| {
                b.upstreams
                    .iter()
                    .position(|n| n == name)
                    .and_then(|i| b.totals.by_upstream.get(i).copied())
            };
            let mut by_upstream = BTreeMap::new();
            for (name, n) in r.upstreams.iter().zip(&r.totals.by_upstream) {
                if let Some(was) = earlier(name) {
                    *by_upstream.entry(name.as_str()).or_insert(0.0) += rate(was, *n, secs);
                }
            }
            routes.insert(
                r.name.as_str(),
                RouteSample {
                    requests: rate(b.totals.requests, r.totals.requests, secs),
                    errors: rate(b.totals.errors, r.totals.errors, secs),
                    active_tier: r.active_tier,
                    by_upstream,
                },
            );
        }
        Some(Sample {
            seq,
            t: now.at_ms,
            dt_ms: u64::try_from(dt.as_millis()).unwrap_or(u64::MAX),
            upstreams,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading at `secs` (both clocks) where upstream "cdn" had `ok` answered attempts and
    /// route "www" `requests` requests, all answered by "cdn".
    fn reading(secs: f64, ok: u64, requests: u64) -> Reading {
        let mono = Duration::from_secs_f64(secs);
        Reading {
            at_ms: 1_700_000_000_000 + mono.as_millis() as u64,
            mono,
            upstreams: vec![UpstreamReading {
                name: "cdn".into(),
                attempts: AttemptTotals { ok, failed: 0 },
                p50: Some(Duration::from_micros(1500)),
                p95: None,
            }],
            routes: vec![RouteReading {
                name: "www".into(),
                upstreams: vec!["cdn".into(), "-".into()],
                totals: RouteTotals {
                    requests,
                    errors: 0,
                    by_upstream: vec![requests, 0],
                },
                active_tier: Some(0),
            }],
        }
    }

    #[test]
    fn rates_come_from_the_servers_timestamps_not_from_the_period() {
        let (a, b) = (reading(10.0, 100, 100), reading(10.5, 150, 130));
        let s = Sample::between(7, &a, &b).expect("a sample");
        assert_eq!((s.seq, s.dt_ms, s.t), (7, 500, b.at_ms));
        assert_eq!(s.upstreams["cdn"].ok, 100.0, "50 in half a second");
        assert_eq!(s.upstreams["cdn"].p50_ms, Some(1.5));
        assert_eq!(s.upstreams["cdn"].p95_ms, None);
        let www = &s.routes["www"];
        assert_eq!((www.requests, www.active_tier), (60.0, Some(0)));
        assert_eq!(www.by_upstream["cdn"], 60.0);
        assert_eq!(www.by_upstream["-"], 0.0);
    }

    #[test]
    fn a_gap_in_the_readings_is_averaged_over_its_length() {
        // The sampler was held up for 9 s: the 90 requests in between are spread over them.
        let (before, now) = (reading(1.0, 0, 0), reading(10.0, 90, 90));
        let s = Sample::between(2, &before, &now).expect("a sample");
        assert_eq!(s.dt_ms, 9000);
        assert_eq!(s.upstreams["cdn"].ok, 10.0);
        assert_eq!(s.routes["www"].requests, 10.0);
    }

    #[test]
    fn no_time_no_rate_and_counters_never_go_negative() {
        let a = reading(3.0, 10, 10);
        assert_eq!(Sample::between(2, &a, &a), None);
        let reset = reading(4.0, 4, 4);
        let s = Sample::between(2, &a, &reset).expect("a sample");
        assert_eq!(s.upstreams["cdn"].ok, 0.0);
    }

    #[test]
    fn names_a_reload_added_get_rates_from_the_next_reading_on() {
        let before = reading(1.0, 5, 5);
        let mut now = reading(2.0, 6, 6);
        now.upstreams.push(UpstreamReading {
            name: "fastly".into(),
            ..UpstreamReading::default()
        });
        now.routes[0].upstreams.insert(1, "fastly".into());
        now.routes[0].totals.by_upstream.insert(1, 3);
        let s = Sample::between(2, &before, &now).expect("a sample");
        assert!(!s.upstreams.contains_key("fastly"));
        assert!(!s.routes["www"].by_upstream.contains_key("fastly"));
        assert_eq!(s.routes["www"].by_upstream["cdn"], 1.0);
    }
}
