//! The steering task: keeps every route's active tier. It wakes on an upstream state change, a
//! pin or a reload (all arrive as [`Signal`]s on one lock-free channel) and when a held-back
//! tier's `failback_delay` ends; it then applies the pure policy [`select::steer`] to each route
//! and publishes the result in the route's [`RouteState`], where
//! the request path reads it with one atomic load. What the policy remembers between decisions
//! (when each tier recovered) is the task's own, kept per live route state, so it survives
//! reloads exactly as long as the route state does. The task also records every event: logged
//! through tracing and kept in the [`EventLog`] for `/status`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::Role;
use crate::events::{Action, Change, Event, EventLog, Signal};
use crate::health::Flag;
use crate::metrics::Metrics;
use crate::routing::{Route, RouteState, RoutingTable};
use crate::select::{self, Failback, Steer};

/// Receives signals and steers routes; run with [`Steering::run`].
pub struct Steering {
    table: Arc<ArcSwap<RoutingTable>>,
    signals: UnboundedReceiver<Signal>,
    log: EventLog,
    metrics: Arc<Metrics>,
    start: Instant,
    /// The policy's memory per live route state (by address; the `Arc` keeps it alive).
    memory: HashMap<usize, (Arc<RouteState>, Steer)>,
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
            memory: HashMap::new(),
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
            if e.change == Change::Operator(Action::Undrain) {
                self.undrained.insert(e.subject.clone());
            }
            self.publish(e);
        }
    }

    fn publish(&self, e: Event) {
        let (kind, (from, to)) = (e.change.kind().as_str(), e.change.from_to());
        if e.change.is_bad() {
            warn!(target: "bascule::events", kind, subject = %e.subject, from = %from, to = %to, reason = %e.reason, "event");
        } else {
            info!(target: "bascule::events", kind, subject = %e.subject, from = %from, to = %to, reason = %e.reason, "event");
        }
        self.log.push(e);
    }

    /// Applies the policy to every route now; returns when to look again, if a tier is held
    /// back.
    fn steer_all(&mut self) -> Option<Instant> {
        let table = self.table.load_full();
        let now = self.start.elapsed();
        // Forget the memory of route states no longer served.
        let live: HashSet<usize> = table.routes.iter().map(|r| key(&r.state)).collect();
        self.memory.retain(|k, _| live.contains(k));
        let next = table
            .routes
            .iter()
            .filter_map(|r| self.steer_route(r, now))
            .min()
            .map(|at| self.start + at);
        self.undrained.clear();
        next
    }

    fn steer_route(&mut self, route: &Route, now: Duration) -> Option<Duration> {
        let usable: Vec<bool> = route
            .tiers
            .iter()
            .map(|t| t.iter().any(|u| u.live.health.is_available()))
            .collect();
        let forgiven: Vec<bool> = route
            .tiers
            .iter()
            .map(|t| t.iter().any(|u| self.undrained.contains(u.name())))
            .collect();
        self.watch_origins(route);
        let pin = route.state.pin().map(|p| p.tier);
        let delay = route.spec.failback_delay;
        let failback = Failback {
            delay,
            memory: route.spec.damping_memory,
        };
        let (_, memory) = self
            .memory
            .entry(key(&route.state))
            .or_insert_with(|| (Arc::clone(&route.state), Steer::default()));
        let wake = decide(memory, &usable, &forgiven, pin, failback, now);
        let (before, after) = (route.state.active(), memory.active);
        route.state.set_failback_delay(memory.next_delay(delay));
        if before != after {
            route.state.set_active(after);
            let waited = memory.waited;
            let change = Change::ActiveTier {
                from: before,
                to: after,
                waited,
            };
            let (from, to) = change.from_to();
            self.metrics.failover(&route.spec.name, &from, &to);
            let reason = why(before, after, pin, failback, waited);
            self.publish(Event::now(&route.spec.name, change, reason));
        }
        wake
    }
}

impl Steering {
    /// Publishes whether the route's origins are failing (every origin-role upstream fails its
    /// active checks; a route with none has no origin to blame), with an `origin` event when
    /// that changes.
    fn watch_origins(&self, route: &Route) {
        let mut origins = route
            .tiers
            .iter()
            .flatten()
            .filter(|u| u.spec.role == Role::Origin)
            .peekable();
        let failing =
            origins.peek().is_some() && origins.all(|u| u.live.health.has(Flag::ActiveFailed));
        if route.state.set_origin_failing(failing) {
            let reason = if failing {
                "every origin-role upstream fails its active checks: CDN failures are the origin's"
            } else {
                "an origin-role upstream passes its active checks again"
            };
            self.publish(Event::now(
                &route.spec.name,
                Change::Origin { failing },
                reason,
            ));
        }
    }
}

/// One steering decision: the policy, with the tiers an operator just undrained (`forgiven`)
/// not held back by `failback_delay`.
fn decide(
    memory: &mut Steer,
    usable: &[bool],
    forgiven: &[bool],
    pin: Option<usize>,
    failback: Failback,
    now: Duration,
) -> Option<Duration> {
    let wake = select::steer(memory, usable, pin, failback, now);
    let mut any = false;
    for (t, f) in forgiven.iter().enumerate() {
        if *f && usable.get(t).copied().unwrap_or(false) {
            memory.recovered_at[t] = None;
            any = true;
        }
    }
    if any {
        select::steer(memory, usable, pin, failback, now)
    } else {
        wake
    }
}

fn key(state: &Arc<RouteState>) -> usize {
    Arc::as_ptr(state) as usize
}

fn why(
    before: Option<usize>,
    after: Option<usize>,
    pin: Option<usize>,
    failback: Failback,
    waited: Option<Duration>,
) -> String {
    let fmt = humantime::format_duration;
    let delay = failback.delay;
    match (before, after) {
        (_, None) => "no tier has a usable upstream".to_owned(),
        (_, Some(a)) if pin == Some(a) => format!("pinned to tier {a} by an operator"),
        (None, Some(a)) => format!("tier {a} is the first with a usable upstream"),
        (Some(b), Some(a)) if a > b => format!("tier {b} has no usable upstream"),
        (Some(_), Some(a)) => match waited {
            Some(w) if w > delay => format!(
                "tier {a} has been usable for {} ({}x failback_delay {}: lost again within {} of a failback)",
                fmt(w),
                w.as_millis() / delay.as_millis().max(1),
                fmt(delay),
                fmt(failback.memory)
            ),
            Some(_) => format!("tier {a} has been usable for failback_delay ({})", fmt(delay)),
            None => format!("tier {a} is usable and was not held back"),
        },
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_undrained_tier_is_taken_back_without_waiting_for_failback_delay() {
        let mut m = Steer::default();
        let none = [false, false];
        decide(
            &mut m,
            &[true, true],
            &none,
            None,
            Failback::after(secs(10)),
            secs(0),
        );
        decide(
            &mut m,
            &[false, true],
            &none,
            None,
            Failback::after(secs(10)),
            secs(1),
        );
        assert_eq!(m.active, Some(1));
        decide(
            &mut m,
            &[true, true],
            &[true, false],
            None,
            Failback::after(secs(10)),
            secs(2),
        );
        assert_eq!(m.active, Some(0), "undrained: no failback delay");
    }

    #[test]
    fn a_recovered_tier_that_nobody_undrained_waits_its_delay() {
        let mut m = Steer::default();
        let none = [false, false];
        decide(
            &mut m,
            &[true, true],
            &none,
            None,
            Failback::after(secs(10)),
            secs(0),
        );
        decide(
            &mut m,
            &[false, true],
            &none,
            None,
            Failback::after(secs(10)),
            secs(1),
        );
        let wake = decide(
            &mut m,
            &[true, true],
            &none,
            None,
            Failback::after(secs(10)),
            secs(2),
        );
        assert_eq!(m.active, Some(1));
        assert_eq!(wake, Some(secs(12)), "woken when the delay ends");
    }

    #[test]
    fn forgiving_an_unusable_tier_changes_nothing() {
        let mut m = Steer::default();
        decide(
            &mut m,
            &[false, true],
            &[true, false],
            None,
            Failback::after(secs(10)),
            secs(0),
        );
        assert_eq!(m.active, Some(1));
    }

    #[test]
    fn reasons_say_why_the_tier_changed() {
        assert_eq!(
            why(Some(0), Some(1), None, Failback::after(secs(10)), None),
            "tier 0 has no usable upstream"
        );
        assert_eq!(
            why(
                Some(1),
                Some(0),
                None,
                Failback::after(secs(10)),
                Some(secs(10))
            ),
            "tier 0 has been usable for failback_delay (10s)"
        );
        assert_eq!(
            why(Some(1), Some(0), None, Failback::after(secs(2)), Some(secs(8))),
            "tier 0 has been usable for 8s (4x failback_delay 2s: lost again within 5m of a failback)"
        );
        assert_eq!(
            why(Some(1), Some(0), None, Failback::after(secs(10)), None),
            "tier 0 is usable and was not held back"
        );
        assert_eq!(
            why(Some(0), Some(2), Some(2), Failback::after(secs(1)), None),
            "pinned to tier 2 by an operator"
        );
        assert_eq!(
            why(Some(0), None, None, Failback::after(secs(1)), None),
            "no tier has a usable upstream"
        );
        assert_eq!(
            why(None, Some(1), None, Failback::after(secs(1)), None),
            "tier 1 is the first with a usable upstream"
        );
    }
}
