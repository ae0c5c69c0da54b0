//! Events: every change of an upstream's state, of a route's active tier, every reload and
//! every operator action, as typed changes ([`Change`]). Producers (checkers, the request path
//! on ejection, the reloader, the admin API) send them over a lock-free channel to the
//! steering task, which logs them through tracing and keeps the last [`EVENT_CAPACITY`] in an
//! [`EventLog`] for `/status`. A leaf module: it knows nothing of who sends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::mpsc;

/// How many events `/status` can show.
pub const EVENT_CAPACITY: usize = 256;

/// What an event is about (`kind` in `/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An upstream's state changed; `from`/`to` are states.
    UpstreamState,
    /// A route's active tier changed; `from`/`to` are tier indexes or "none".
    ActiveTier,
    /// The configuration was reloaded (or a reload failed).
    Reload,
    /// An operator drained, undrained, pinned or unpinned something.
    Operator,
    /// A route's origins started or stopped failing; `from`/`to` are "ok" or "failing".
    Origin,
}

impl EventKind {
    /// The name used in `/status` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UpstreamState => "upstream_state",
            EventKind::ActiveTier => "active_tier",
            EventKind::Reload => "reload",
            EventKind::Operator => "operator",
            EventKind::Origin => "origin",
        }
    }
}

/// An operator's action through the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// An upstream was drained.
    Drain,
    /// An upstream was undrained (acts at once: its tier is not held back).
    Undrain,
    /// A route was pinned to tier `to` (it was pinned to `from`, if any).
    Pin {
        /// The previous pin.
        from: Option<usize>,
        /// The pinned tier.
        to: usize,
    },
    /// A route's pin to tier `from` was removed.
    Unpin {
        /// The removed pin.
        from: usize,
    },
}

/// What changed, from what to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An upstream's state (`healthy`, `unhealthy`, `ejected`, `drained`).
    UpstreamState {
        /// Before.
        from: &'static str,
        /// After.
        to: &'static str,
    },
    /// A route's active tier; None: no tier has a usable upstream.
    ActiveTier {
        /// Before.
        from: Option<usize>,
        /// After.
        to: Option<usize>,
        /// For a failback that waited: the delay it waited (`failback_delay`, damped after
        /// relapses, DESIGN §7.2); None for any other change.
        waited: Option<std::time::Duration>,
    },
    /// A reload from one generation to the next (equal when the reload failed).
    Reload {
        /// The generation before.
        from: u64,
        /// The generation after.
        to: u64,
    },
    /// An operator's action.
    Operator(Action),
    /// A route's origin-role upstreams started (`failing`) or stopped failing.
    Origin {
        /// Whether they are failing now.
        failing: bool,
    },
}

/// A tier index as events show it: "0", "1", … or "none".
pub fn tier_name(tier: Option<usize>) -> String {
    tier.map_or_else(|| "none".to_owned(), |t| t.to_string())
}

fn pin_name(tier: Option<usize>) -> String {
    tier.map_or_else(|| "unpinned".to_owned(), |t| format!("pinned:{t}"))
}

impl Change {
    /// Its `kind`.
    pub fn kind(&self) -> EventKind {
        match self {
            Change::UpstreamState { .. } => EventKind::UpstreamState,
            Change::ActiveTier { .. } => EventKind::ActiveTier,
            Change::Reload { .. } => EventKind::Reload,
            Change::Operator(_) => EventKind::Operator,
            Change::Origin { .. } => EventKind::Origin,
        }
    }

    /// `from` and `to` as `/status` shows them.
    pub fn from_to(&self) -> (String, String) {
        match *self {
            Change::UpstreamState { from, to } => (from.to_owned(), to.to_owned()),
            Change::ActiveTier { from, to, .. } => (tier_name(from), tier_name(to)),
            Change::Reload { from, to } => (from.to_string(), to.to_string()),
            Change::Operator(Action::Drain) => ("undrained".into(), "drained".into()),
            Change::Operator(Action::Undrain) => ("drained".into(), "undrained".into()),
            Change::Operator(Action::Pin { from, to }) => (pin_name(from), pin_name(Some(to))),
            Change::Operator(Action::Unpin { from }) => (pin_name(Some(from)), pin_name(None)),
            Change::Origin { failing: true } => ("ok".into(), "failing".into()),
            Change::Origin { failing: false } => ("failing".into(), "ok".into()),
        }
    }

    /// Whether it reports something going down (logged as a warning).
    pub fn is_bad(&self) -> bool {
        match self {
            Change::UpstreamState { to, .. } => matches!(*to, "unhealthy" | "ejected"),
            Change::ActiveTier { to, .. } => to.is_none(),
            Change::Reload { from, to } => from == to,
            Change::Operator(_) => false,
            Change::Origin { failing } => *failing,
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened.
    pub at: SystemTime,
    /// The upstream or route name (or the config path for reloads).
    pub subject: String,
    /// What changed.
    pub change: Change,
    /// Why.
    pub reason: String,
}

impl Event {
    /// An event happening now.
    pub fn now(subject: impl Into<String>, change: Change, reason: impl Into<String>) -> Event {
        Event {
            at: SystemTime::now(),
            subject: subject.into(),
            change,
            reason: reason.into(),
        }
    }
}

/// `/status` shows an event as `{at, kind, subject, from, to, reason}`; an `active_tier`
/// event also has `failback_delay_ms`: the delay a failback waited, null for other changes.
impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let (from, to) = self.change.from_to();
        let waited = match self.change {
            Change::ActiveTier { waited, .. } => Some(waited),
            _ => None,
        };
        let mut st = s.serialize_struct("Event", 6 + usize::from(waited.is_some()))?;
        st.serialize_field("at", &humantime::format_rfc3339_millis(self.at).to_string())?;
        st.serialize_field("kind", &self.change.kind())?;
        st.serialize_field("subject", &self.subject)?;
        st.serialize_field("from", &from)?;
        st.serialize_field("to", &to)?;
        st.serialize_field("reason", &self.reason)?;
        if let Some(waited) = waited {
            st.serialize_field("failback_delay_ms", &waited.map(|d| d.as_millis()))?;
        }
        st.end()
    }
}

/// `d` in milliseconds rounded to two decimals, as JSON shows durations (`0.38`, not
/// `0.38042000000000004`).
pub fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// Serializes a time as RFC 3339 with milliseconds.
pub fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// What producers send to the steering task.
#[derive(Debug)]
pub enum Signal {
    /// Something happened; record it (and re-steer when it is an upstream state change).
    Event(Event),
    /// Re-steer now (a reload swapped the table, or a pin changed).
    Resteer,
}

/// The sending side, cloned into every upstream's health and the admin API.
#[derive(Debug, Clone)]
pub struct Signals(mpsc::UnboundedSender<Signal>);

impl Signals {
    /// A channel: the sender, and the receiver the steering task consumes.
    pub fn channel() -> (Signals, mpsc::UnboundedReceiver<Signal>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Signals(tx), rx)
    }

    /// Records `event` (lock-free; dropped when no steering task runs, as in `bascule check`).
    pub fn emit(&self, event: Event) {
        let _no_receiver_is_fine = self.0.send(Signal::Event(event));
    }

    /// Asks the steering task to recompute every route's active tier.
    pub fn resteer(&self) {
        let _no_receiver_is_fine = self.0.send(Signal::Resteer);
    }
}

/// The last events, oldest first; written by the steering task, read by the admin API.
#[derive(Debug, Clone, Default)]
pub struct EventLog(Arc<Mutex<VecDeque<Event>>>);

impl EventLog {
    /// Appends `event`, forgetting the oldest beyond [`EVENT_CAPACITY`].
    pub fn push(&self, event: Event) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == EVENT_CAPACITY {
            q.pop_front();
        }
        q.push_back(event);
    }

    /// A copy of the events, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_in_json_as_milliseconds_to_two_decimals() {
        let ms = millis(std::time::Duration::from_nanos(380_420));
        assert_eq!(serde_json::to_string(&ms).unwrap(), "0.38");
        let ms = millis(std::time::Duration::from_micros(12_346));
        assert_eq!(serde_json::to_string(&ms).unwrap(), "12.35");
    }

    #[test]
    fn the_log_keeps_the_most_recent_events() {
        let log = EventLog::default();
        for i in 0..EVENT_CAPACITY + 10 {
            log.push(Event::now(
                i.to_string(),
                Change::Reload { from: 1, to: 2 },
                "",
            ));
        }
        let events = log.snapshot();
        assert_eq!(events.len(), EVENT_CAPACITY);
        assert_eq!(events[0].subject, "10");
    }

    #[test]
    fn events_serialize_with_the_status_field_names() {
        let e = Event {
            at: SystemTime::UNIX_EPOCH,
            subject: "www".into(),
            change: Change::ActiveTier {
                from: Some(0),
                to: Some(1),
                waited: None,
            },
            reason: "tier 0 unusable".into(),
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["kind"], "active_tier");
        assert_eq!(v["from"], "0");
        assert_eq!(v["to"], "1");
        assert_eq!(v["reason"], "tier 0 unusable");
        assert!(v["failback_delay_ms"].is_null());
        let failback = Event {
            change: Change::ActiveTier {
                from: Some(1),
                to: Some(0),
                waited: Some(std::time::Duration::from_secs(4)),
            },
            ..e.clone()
        };
        let v = serde_json::to_value(&failback).expect("serializes");
        assert_eq!(v["failback_delay_ms"], 4000);
        let reload = Event {
            change: Change::Reload { from: 1, to: 2 },
            ..e
        };
        let v = serde_json::to_value(&reload).expect("serializes");
        assert!(v.get("failback_delay_ms").is_none(), "only tier changes");
    }

    #[test]
    fn operator_actions_read_as_before_and_after() {
        let cases = [
            (Action::Drain, ("undrained", "drained")),
            (Action::Undrain, ("drained", "undrained")),
            (Action::Pin { from: None, to: 2 }, ("unpinned", "pinned:2")),
            (
                Action::Pin {
                    from: Some(1),
                    to: 2,
                },
                ("pinned:1", "pinned:2"),
            ),
            (Action::Unpin { from: 2 }, ("pinned:2", "unpinned")),
        ];
        for (action, (from, to)) in cases {
            let got = Change::Operator(action).from_to();
            assert_eq!(got, (from.to_owned(), to.to_owned()), "{action:?}");
        }
        assert_eq!(
            Change::ActiveTier {
                from: Some(0),
                to: None,
                waited: None,
            }
            .from_to(),
            ("0".to_owned(), "none".to_owned())
        );
    }
}
