//! From the samples, the primary's arrival times and the timeline of one scenario to the
//! figures of the report: errors, when the primary was abandoned, latency during the
//! transition, when traffic came back, and who served what in each phase.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Outcome, Sample, Served};

/// When things happened, from the start of the load.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    /// The primary was broken.
    pub broke: Duration,
    /// The primary was healed.
    pub healed: Duration,
    /// The load stopped scheduling requests.
    pub ended: Duration,
}

/// Requests served by each upstream (from the response header) in one phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Served3 {
    pub primary: usize,
    pub secondary: usize,
    pub origin: usize,
    /// Another or no upstream named (errors, answers the proxy made itself).
    pub other: usize,
}

impl Served3 {
    fn count(samples: &[&Sample]) -> Served3 {
        let mut c = Served3::default();
        for s in samples {
            match s.served {
                Served::Primary => c.primary += 1,
                Served::Secondary => c.secondary += 1,
                Served::Origin => c.origin += 1,
                Served::Other | Served::Unknown => c.other += 1,
            }
        }
        c
    }

    fn slash(&self) -> String {
        format!("{}/{}/{}", self.primary, self.secondary, self.origin)
    }
}

/// The figures of one scenario.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub scenario: &'static str,
    pub requests: usize,
    pub errors: usize,
    /// "status 503: 12, deadline: 3", empty when there were none.
    pub error_kinds: String,
    /// From the break to the last live request the primary received before the heal.
    pub abandoned_after: Duration,
    /// False when the primary still received requests up to the heal.
    pub abandoned: bool,
    /// Live requests the primary received between the break and the heal.
    pub primary_hits_in_break: usize,
    pub transition_p50: Duration,
    pub transition_p99: Duration,
    pub transition_max: Duration,
    /// Live requests the upstreams received per client request, in the warm-up and the break.
    pub upstream_per_request_warmup: f64,
    pub upstream_per_request_break: f64,
    pub warmup_p99: Duration,
    /// From the heal to the first request scheduled after it that the primary answered.
    pub failback_after: Option<Duration>,
    pub expected_failback: Option<Duration>,
    pub warmup: Served3,
    pub during_break: Served3,
    pub after_heal: Served3,
    pub timeline: Timeline,
    /// From the break to the last live request the primary received before its first gap of
    /// at least [`GAP`] in the break (first taken out of use); None: no such gap.
    pub first_out_after: Option<Duration>,
    /// Times in the break the primary received live requests again after a gap of at least
    /// [`GAP`] (failbacks, or an ejection running out).
    pub returns: usize,
}

/// A pause in the primary's traffic this long means it was out of use (at the harness's
/// rates, hundreds of requests would have reached it meanwhile).
pub const GAP: Duration = Duration::from_millis(500);

/// From the break: the end of the first [`GAP`] in `hits` (sorted, all in the break), and how
/// many gaps end with a request.
fn gaps(hits: &[Duration], broke: Duration, healed: Duration) -> (Option<Duration>, usize) {
    let mut first = None;
    let mut returns = 0;
    let mut last = broke;
    for &h in hits {
        if h - last >= GAP && h > broke && last > broke {
            first = first.or(Some(last - broke));
            returns += 1;
        }
        last = h;
    }
    if first.is_none() && healed.saturating_sub(last) >= GAP {
        first = Some(last.saturating_sub(broke));
    }
    (first, returns)
}

/// Inputs of [`Report::new`] besides the samples.
pub struct Context {
    pub target: &'static str,
    pub scenario: &'static str,
    pub timeline: Timeline,
    /// Arrival times at the primary of live requests, from the start of the load.
    pub primary_hits: Vec<Duration>,
    /// Arrival times at any of the three upstreams of live requests.
    pub upstream_hits: Vec<Duration>,
    pub expected_failback: Option<Duration>,
    /// Time between two scheduled requests.
    pub period: Duration,
    /// Requests aborted when the drain bound expired (counted as errors).
    pub unfinished: usize,
}

impl Report {
    pub fn new(samples: &[Sample], cx: Context) -> Report {
        let t = cx.timeline;
        let in_phase = |from: Duration, to: Duration| -> Vec<&Sample> {
            samples
                .iter()
                .filter(|s| s.at >= from && s.at < to)
                .collect()
        };
        let in_break: Vec<Duration> = cx
            .primary_hits
            .iter()
            .copied()
            .filter(|&h| h >= t.broke && h < t.healed)
            .collect();
        let last_hit = in_break.iter().max().copied();
        let mut sorted = in_break.clone();
        sorted.sort_unstable();
        let (first_out_after, returns) = gaps(&sorted, t.broke, t.healed);
        let abandoned_after = last_hit.map_or(Duration::ZERO, |h| h - t.broke);
        // Still in use at the heal: a request within a few periods of it (at least 500 ms).
        let slack = (cx.period * 3).max(Duration::from_millis(500));
        let abandoned = last_hit.is_none_or(|h| h + slack < t.healed);
        let transition_end = if abandoned {
            (t.broke + abandoned_after + Duration::from_secs(1)).min(t.healed)
        } else {
            t.healed
        };
        let transition = in_phase(t.broke, transition_end);
        let warmup = in_phase(Duration::ZERO, t.broke);
        let failback_after = samples
            .iter()
            .filter(|s| s.at >= t.healed && s.served == Served::Primary && !s.outcome.is_error())
            .map(|s| s.at - t.healed)
            .min();
        let errors = samples.iter().filter(|s| s.outcome.is_error()).count() + cx.unfinished;
        let per = |hits: usize, requests: usize| hits as f64 / requests.max(1) as f64;
        let hits_in = |from: Duration, to: Duration| {
            cx.upstream_hits
                .iter()
                .filter(|&&h| h >= from && h < to)
                .count()
        };
        let break_samples = in_phase(t.broke, t.healed);
        Report {
            target: cx.target,
            scenario: cx.scenario,
            requests: samples.len() + cx.unfinished,
            errors,
            error_kinds: error_kinds(samples, cx.unfinished),
            abandoned_after,
            abandoned,
            primary_hits_in_break: in_break.len(),
            transition_p50: percentile(&transition, 0.5),
            transition_p99: percentile(&transition, 0.99),
            upstream_per_request_warmup: per(hits_in(Duration::ZERO, t.broke), warmup.len()),
            upstream_per_request_break: per(hits_in(t.broke, t.healed), break_samples.len()),
            transition_max: percentile(&transition, 1.0),
            warmup_p99: percentile(&warmup, 0.99),
            failback_after,
            expected_failback: cx.expected_failback,
            warmup: Served3::count(&warmup),
            during_break: Served3::count(&break_samples),
            after_heal: Served3::count(&in_phase(t.healed, Duration::MAX)),
            timeline: t,
            first_out_after,
            returns,
        }
    }

    /// The markdown table's header (two lines).
    pub fn markdown_header() -> String {
        "| target | scenario | requests | client errors | primary abandoned after | p50 / p99 during transition | max | warm-up p99 | upstream requests per request (warm-up / break) | failback after (expected) | served by primary/secondary/origin during break |\n\
         |---|---|---|---|---|---|---|---|---|---|---|"
            .to_owned()
    }

    pub fn markdown_row(&self) -> String {
        let abandoned = if self.abandoned {
            secs(self.abandoned_after)
        } else {
            format!(
                "not abandoned (used until heal, {})",
                secs(self.abandoned_after)
            )
        };
        let failback = match self.failback_after {
            Some(d) => secs(d),
            None => format!(
                "no failback within {}",
                secs(self.timeline.ended - self.timeline.healed)
            ),
        };
        let expected = self.expected_failback.map_or("?".to_owned(), secs);
        format!(
            "| {} | {} | {} | {} | {abandoned} | {} / {} | {} | {} | {:.3} / {:.3} | {failback} ({expected}) | {} |",
            self.target,
            self.scenario,
            self.requests,
            self.errors,
            ms(self.transition_p50),
            ms(self.transition_p99),
            ms(self.transition_max),
            ms(self.warmup_p99),
            self.upstream_per_request_warmup,
            self.upstream_per_request_break,
            self.during_break.slash(),
        )
    }

    /// Tab-separated header; times in seconds, "NA" where there is nothing to measure.
    pub fn tsv_header() -> &'static str {
        "target\tscenario\trequests\terrors\tabandoned\tabandoned_after_s\ttransition_p50_s\t\
         transition_p99_s\ttransition_max_s\twarmup_p99_s\tupstream_per_request_warmup\t\
         upstream_per_request_break\tfailback_after_s\texpected_failback_s\t\
         warmup_p/s/o\tbreak_p/s/o\theal_p/s/o\terror_kinds"
    }

    pub fn tsv_row(&self) -> String {
        let opt =
            |d: Option<Duration>| d.map_or("NA".to_owned(), |d| format!("{:.3}", d.as_secs_f64()));
        format!(
            "{}\t{}\t{}\t{}\t{}\t{:.3}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{:.4}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.target,
            self.scenario,
            self.requests,
            self.errors,
            self.abandoned,
            self.abandoned_after.as_secs_f64(),
            self.transition_p50.as_secs_f64(),
            self.transition_p99.as_secs_f64(),
            self.transition_max.as_secs_f64(),
            self.warmup_p99.as_secs_f64(),
            self.upstream_per_request_warmup,
            self.upstream_per_request_break,
            opt(self.failback_after),
            opt(self.expected_failback),
            self.warmup.slash(),
            self.during_break.slash(),
            self.after_heal.slash(),
            self.error_kinds,
        )
    }

    /// A few lines on the scenario, printed as soon as it ends.
    pub fn details(&self) -> String {
        let t = self.timeline;
        let mut out = format!(
            "== {} / {}: broken at {}, healed at {}, load stopped at {}; {} requests, {} errors",
            self.target,
            self.scenario,
            secs(t.broke),
            secs(t.healed),
            secs(t.ended),
            self.requests,
            self.errors
        );
        if !self.error_kinds.is_empty() {
            let _ = write!(out, " ({})", self.error_kinds);
        }
        let _ = write!(
            out,
            "\n   the primary received {} live requests during the break, the last {} after it",
            self.primary_hits_in_break,
            secs(self.abandoned_after)
        );
        let first_out = self.first_out_after.map_or("never".to_owned(), secs);
        let _ = write!(
            out,
            "\n   first out of use {first_out} after the break; back in use {} times in the break (after a gap of {} or more)",
            self.returns,
            ms(GAP)
        );
        for (phase, c) in [
            ("warm-up", self.warmup),
            ("break", self.during_break),
            ("after heal", self.after_heal),
        ] {
            let _ = write!(
                out,
                "\n   {phase:<10} served by primary/secondary/origin/none: {}/{}",
                c.slash(),
                c.other
            );
        }
        out
    }
}

/// Every sample as a TSV line (scheduled time and latency in seconds), for plotting.
pub fn samples_tsv(samples: &[Sample]) -> String {
    let mut out = String::from("at_s\tlatency_s\toutcome\tserved\n");
    for s in samples {
        let _ = writeln!(
            out,
            "{:.4}\t{:.4}\t{}\t{:?}",
            s.at.as_secs_f64(),
            s.latency.as_secs_f64(),
            outcome_name(s.outcome),
            s.served
        );
    }
    out
}

fn outcome_name(outcome: Outcome) -> String {
    match outcome {
        Outcome::Status(code) => format!("status {code}"),
        Outcome::Connect => "connect".into(),
        Outcome::Closed => "closed".into(),
        Outcome::Transport => "transport".into(),
        Outcome::Deadline => "30s deadline".into(),
        Outcome::NotSent => "not sent (in-flight cap)".into(),
    }
}

/// "status 503: 12, deadline: 3" for the failed requests, by kind.
fn error_kinds(samples: &[Sample], unfinished: usize) -> String {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    let failed = samples.iter().filter(|s| s.outcome.is_error());
    for s in failed {
        let name = outcome_name(s.outcome);
        match kinds.iter_mut().find(|(k, _)| *k == name) {
            Some((_, n)) => *n += 1,
            None => kinds.push((name, 1)),
        }
    }
    if unfinished > 0 {
        kinds.push(("unfinished".into(), unfinished));
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    parts.join(", ")
}

/// The `q` quantile (nearest rank) of the latencies; zero for no samples.
fn percentile(samples: &[&Sample], q: f64) -> Duration {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    latencies.sort_unstable();
    let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        secs(d)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}
