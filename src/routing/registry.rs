//! Live objects that outlive reloads: upstreams (pool, health) keyed by their identity
//! (DESIGN §7.5), and route states (active tier, pin) keyed by route name. A reload asks the
//! registry for the objects of the new config: an upstream whose identity is unchanged is
//! handed back with its live state (and retuned in place at commit if only its tuning
//! changed), a changed identity starts fresh (keeping an operator's drain, or a pin while the
//! name exists), and the registry reports what changed so the reload can log a summary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

use super::budget::RetryBudget;
use super::{LiveUpstream, Upstream, UpstreamError};
use crate::cache::Store;
use crate::client::Dns;
use crate::config::{CacheSpec, RouteSpec, UpstreamSpec};
use crate::events::{Action, Change, Event, Signals};
use crate::metrics::Metrics;

const NO_TIER: usize = usize::MAX;

/// An operator's pin of a route to one tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// 0-based tier index.
    pub tier: usize,
    /// Why, as the operator said.
    pub reason: String,
    /// When it was set.
    #[serde(serialize_with = "crate::events::rfc3339")]
    pub at: SystemTime,
}

/// Live state of one route: the tier in use (read lock-free by the request path) and what the
/// steering task and the operator decided.
#[derive(Debug)]
pub struct RouteState {
    name: String,
    active: AtomicUsize,
    /// Every origin-role upstream of the route fails its active checks (DESIGN §7.1).
    origin_failing: AtomicBool,
    /// The delay the next failback would wait, in ms (the steering task's, DESIGN §7.2).
    failback_delay_ms: AtomicU64,
    pin: Mutex<Option<Pin>>,
    signals: Signals,
    /// The route's retry budget (DESIGN §7.4), kept with the rest of its live state.
    pub budget: RetryBudget,
}

impl RouteState {
    fn new(name: &str, signals: Signals) -> RouteState {
        RouteState {
            name: name.to_owned(),
            active: AtomicUsize::new(0),
            origin_failing: AtomicBool::new(false),
            failback_delay_ms: AtomicU64::new(0),
            pin: Mutex::new(None),
            signals,
            budget: RetryBudget::default(),
        }
    }

    /// The active tier; None when no tier has a usable upstream.
    pub fn active(&self) -> Option<usize> {
        match self.active.load(Ordering::Acquire) {
            NO_TIER => None,
            t => Some(t),
        }
    }

    /// Whether the route's origins are failing by their own active checks (the steering
    /// task's verdict; false for a route without origin-role upstreams).
    pub fn origin_failing(&self) -> bool {
        self.origin_failing.load(Ordering::Relaxed)
    }

    /// Publishes whether the route's origins are failing; returns whether that changed.
    pub fn set_origin_failing(&self, failing: bool) -> bool {
        self.origin_failing.swap(failing, Ordering::Relaxed) != failing
    }

    /// The delay the route's next failback would wait (`failback_delay`, damped after
    /// relapses); None until the route was first steered.
    pub fn failback_delay(&self) -> Option<std::time::Duration> {
        match self.failback_delay_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        }
    }

    /// Publishes the delay the next failback would wait (the steering task's).
    pub fn set_failback_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
        self.failback_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Publishes a new active tier (the steering task's decision).
    pub fn set_active(&self, tier: Option<usize>) {
        self.active
            .store(tier.unwrap_or(NO_TIER), Ordering::Release);
    }

    /// The operator's pin, if any.
    pub fn pin(&self) -> Option<Pin> {
        self.pin.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Pins the route to `tier` (already checked to exist), effective at once.
    pub fn set_pin(&self, tier: usize, reason: &str) {
        let old = self
            .pin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Pin {
                tier,
                reason: reason.to_owned(),
                at: SystemTime::now(),
            });
        self.signals.emit(Event::now(
            &self.name,
            Change::Operator(Action::Pin {
                from: old.map(|p| p.tier),
                to: tier,
            }),
            reason,
        ));
        self.signals.resteer();
    }

    /// Removes the pin, effective at once; returns whether there was one.
    pub fn unpin(&self, reason: &str) -> bool {
        let old = self.pin.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(old) = old else { return false };
        self.signals.emit(Event::now(
            &self.name,
            Change::Operator(Action::Unpin { from: old.tier }),
            reason,
        ));
        self.signals.resteer();
        true
    }
}

/// What a reload changed, by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Upstreams new in this config.
    pub upstreams_added: Vec<String>,
    /// Upstreams no longer configured.
    pub upstreams_removed: Vec<String>,
    /// Upstreams whose identity changed (they start with fresh health and pool).
    pub upstreams_changed: Vec<String>,
    /// Upstreams whose tuning changed, applied in place (health and pool kept).
    pub upstreams_retuned: Vec<String>,
    /// Routes new in this config.
    pub routes_added: Vec<String>,
    /// Routes no longer configured.
    pub routes_removed: Vec<String>,
    /// Routes whose definition changed.
    pub routes_changed: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Hands out live objects by identity, so that reloads keep live state and pools.
pub struct Registry {
    dns: Dns,
    signals: Signals,
    metrics: Arc<Metrics>,
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
    routes: Mutex<HashMap<String, (RouteSpec, Arc<RouteState>)>>,
    /// The cache store, made by the first table with `[cache] max_size` > 0 and kept by every
    /// table after it (its size is fixed until restart).
    cache: Mutex<Option<Arc<Store>>>,
}

impl Registry {
    /// An empty registry resolving names through `dns`, reporting events to `signals` and
    /// counting into `metrics`.
    pub fn new(dns: Dns, signals: Signals, metrics: Arc<Metrics>) -> Registry {
        Registry {
            dns,
            signals,
            metrics,
            upstreams: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            cache: Mutex::new(None),
        }
    }

    /// The cache store for `spec`: the one in use (its `max_object` retuned), else a new one;
    /// None while `max_size` is 0 (nothing allocated). A store, once made, lives until
    /// restart: `max_size` changes (0 included) take a restart.
    pub fn cache(&self, spec: &CacheSpec) -> Option<Arc<Store>> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*c {
            Some(store) => {
                if store.max_size() != spec.max_size {
                    tracing::warn!(
                        running = store.max_size(),
                        configured = spec.max_size,
                        "cache.max_size changes take a restart"
                    );
                }
                store.retune(spec);
                Some(Arc::clone(store))
            }
            None if spec.max_size == 0 => None,
            None => {
                let store = Store::new(spec);
                *c = Some(Arc::clone(&store));
                Some(store)
            }
        }
    }

    /// The metrics the live objects count into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The channel events go to.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The table entries for `specs`, over reused or new live objects, without committing:
    /// nothing the running table uses changes until [`Registry::commit`].
    pub fn prepare_upstreams(
        &self,
        specs: &[UpstreamSpec],
    ) -> Result<Vec<Arc<Upstream>>, UpstreamError> {
        let live = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            let old = live.get(&spec.name);
            let kept = old
                .filter(|u| u.live.identity == spec.identity())
                .map(|u| Arc::clone(&u.live));
            let live = match kept {
                Some(l) => l,
                None => {
                    let metrics = self.metrics.upstream(&spec.name);
                    let l =
                        LiveUpstream::new(spec, self.dns.clone(), self.signals.clone(), metrics)?;
                    if let Some(old) = old {
                        l.health.inherit_drain(&old.live.health);
                    }
                    Arc::new(l)
                }
            };
            out.push(Arc::new(Upstream {
                gate: live.gate(spec.max_in_flight),
                spec: spec.clone(),
                live,
            }));
        }
        Ok(out)
    }

    /// The route state for each of `specs`: the existing one when the route's tiers are the
    /// same, else a fresh one (keeping a pin whose tier still exists).
    pub fn prepare_routes(&self, specs: &[RouteSpec]) -> Vec<Arc<RouteState>> {
        let live = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        specs
            .iter()
            .map(|spec| match live.get(&spec.name) {
                Some((old, state)) if old.tiers == spec.tiers => Arc::clone(state),
                old => {
                    let state = RouteState::new(&spec.name, self.signals.clone());
                    if let Some(pin) = old.and_then(|(_, s)| s.pin()) {
                        if pin.tier < spec.tiers.len() {
                            *state.pin.lock().unwrap_or_else(|p| p.into_inner()) = Some(pin);
                        } else {
                            tracing::warn!(route = %spec.name, tier = pin.tier, "pin dropped: the route no longer has that tier");
                        }
                    }
                    Arc::new(state)
                }
            })
            .collect()
    }

    /// Makes `upstreams` and `routes` the live objects (the table using them was swapped in),
    /// and returns what changed by name.
    pub fn commit(
        &self,
        upstreams: &[Arc<Upstream>],
        routes: &[(RouteSpec, Arc<RouteState>)],
    ) -> Changes {
        let mut c = Changes::default();
        let mut live = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(upstreams.len());
        for u in upstreams {
            match live.remove(u.name()) {
                None => c.upstreams_added.push(u.name().to_owned()),
                Some(old) if !Arc::ptr_eq(&old.live, &u.live) => {
                    c.upstreams_changed.push(u.name().to_owned());
                }
                Some(old) => {
                    if old.spec != u.spec {
                        c.upstreams_retuned.push(u.name().to_owned());
                    }
                    // Always: a failed reload in between must not leave stale tuning behind.
                    u.live.retune(&u.spec);
                }
            }
            next.insert(u.name().to_owned(), Arc::clone(u));
        }
        c.upstreams_removed = live.drain().map(|(k, _)| k).collect();
        *live = next;
        drop(live);

        let mut live = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::with_capacity(routes.len());
        for (spec, state) in routes {
            match live.remove(&spec.name) {
                None => c.routes_added.push(spec.name.clone()),
                Some((old, _)) if old != *spec => c.routes_changed.push(spec.name.clone()),
                Some(_) => {}
            }
            next.insert(spec.name.clone(), (spec.clone(), Arc::clone(state)));
        }
        c.routes_removed = live.drain().map(|(k, _)| k).collect();
        *live = next;
        for v in [
            &mut c.upstreams_added,
            &mut c.upstreams_removed,
            &mut c.upstreams_changed,
            &mut c.upstreams_retuned,
            &mut c.routes_added,
            &mut c.routes_removed,
            &mut c.routes_changed,
        ] {
            v.sort();
        }
        c
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
