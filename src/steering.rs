//! The steering task: keeps every route's active tier. It wakes on an upstream state change, a
//! pin or a reload (all arrive as [`Signal`]s on one lock-free channel) and when a held-back
//! tier's `failback_delay` ends; it then applies the pure policy [`select::steer`] to each route
//! and publishes the result in the route's [`RouteState`](crate::routing::RouteState), where
//! the request path reads it with one atomic load. It also records every event: logged through
//! tracing and kept in the [`EventLog`] for `/status`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::health::events::{Event, EventKind, EventLog, Signal};
use crate::metrics::Metrics;
use crate::routing::{Route, RoutingTable};
use crate::select;

/// Receives signals and steers routes; run with [`Steering::run`].
pub struct Steering {
    table: Arc<ArcSwap<RoutingTable>>,
    signals: UnboundedReceiver<Signal>,
    log: EventLog,
    metrics: Arc<Metrics>,
    start: Instant,
    /// Upstreams an operator undrained since the last decision: their tiers are not held back
    /// by `failback_delay` (an undrain acts at once).
    undrained: HashSet<String>,
}

impl Steering {
    /// A steering task over whatever table `table` holds, recording events into `log` and
    /// failovers into `metrics`.
    pub fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        signals: UnboundedReceiver<Signal>,
        log: EventLog,
        metrics: Arc<Metrics>,
    ) -> Steering {
        Steering {
            table,
            signals,
            log,
            metrics,
            start: Instant::now(),
            undrained: HashSet::new(),
        }
    }

    /// Steers until every signal sender is gone.
    pub async fn run(mut self) {
        loop {
            let next = self.steer_all();
            let sleep = tokio::time::sleep_until(next.unwrap_or_else(far_future));
            tokio::select! {
                signal = self.signals.recv() => {
                    let Some(signal) = signal else { return };
                    self.record(signal);
                    // Take everything already queued before steering again.
                    while let Ok(signal) = self.signals.try_recv() {
                        self.record(signal);
                    }
                }
                _ = sleep => {}
            }
        }
    }

    fn record(&mut self, signal: Signal) {
        if let Signal::Event(e) = signal {
            if e.kind == EventKind::Operator && e.to == "undrained" {
                self.undrained.insert(e.subject.clone());
            }
            self.publish(e);
        }
    }

    fn publish(&self, e: Event) {
        let bad = matches!(e.to.as_str(), "unhealthy" | "ejected" | "none");
        if bad {
            warn!(target: "bascule::events", kind = e.kind.as_str(), subject = %e.subject, from = %e.from, to = %e.to, reason = %e.reason, "event");
        } else {
            info!(target: "bascule::events", kind = e.kind.as_str(), subject = %e.subject, from = %e.from, to = %e.to, reason = %e.reason, "event");
        }
        self.log.push(e);
    }

    /// Applies the policy to every route now; returns when to look again, if a tier is held
    /// back.
    fn steer_all(&mut self) -> Option<Instant> {
        let table = self.table.load_full();
        let now = self.start.elapsed();
        let next = table
            .routes
            .iter()
            .filter_map(|r| self.steer_route(r, now))
            .min()
            .map(|at| self.start + at);
        self.undrained.clear();
        next
    }

    fn steer_route(&self, route: &Route, now: Duration) -> Option<Duration> {
        let usable: Vec<bool> = route
            .tiers
            .iter()
            .map(|t| t.iter().any(|u| u.live.health.is_available()))
            .collect();
        let pin = route.state.pin().map(|p| p.tier);
        let delay = route.spec.failback_delay;
        let mut steer = route.state.steer.lock().unwrap_or_else(|p| p.into_inner());
        let mut wake = select::steer(&mut steer, &usable, pin, delay, now);
        let mut forgiven = false;
        for (t, tier) in route.tiers.iter().enumerate() {
            if usable[t] && tier.iter().any(|u| self.undrained.contains(u.name())) {
                steer.recovered_at[t] = None;
                forgiven = true;
            }
        }
        if forgiven {
            wake = select::steer(&mut steer, &usable, pin, delay, now);
        }
        let (before, after) = (route.state.active(), steer.active);
        if before != after {
            route.state.set_active(after);
            let (from, to) = (tier_name(before), tier_name(after));
            self.metrics.failover(&route.spec.name, &from, &to);
            let reason = why(before, after, pin, delay);
            self.publish(Event::now(
                EventKind::ActiveTier,
                &route.spec.name,
                from,
                to,
                reason,
            ));
        }
        wake
    }
}

/// A tier index as events show it: "0", "1", … or "none".
pub fn tier_name(tier: Option<usize>) -> String {
    tier.map_or_else(|| "none".to_owned(), |t| t.to_string())
}

fn why(before: Option<usize>, after: Option<usize>, pin: Option<usize>, delay: Duration) -> String {
    match (before, after) {
        (_, None) => "no tier has a usable upstream".to_owned(),
        (_, Some(a)) if pin == Some(a) => format!("pinned to tier {a} by an operator"),
        (None, Some(a)) => format!("tier {a} is the first with a usable upstream"),
        (Some(b), Some(a)) if a > b => format!("tier {b} has no usable upstream"),
        (Some(_), Some(a)) => format!(
            "tier {a} has been usable for failback_delay ({})",
            humantime::format_duration(delay)
        ),
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}
