//! Admission (DESIGN §7.3), black-box: an origin with `max_in_flight` never sees more than
//! that many requests at once; the excess waits `queue_timeout` in order, then gets `503` with
//! `Retry-After` (outcome `overloaded`) when no other tier and no stale copy can answer; a
//! queued request whose slot frees in time is served; and an overloaded tier fails over.

mod support;

use std::time::{Duration, Instant};

use support::exposition::{self, Format};
use support::{admin_get, bounded, get, Bascule, FakeUpstream, ProxyConfig};

const LIMIT: Duration = Duration::from_secs(40);

async fn scrape(proxy: &Bascule) -> exposition::Samples {
    let text = admin_get(proxy.admin, "/metrics").await.text();
    exposition::parse(&text, Format::Text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn the_origin_never_sees_more_than_max_in_flight_and_the_excess_gets_503_after_queue_timeout()
{
    bounded(LIMIT, async {
        let origin = FakeUpstream::slow("origin", Duration::from_millis(1500)).await;
        let proxy = ProxyConfig::new()
            .admin("")
            .upstream_with(
                "origin",
                &origin,
                "max_in_flight = 2\nqueue_timeout = \"300ms\"",
            )
            .route("www", &["*"], "/", r#"["origin"]"#)
            .start()
            .await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let addr = proxy.addr;
                tokio::spawn(async move {
                    let r = get(addr, "www.test", &format!("/p{i}")).await;
                    (
                        r.status.as_u16(),
                        r.header("retry-after").to_owned(),
                        started.elapsed(),
                    )
                })
            })
            .collect();
        // While they are in flight: two at the origin, four queued.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let m = scrape(&proxy).await;
        assert_eq!(
            m.get("bascule_upstream_queue_depth{upstream=\"origin\"}")
                .copied(),
            Some(4.0)
        );
        let mut ok = 0;
        for t in tasks {
            let (status, retry_after, took) = t.await.expect("task");
            match status {
                200 => ok += 1,
                503 => {
                    assert_eq!(retry_after, "1");
                    assert!(took >= Duration::from_millis(300), "{took:?}");
                    assert!(
                        took < Duration::from_millis(1400),
                        "{took:?}: not after the slow ones"
                    );
                }
                other => panic!("status {other}"),
            }
        }
        assert_eq!(ok, 2);
        assert_eq!(
            origin.hits(),
            2,
            "the origin saw max_in_flight requests, no more"
        );
        let m = scrape(&proxy).await;
        assert_eq!(
            m.get("bascule_upstream_attempts_total{outcome=\"overloaded\",upstream=\"origin\"}")
                .copied(),
            Some(4.0)
        );
    })
    .await;
}

#[tokio::test]
async fn a_queued_request_is_served_when_a_slot_frees_in_time_and_an_overloaded_tier_fails_over() {
    bounded(LIMIT, async {
        let origin = FakeUpstream::slow("origin", Duration::from_millis(300)).await;
        let backup = FakeUpstream::ok("backup").await;
        let proxy = ProxyConfig::new()
            .upstream_with(
                "origin",
                &origin,
                "max_in_flight = 1\nqueue_timeout = \"2s\"",
            )
            .upstream_with(
                "tight",
                &origin,
                "max_in_flight = 1\nqueue_timeout = \"50ms\"",
            )
            .upstream("backup", &backup)
            .route("queued", &["queued.test"], "/", r#"["origin"]"#)
            .route("spill", &["spill.test"], "/", r#"["tight", "backup"]"#)
            .start()
            .await;
        let (a, b) = tokio::join!(
            get(proxy.addr, "queued.test", "/a"),
            get(proxy.addr, "queued.test", "/b")
        );
        assert_eq!(
            (a.status.as_u16(), b.status.as_u16()),
            (200, 200),
            "the second waited"
        );
        let (c, d) = tokio::join!(
            get(proxy.addr, "spill.test", "/c"),
            get(proxy.addr, "spill.test", "/d")
        );
        let mut texts = [c.text(), d.text()];
        texts.sort();
        assert_eq!(texts, ["ok from backup", "slow from origin"]);
    })
    .await;
}
