use super::*;

fn spec(max_size: u64, max_object: u64) -> CacheSpec {
    CacheSpec {
        max_size,
        max_object,
        stale_if_error: Duration::from_secs(3600),
        lock_timeout: Duration::from_secs(5),
    }
}

fn fresh(secs: u64) -> Freshness {
    Freshness {
        fresh_for: Duration::from_secs(secs),
        age: Duration::ZERO,
        stale_for: Duration::from_secs(60),
        shared_with_authorized: false,
        vary: Vec::new(),
    }
}

fn put(store: &Arc<Store>, k: &str, body: &[u8], leader: Option<Leader>) {
    let mut f = store
        .filling(
            k.into(),
            (StatusCode::OK, &HeaderMap::new()),
            fresh(60),
            Vec::new(),
            leader,
        )
        .expect("storable");
    assert!(f.push(body));
    f.finish();
}

#[test]
fn the_key_is_the_host_without_its_port_then_path_and_query() {
    assert_eq!(
        &*key("WWW.Example.com:8080", "/a?b=1"),
        "www.example.com/a?b=1"
    );
    assert_eq!(&*key("www.example.com", "/"), "www.example.com/");
}

#[test]
fn a_stored_body_comes_back_whole_in_compact_chunks() {
    let store = Store::new(&spec(1 << 20, 256 << 10));
    let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut f = store
        .filling(
            "h/x".into(),
            (StatusCode::OK, &HeaderMap::new()),
            fresh(60),
            Vec::new(),
            None,
        )
        .expect("storable");
    for piece in body.chunks(1000) {
        assert!(f.push(piece));
    }
    f.finish();
    let e = store.get("h/x").expect("stored");
    assert_eq!(e.len, 200_000);
    assert_eq!(e.chunks.concat(), body);
    assert!(e.chunks.len() <= 8, "{} chunks", e.chunks.len());
    assert!(e.is_fresh(Instant::now()));
    assert!(
        store.bytes() >= 200_000 && store.bytes() < 201_000,
        "{}",
        store.bytes()
    );
}

#[test]
fn storing_stops_past_max_object_and_an_announced_length_over_it_is_never_started() {
    let store = Store::new(&spec(1 << 20, 1000));
    let mut f = store
        .filling(
            "h/big".into(),
            (StatusCode::OK, &HeaderMap::new()),
            fresh(60),
            Vec::new(),
            None,
        )
        .expect("no length announced");
    assert!(f.push(&[0; 600]));
    assert!(!f.push(&[0; 600]), "past max_object");
    drop(f);
    assert!(store.get("h/big").is_none());
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from_static("1001"),
    );
    assert!(store
        .filling(
            "h/big".into(),
            (StatusCode::OK, &h),
            fresh(60),
            Vec::new(),
            None
        )
        .is_none());
}

#[test]
fn exact_and_prefix_purges_count_what_they_removed() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    for p in ["/news/a", "/news/b?x=1", "/sport/c", "/news"] {
        put(&store, &key("www.example.com", p), b"body", None);
    }
    put(&store, &key("other.example.com", "/news/a"), b"body", None);
    assert_eq!(store.purge("www.example.com", "/news/a"), 1);
    assert_eq!(store.purge("www.example.com", "/news/a"), 0);
    assert_eq!(store.purge("www.example.com", "/news*"), 2);
    assert_eq!(store.len(), 2, "the other host's and /sport/c stay");
    assert_eq!(store.purge("www.example.com", "*"), 1);
}

#[test]
fn filling_twice_over_stays_within_max_size() {
    let store = Store::new(&spec(1 << 20, 64 << 10));
    for i in 0..400 {
        put(&store, &format!("h/{i}"), &[7; 5000], None);
    }
    assert!(store.bytes() <= 1 << 20, "{}", store.bytes());
    assert!(store.len() > 100, "{}", store.len());
}

#[tokio::test]
async fn one_leader_per_key_and_its_waiters_get_what_it_stored() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    let Join::Leader(leader) = store.join("h/a") else {
        panic!("first is the leader")
    };
    let Join::Waiter(rx) = store.join("h/a") else {
        panic!("second waits")
    };
    let waiter = tokio::spawn(wait(rx, Duration::from_secs(5)));
    put(&store, "h/a", b"shared", Some(leader));
    let (got, stale) = waiter.await.expect("task").expect("the leader's entry");
    assert_eq!((got.chunks.concat(), stale), (b"shared".to_vec(), false));
    assert!(
        matches!(store.join("h/a"), Join::Leader(_)),
        "landed: next miss leads"
    );
}

#[tokio::test]
async fn a_leader_that_fails_sends_its_waiters_upstream_at_once() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    let Join::Leader(leader) = store.join("h/a") else {
        panic!("leader")
    };
    let Join::Waiter(rx) = store.join("h/a") else {
        panic!("waiter")
    };
    let started = Instant::now();
    let waiter = tokio::spawn(wait(rx, Duration::from_secs(5)));
    drop(leader);
    assert!(waiter.await.expect("task").is_none());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_gives_up_after_lock_timeout() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    let Join::Leader(_leader) = store.join("h/a") else {
        panic!("leader")
    };
    let Join::Waiter(rx) = store.join("h/a") else {
        panic!("waiter")
    };
    assert!(wait(rx, Duration::from_secs(5)).await.is_none());
}

#[test]
fn a_passed_key_is_passed_for_a_while_and_storing_it_ends_the_pass() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    let now = Instant::now();
    assert!(!store.passing("h/a", now));
    store.pass("h/a".into(), now);
    assert!(store.passing("h/a", now + Duration::from_secs(59)));
    assert!(!store.passing("h/a", now + PASS_FOR));
    put(&store, "h/a", b"now storable", None);
    assert!(!store.passing("h/a", now), "a stored answer ends the pass");
}

#[tokio::test]
async fn a_leader_that_served_a_stale_copy_hands_it_to_its_waiters() {
    let store = Store::new(&spec(1 << 20, 1 << 16));
    put(&store, "h/a", b"old", None);
    let old = store.get("h/a").expect("stored");
    let Join::Leader(leader) = store.join("h/a") else {
        panic!("leader")
    };
    let Join::Waiter(rx) = store.join("h/a") else {
        panic!("waiter")
    };
    let waiter = tokio::spawn(wait(rx, Duration::from_secs(5)));
    leader.served_stale(old);
    let (got, stale) = waiter.await.expect("task").expect("the stale copy");
    assert_eq!((got.chunks.concat(), stale), (b"old".to_vec(), true));
}
