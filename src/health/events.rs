//! Events: every change of an upstream's state, of a route's active tier, every reload and
//! every operator action. Producers (checkers, the request path on ejection, the admin API)
//! send them over a lock-free channel to the steering task, which logs them through tracing
//! and keeps the last [`EVENT_CAPACITY`] in an [`EventLog`] for `/status`.

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
}

impl EventKind {
    /// The name used in `/status` and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::UpstreamState => "upstream_state",
            EventKind::ActiveTier => "active_tier",
            EventKind::Reload => "reload",
            EventKind::Operator => "operator",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub at: SystemTime,
    /// What it is about.
    pub kind: EventKind,
    /// The upstream or route name (or the config path for reloads).
    pub subject: String,
    /// State before.
    pub from: String,
    /// State after.
    pub to: String,
    /// Why.
    pub reason: String,
}

impl Event {
    /// An event happening now.
    pub fn now(
        kind: EventKind,
        subject: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        reason: impl Into<String>,
    ) -> Event {
        Event {
            at: SystemTime::now(),
            kind,
            subject: subject.into(),
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
        }
    }
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
    fn the_log_keeps_the_most_recent_events() {
        let log = EventLog::default();
        for i in 0..EVENT_CAPACITY + 10 {
            log.push(Event::now(EventKind::Reload, i.to_string(), "", "", ""));
        }
        let events = log.snapshot();
        assert_eq!(events.len(), EVENT_CAPACITY);
        assert_eq!(events[0].subject, "10");
    }

    #[test]
    fn events_serialize_with_the_status_field_names() {
        let e = Event {
            at: SystemTime::UNIX_EPOCH,
            kind: EventKind::ActiveTier,
            subject: "www".into(),
            from: "0".into(),
            to: "1".into(),
            reason: "tier 0 unusable".into(),
        };
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v["at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["kind"], "active_tier");
        assert_eq!(v["to"], "1");
    }
}
