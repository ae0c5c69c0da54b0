//! Failing over one request (DESIGN §4): which failures move a request to the next tier,
//! replay safety for requests that may already have been processed, and the answer when every
//! attempt failed.

mod support;

use std::time::{Duration, Instant};

use http::Method;
use support::{
    bounded, get, pattern, request, sha256_hex, split_echo, Bascule, FakeUpstream, ProxyConfig,
    Reply, HOST, TEST_LIMIT,
};

/// A proxy whose only route sends everything to `first`, then `second`.
async fn two_tiers(first: &FakeUpstream, second: &FakeUpstream, retry: &str) -> Bascule {
    ProxyConfig::new()
        .upstream_with("first", first, r#"response_timeout = "300ms""#)
        .upstream_with("second", second, r#"response_timeout = "300ms""#)
        .route_with(
            "site",
            &["*"],
            "/",
            r#"["first", "second"]"#,
            &format!("[routes.retry]\n{retry}"),
        )
        .start()
        .await
}

fn assert_served_by_second_tier(r: &Reply) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-bascule-upstream"), "second");
    assert_eq!(r.header("x-bascule-attempts"), "2");
    assert_eq!(r.text(), "ok from second");
}

#[tokio::test]
async fn a_refused_connection_fails_over_to_the_next_tier() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::refuse("first").await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        assert_served_by_second_tier(&get(proxy.addr, HOST, "/").await);
    })
    .await;
}

#[tokio::test]
async fn a_response_timeout_fails_over_to_the_next_tier() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::hang("first").await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let start = Instant::now();
        assert_served_by_second_tier(&get(proxy.addr, HOST, "/").await);
        assert_eq!(first.hits(), 1);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "failover after a 300ms response timeout took {took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_connect_timeout_fails_over_even_for_a_post_and_alone_gives_504() {
    bounded(TEST_LIMIT, async {
        let hole = FakeUpstream::blackhole("hole").await;
        let echo = FakeUpstream::echo("echo").await;
        let proxy = ProxyConfig::new()
            .upstream_with("hole", &hole, r#"connect_timeout = "300ms""#)
            .upstream("echo", &echo)
            .route("failover", &["a.example"], "/", r#"["hole", "echo"]"#)
            .route("alone", &["b.example"], "/", r#"["hole"]"#)
            .start()
            .await;

        // Nothing was sent: a POST may go to the next tier.
        let start = Instant::now();
        let r = request(proxy.addr, Method::POST, "a.example", "/", &[], "pay=1").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert_eq!(echo.last().expect("request seen").body, "pay=1");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "failover after a 300ms connect timeout took {took:?}"
        );

        let r = get(proxy.addr, "b.example", "/").await;
        assert_eq!(r.status, 504, "{}", r.text());
    })
    .await;
}

#[tokio::test]
async fn a_503_fails_over_to_the_next_tier() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::status("first", 503).await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        assert_served_by_second_tier(&get(proxy.addr, HOST, "/").await);
        assert_eq!(first.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_520_fails_over_to_the_next_tier() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::status("first", 520).await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        assert_served_by_second_tier(&get(proxy.addr, HOST, "/").await);
        assert_eq!(first.hits(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_post_answered_503_is_not_replayed_and_the_client_gets_that_503() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::status("first", 503).await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let r = request(proxy.addr, Method::POST, HOST, "/order", &[], "pay=1").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "first says 503");
        assert_eq!(r.header("x-bascule-attempts"), "1");
        assert_eq!(first.hits(), 1);
        assert_eq!(
            second.hits(),
            0,
            "a POST that was sent must not be replayed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_post_that_timed_out_is_not_replayed_and_the_client_gets_504() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::hang("first").await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let r = request(proxy.addr, Method::POST, HOST, "/order", &[], "pay=1").await;
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(first.hits(), 1);
        assert_eq!(
            second.hits(),
            0,
            "a POST that was sent must not be replayed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_post_whose_connection_the_upstream_drops_unanswered_is_not_replayed() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::drop_connection("first").await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let r = request(proxy.addr, Method::POST, HOST, "/order", &[], "pay=1").await;
        assert_eq!(r.status, 502, "{}", r.text());
        assert_eq!(first.hits(), 1);
        assert_eq!(
            second.hits(),
            0,
            "a POST that was sent must not be replayed"
        );
    })
    .await;
}

#[tokio::test]
async fn a_post_is_replayed_after_a_refused_connection_with_its_body_intact() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::refuse("first").await;
        let second = FakeUpstream::echo("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let body = pattern(10_000, 7);
        let r = request(proxy.addr, Method::POST, HOST, "/order", &[], body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert_eq!(second.hits(), 1);
        let seen = second.last().expect("request seen");
        assert_eq!(seen.method, Method::POST);
        assert_eq!(sha256_hex(&seen.body), sha256_hex(&body));
    })
    .await;
}

#[tokio::test]
async fn a_post_larger_than_buffer_body_is_replayed_after_a_refused_connection() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::refuse("first").await;
        let second = FakeUpstream::echo("second").await;
        let proxy = two_tiers(&first, &second, r#"buffer_body = "1KiB""#).await;
        // Streamed, not buffered; a refused connect proves none of it was sent.
        let body = pattern(200_000, 11);
        let r = request(proxy.addr, Method::POST, HOST, "/upload", &[], body.clone()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-bascule-attempts"), "2");
        let (_, echoed) = split_echo(&r.body);
        assert_eq!(sha256_hex(&echoed), sha256_hex(&body));
    })
    .await;
}

#[tokio::test]
async fn a_get_with_a_body_larger_than_buffer_body_is_not_replayed_after_a_503() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::status("first", 503).await;
        let second = FakeUpstream::ok("second").await;
        let proxy = two_tiers(&first, &second, r#"buffer_body = "1KiB""#).await;
        let body = pattern(100_000, 3);
        let r = request(proxy.addr, Method::GET, HOST, "/search", &[], body.clone()).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "first says 503");
        assert_eq!(second.hits(), 0, "an unbuffered body cannot be replayed");
        let seen = first.last().expect("request seen");
        assert_eq!(sha256_hex(&seen.body), sha256_hex(&body));
    })
    .await;
}

#[tokio::test]
async fn when_every_tier_refuses_the_client_gets_a_fast_502_naming_no_upstream() {
    bounded(TEST_LIMIT, async {
        let ups = [
            FakeUpstream::refuse("cdn1").await,
            FakeUpstream::refuse("cdn2").await,
            FakeUpstream::refuse("origin").await,
        ];
        let proxy = ProxyConfig::new()
            .upstream("cdn1", &ups[0])
            .upstream("cdn2", &ups[1])
            .upstream("origin", &ups[2])
            .route("site", &["*"], "/", r#"["cdn1", "cdn2", "origin"]"#)
            .start()
            .await;

        let start = Instant::now();
        let r = get(proxy.addr, HOST, "/").await;
        let took = start.elapsed();
        assert_eq!(r.status, 502);
        assert!(took < Duration::from_millis(500), "502 took {took:?}");
        assert_eq!(r.header("x-bascule-attempts"), "3");
        assert!(r.header("content-type").starts_with("text/plain"));
        let text = r.text();
        assert!(!text.is_empty() && text.len() < 200, "{text:?}");
        assert!(!text.contains("127.0.0.1"), "{text:?}");
        for u in &ups {
            assert!(!text.contains(&u.addr.port().to_string()), "{text:?}");
            assert!(!text.contains(&u.name), "{text:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn when_the_last_failure_is_a_timeout_the_client_gets_504() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::refuse("first").await;
        let second = FakeUpstream::hang("second").await;
        let proxy = two_tiers(&first, &second, "").await;
        let start = Instant::now();
        let r = get(proxy.addr, HOST, "/").await;
        assert_eq!(r.status, 504, "{}", r.text());
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert!(r.header("content-type").starts_with("text/plain"));
        assert!(!r.text().contains("127.0.0.1"), "{}", r.text());
        assert!(start.elapsed() < Duration::from_secs(3));
    })
    .await;
}

#[tokio::test]
async fn when_every_attempt_answers_a_retry_status_the_last_answer_is_passed_through() {
    bounded(TEST_LIMIT, async {
        let first = FakeUpstream::status("first", 503).await;
        let second = FakeUpstream::status("second", 503).await;
        let proxy = two_tiers(&first, &second, "").await;
        let r = get(proxy.addr, HOST, "/").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.text(), "second says 503");
        assert_eq!(r.header("x-upstream"), "second");
        assert_eq!(r.header("x-bascule-upstream"), "second");
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert_eq!((first.hits(), second.hits()), (1, 1));
    })
    .await;
}

#[tokio::test]
async fn a_balanced_tier_spreads_requests_over_its_members() {
    bounded(TEST_LIMIT, async {
        let a = FakeUpstream::ok("a").await;
        let b = FakeUpstream::ok("b").await;
        let proxy = ProxyConfig::new()
            .upstream("a", &a)
            .upstream("b", &b)
            .route("site", &["*"], "/", r#"[["a", "b"]]"#)
            .start()
            .await;
        for _ in 0..10 {
            let r = get(proxy.addr, HOST, "/").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-bascule-attempts"), "1");
        }
        assert_eq!(a.hits() + b.hits(), 10);
        assert!(
            a.hits() >= 3 && b.hits() >= 3,
            "unbalanced: a={} b={}",
            a.hits(),
            b.hits()
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_member_of_a_balanced_tier_fails_over_to_its_sibling() {
    bounded(TEST_LIMIT, async {
        let bad = FakeUpstream::refuse("bad").await;
        let good = FakeUpstream::ok("good").await;
        let backup = FakeUpstream::ok("backup").await;
        let proxy = ProxyConfig::new()
            .upstream("bad", &bad)
            .upstream("good", &good)
            .upstream("backup", &backup)
            .route("site", &["*"], "/", r#"[["bad", "good"], "backup"]"#)
            .start()
            .await;
        for _ in 0..6 {
            let r = get(proxy.addr, HOST, "/").await;
            assert_eq!(r.status, 200);
            assert_eq!(r.header("x-bascule-upstream"), "good");
        }
        assert_eq!(good.hits(), 6);
        assert_eq!(backup.hits(), 0, "the tier had a working member");
    })
    .await;
}

#[tokio::test]
async fn the_attempt_budget_caps_how_many_upstreams_are_tried() {
    bounded(TEST_LIMIT, async {
        let r1 = FakeUpstream::refuse("r1").await;
        let r2 = FakeUpstream::refuse("r2").await;
        let ok = FakeUpstream::ok("ok").await;
        let proxy = ProxyConfig::new()
            .upstream("r1", &r1)
            .upstream("r2", &r2)
            .upstream("ok", &ok)
            .route_with(
                "site",
                &["*"],
                "/",
                r#"["r1", "r2", "ok"]"#,
                "[routes.retry]\nattempts = 2",
            )
            .start()
            .await;
        let r = get(proxy.addr, HOST, "/").await;
        assert_eq!(r.status, 502);
        assert_eq!(r.header("x-bascule-attempts"), "2");
        assert_eq!(ok.hits(), 0, "a third attempt was made");
    })
    .await;
}
