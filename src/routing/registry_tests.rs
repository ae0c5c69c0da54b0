//! The registry across reloads: what is kept by identity, what starts fresh, what a fresh
//! object inherits (a drain, a pin whose tier exists), and the `Changes` it reports.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::{validate, Config};

/// A config with `upstreams` (TOML tables) and `routes` (`[[routes]]` entries).
fn config(upstreams: &str, routes: &str) -> Config {
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\n[admin]\nenabled = false\n{upstreams}\n{routes}"
    );
    validate::parse(Path::new("test.toml"), &text, &|_| None).expect("a valid config")
}

fn registry() -> Registry {
    let (signals, _rx) = Signals::channel();
    Registry::new(Dns::system(), signals, Arc::new(Metrics::new()))
}

/// Prepares and commits `c` as a reload would; returns the table's objects and the changes.
fn load(r: &Registry, c: &Config) -> (Vec<Arc<Upstream>>, Vec<Arc<RouteState>>, Changes) {
    let ups = r.prepare_upstreams(&c.upstreams).expect("upstreams");
    let states = r.prepare_routes(&c.routes);
    let routes: Vec<_> = c
        .routes
        .iter()
        .cloned()
        .zip(states.iter().cloned())
        .collect();
    let changes = r.commit(&ups, &routes);
    (ups, states, changes)
}

fn named<'a>(ups: &'a [Arc<Upstream>], name: &str) -> &'a Arc<Upstream> {
    ups.iter()
        .find(|u| u.name() == name)
        .expect("an upstream of that name")
}

const ROUTE: &str = "[[routes]]\nname = \"www\"\nhosts = [\"*\"]\ntiers = [\"cdn\", \"origin\"]\n";

fn two(cdn_keys: &str) -> String {
    format!(
        "[upstreams.cdn]\naddress = \"http://127.0.0.1:1\"\n{cdn_keys}\n\
         [upstreams.origin]\naddress = \"http://127.0.0.1:2\"\n"
    )
}

#[tokio::test]
async fn an_unchanged_identity_is_reused_and_retuned_in_place() {
    let r = registry();
    let (before, _, _) = load(
        &r,
        &config(&two("[upstreams.cdn.health]\ninterval = \"1s\""), ROUTE),
    );
    let (after, _, changes) = load(
        &r,
        &config(&two("[upstreams.cdn.health]\ninterval = \"3s\""), ROUTE),
    );
    let (old, new) = (named(&before, "cdn"), named(&after, "cdn"));
    assert!(
        Arc::ptr_eq(&old.live, &new.live),
        "same live object: health and pool kept"
    );
    assert_eq!(
        new.live.probe.load().interval,
        Duration::from_secs(3),
        "retuned"
    );
    assert_eq!(changes.upstreams_retuned, ["cdn"]);
    assert!(changes.upstreams_changed.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn a_changed_identity_starts_fresh_but_keeps_an_operators_drain() {
    let r = registry();
    let (before, _, _) = load(&r, &config(&two(""), ROUTE));
    assert!(named(&before, "cdn").live.health.drain("maintenance"));
    let (after, _, changes) = load(&r, &config(&two("host = \"cdn.example\""), ROUTE));
    let (old, new) = (named(&before, "cdn"), named(&after, "cdn"));
    assert!(!Arc::ptr_eq(&old.live, &new.live), "a fresh live object");
    assert_eq!(
        new.live.health.drain_reason().as_deref(),
        Some("maintenance")
    );
    assert_eq!(changes.upstreams_changed, ["cdn"]);
    assert!(Arc::ptr_eq(
        &named(&before, "origin").live,
        &named(&after, "origin").live
    ));
}

#[tokio::test]
async fn a_route_with_the_same_tiers_keeps_its_state() {
    let r = registry();
    let (_, before, _) = load(&r, &config(&two(""), ROUTE));
    before[0].set_active(Some(1));
    let (_, after, changes) = load(&r, &config(&two(""), ROUTE));
    assert!(Arc::ptr_eq(&before[0], &after[0]));
    assert_eq!(after[0].active(), Some(1));
    assert!(changes.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn a_reload_retuning_hedging_and_the_budget_keeps_the_budgets_balance() {
    let r = registry();
    let (_, before, _) = load(&r, &config(&two(""), ROUTE));
    let now = std::time::Instant::now();
    assert!(before[0].budget.try_spend(now, 10));
    let retuned = format!("{ROUTE}[routes.retry]\nhedge_after = \"off\"\nbudget = 0.5\n");
    let (_, after, changes) = load(&r, &config(&two(""), &retuned));
    assert!(Arc::ptr_eq(&before[0], &after[0]), "the same live state");
    assert_eq!(
        after[0].budget.tokens(now, 10),
        99,
        "the spent token stays spent"
    );
    assert_eq!(changes.routes_changed, vec!["www".to_owned()]);
}

#[tokio::test]
async fn a_pin_survives_a_change_of_tiers_while_its_tier_exists() {
    let r = registry();
    let three = format!(
        "{}[upstreams.backup]\naddress = \"http://127.0.0.1:3\"\n",
        two("")
    );
    let (_, before, _) = load(&r, &config(&three, ROUTE));
    before[0].set_pin(1, "origin only");
    let longer = ROUTE.replace("\"origin\"]", "\"origin\", \"backup\"]");
    let (_, after, changes) = load(&r, &config(&three, &longer));
    assert!(
        !Arc::ptr_eq(&before[0], &after[0]),
        "new tiers: a fresh state"
    );
    let pin = after[0].pin().expect("the pin is kept");
    assert_eq!((pin.tier, pin.reason.as_str()), (1, "origin only"));
    assert_eq!(changes.routes_changed, ["www"]);
    let shorter = ROUTE.replace("[\"cdn\", \"origin\"]", "[\"cdn\"]");
    let (_, last, _) = load(&r, &config(&three, &shorter));
    assert_eq!(last[0].pin(), None, "tier 1 is gone, and the pin with it");
}

#[tokio::test]
async fn changes_name_what_was_added_removed_changed_and_retuned() {
    let r = registry();
    let ups = |b_addr: &str, last: &str| {
        format!(
            "[upstreams.a]\naddress = \"http://127.0.0.1:1\"\n{}\n\
             [upstreams.b]\naddress = \"{b_addr}\"\n\
             [upstreams.{last}]\naddress = \"http://127.0.0.1:9\"\n",
            if last == "d" {
                "connect_timeout = \"3s\""
            } else {
                ""
            }
        )
    };
    let route = |name: &str, prefix: &str| {
        format!("[[routes]]\nname = \"{name}\"\nhosts = [\"*\"]\npath_prefix = \"{prefix}\"\ntiers = [\"a\"]\n")
    };
    let first = config(
        &ups("http://127.0.0.1:2", "c"),
        &format!("{}{}", route("r1", "/"), route("r2", "/two/")),
    );
    let (_, _, initial) = load(&r, &first);
    assert_eq!(initial.upstreams_added, ["a", "b", "c"]);
    assert_eq!(initial.routes_added, ["r1", "r2"]);
    let second = config(
        &ups("http://127.0.0.1:3", "d"),
        &format!("{}{}", route("r1", "/one/"), route("r3", "/three/")),
    );
    let (_, _, c) = load(&r, &second);
    assert_eq!(
        c,
        Changes {
            upstreams_added: vec!["d".into()],
            upstreams_removed: vec!["c".into()],
            upstreams_changed: vec!["b".into()],
            upstreams_retuned: vec!["a".into()],
            routes_added: vec!["r3".into()],
            routes_removed: vec!["r2".into()],
            routes_changed: vec!["r1".into()],
        }
    );
    let (_, _, again) = load(&r, &second);
    assert!(
        again.is_empty(),
        "the same config again changes nothing: {again:?}"
    );
}

#[tokio::test]
async fn admission_is_tuning_the_gate_is_kept_while_its_limit_is() {
    let r = registry();
    let limit = |n: u32| two(&format!("max_in_flight = {n}\nqueue_timeout = \"200ms\""));
    let (a, _, _) = load(&r, &config(&limit(10), ROUTE));
    let (b, _, changes) = load(&r, &config(&limit(10), ROUTE));
    let (c, _, _) = load(&r, &config(&limit(20), ROUTE));
    let (d, _, _) = load(&r, &config(&two(""), ROUTE));
    let gate = |ups: &[Arc<Upstream>]| named(ups, "cdn").gate.clone();
    let (ga, gb, gc) = (
        gate(&a).expect("a"),
        gate(&b).expect("b"),
        gate(&c).expect("c"),
    );
    assert!(
        Arc::ptr_eq(&ga, &gb),
        "same limit: the same gate and its count"
    );
    assert!(
        !Arc::ptr_eq(&gb, &gc) && gc.limit() == 20,
        "a new limit: a new gate"
    );
    assert!(gate(&d).is_none(), "no limit: no gate");
    assert!(
        Arc::ptr_eq(&named(&a, "cdn").live, &named(&d, "cdn").live),
        "identity kept"
    );
    assert!(changes.upstreams_changed.is_empty(), "{changes:?}");
}

#[tokio::test]
async fn the_cache_store_outlives_reloads_and_is_made_only_when_sized() {
    let r = registry();
    let spec = |max_size: u64| crate::config::CacheSpec {
        max_size,
        max_object: 1 << 10,
        stale_if_error: Duration::from_secs(1),
        lock_timeout: Duration::from_secs(1),
    };
    assert!(r.cache(&spec(0)).is_none(), "off: nothing allocated");
    let first = r.cache(&spec(1 << 20)).expect("a store");
    let again = r.cache(&spec(1 << 20)).expect("the store");
    assert!(Arc::ptr_eq(&first, &again));
}
