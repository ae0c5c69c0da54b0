use super::*;

/// `s` seconds.
pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_first_usable_tier_is_active_from_the_start() {
    let mut s = Steer::default();
    assert_eq!(
        steer(
            &mut s,
            &[true, true, true],
            None,
            Failback::after(secs(10)),
            secs(0)
        ),
        None
    );
    assert_eq!(s.active, Some(0));
    assert_eq!(
        steer(
            &mut s,
            &[false, true, true],
            None,
            Failback::after(secs(10)),
            secs(1)
        ),
        None
    );
    assert_eq!(s.active, Some(1), "failing over is immediate");
    assert_eq!(
        steer(
            &mut s,
            &[false, false, true],
            None,
            Failback::after(secs(10)),
            secs(2)
        ),
        None
    );
    assert_eq!(s.active, Some(2));
    assert_eq!(
        steer(
            &mut s,
            &[false, false, false],
            None,
            Failback::after(secs(10)),
            secs(3)
        ),
        None
    );
    assert_eq!(s.active, None);
}

#[test]
fn a_recovered_tier_waits_failback_delay_of_continuous_usability() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(10)),
        secs(0),
    );
    steer(
        &mut s,
        &[false, true],
        None,
        Failback::after(secs(10)),
        secs(1),
    );
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            None,
            Failback::after(secs(10)),
            secs(5)
        ),
        Some(secs(15))
    );
    assert_eq!(s.active, Some(1), "held back");
    // It flaps at 9 s: the delay starts over when it is usable again.
    steer(
        &mut s,
        &[false, true],
        None,
        Failback::after(secs(10)),
        secs(9),
    );
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            None,
            Failback::after(secs(10)),
            secs(12)
        ),
        Some(secs(22))
    );
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            None,
            Failback::after(secs(10)),
            secs(21)
        ),
        Some(secs(22))
    );
    assert_eq!(s.active, Some(1));
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            None,
            Failback::after(secs(10)),
            secs(22)
        ),
        None
    );
    assert_eq!(s.active, Some(0));
}

#[test]
fn after_a_total_outage_the_first_tier_back_is_used_at_once() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true, true],
        None,
        Failback::after(secs(10)),
        secs(0),
    );
    steer(
        &mut s,
        &[false, false, false],
        None,
        Failback::after(secs(10)),
        secs(1),
    );
    steer(
        &mut s,
        &[false, false, true],
        None,
        Failback::after(secs(10)),
        secs(2),
    );
    assert_eq!(s.active, Some(2));
    steer(
        &mut s,
        &[true, false, true],
        None,
        Failback::after(secs(10)),
        secs(3),
    );
    assert_eq!(s.active, Some(2), "tier 0 must wait its failback delay");
}

#[test]
fn a_pin_holds_while_its_tier_is_usable_and_is_ignored_otherwise() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true, true],
        Some(1),
        Failback::after(secs(10)),
        secs(0),
    );
    assert_eq!(s.active, Some(1));
    steer(
        &mut s,
        &[true, false, true],
        Some(1),
        Failback::after(secs(10)),
        secs(1),
    );
    assert_eq!(
        s.active,
        Some(0),
        "pinned tier unusable: selection as if unpinned"
    );
    steer(
        &mut s,
        &[true, true, true],
        Some(1),
        Failback::after(secs(10)),
        secs(2),
    );
    assert_eq!(s.active, Some(1));
}

#[test]
fn a_tier_that_never_failed_is_taken_back_at_once_after_an_unpin() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        Some(1),
        Failback::after(secs(10)),
        secs(0),
    );
    assert_eq!(s.active, Some(1));
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(10)),
        secs(1),
    );
    assert_eq!(s.active, Some(0));
}

#[test]
fn the_event_of_a_failover_or_an_undelayed_change_waited_nothing() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    steer(
        &mut s,
        &[false, true],
        None,
        Failback::after(secs(2)),
        secs(1),
    );
    assert_eq!(s.waited, None);
    steer(
        &mut s,
        &[true, true],
        Some(1),
        Failback::after(secs(2)),
        secs(2),
    );
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(10),
    );
    assert_eq!(s.active, Some(0));
    assert_eq!(s.waited, Some(secs(2)), "recovered at 2, waited its delay");
}

#[test]
fn a_pinned_route_is_not_woken_for_its_held_back_tiers() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    steer(
        &mut s,
        &[false, true],
        None,
        Failback::after(secs(2)),
        secs(1),
    );
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            Some(1),
            Failback::after(secs(2)),
            secs(2)
        ),
        None
    );
    assert_eq!(
        steer(
            &mut s,
            &[true, true],
            Some(1),
            Failback::after(secs(2)),
            secs(9)
        ),
        None
    );
}
