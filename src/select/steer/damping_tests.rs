//! Damped failback (DESIGN §7.2): each relapse within five minutes of a failback doubles the
//! next delay up to 16x, five quiet minutes reset it, and only the active tier's losses count.

use super::tests::secs;
use super::*;

/// Loses tier 0 at `lost`, has it back at `back`, and steers until it is failed back to;
/// returns when that was and the delay it waited.
fn relapse(s: &mut Steer, lost: u64, back: u64) -> (u64, Option<Duration>) {
    steer(
        s,
        &[false, true],
        None,
        Failback::after(secs(2)),
        secs(lost),
    );
    assert_eq!(s.active, Some(1), "lost at {lost}");
    let mut wake = steer(s, &[true, true], None, Failback::after(secs(2)), secs(back));
    for _ in 0..4 {
        let Some(at) = wake else { break };
        wake = steer(s, &[true, true], None, Failback::after(secs(2)), at);
        if s.active == Some(0) {
            return (at.as_secs(), s.waited);
        }
    }
    panic!("tier 0 was never failed back to: {s:?}");
}

#[test]
fn each_relapse_within_five_minutes_of_a_failback_doubles_the_next_delay_up_to_16x() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    let mut t = 10;
    let mut waited = Vec::new();
    for _ in 0..6 {
        let (at, w) = relapse(&mut s, t, t + 2);
        waited.push(w.map(|d| d.as_secs()));
        t = at + 1; // lost again a second after each failback
    }
    assert_eq!(
        waited,
        [Some(2), Some(4), Some(8), Some(16), Some(32), Some(32)]
    );
    assert_eq!(s.damping[0], MAX_DAMPING);
}

#[test]
fn five_minutes_without_a_loss_resets_the_delay_and_is_woken_for() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    let (at, _) = relapse(&mut s, 10, 12);
    let (at, _) = relapse(&mut s, at + 1, at + 3);
    assert_eq!(s.damping[0], 2, "lost once after a failback");
    assert_eq!(s.next_delay(secs(2)), secs(4));
    // Lost again, and out for good this time: the memory of that loss runs out.
    let lost = at + 1;
    let wake = steer(
        &mut s,
        &[false, true],
        None,
        Failback::after(secs(2)),
        secs(lost),
    );
    assert_eq!(wake, Some(secs(lost) + DAMPING_MEMORY));
    assert_eq!(s.damping[0], 4);
    assert_eq!(s.next_delay(secs(2)), secs(8));
    assert_eq!(
        steer(
            &mut s,
            &[false, true],
            None,
            Failback::after(secs(2)),
            secs(lost) + DAMPING_MEMORY
        ),
        None
    );
    assert_eq!(s.damping[0], 1, "reset");
    assert_eq!(s.next_delay(secs(2)), secs(2));
    let (_, w) = relapse(&mut s, lost + 400, lost + 401);
    assert_eq!(w, Some(secs(2)));
}

#[test]
fn a_loss_long_after_the_failback_does_not_double() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    let (at, w) = relapse(&mut s, 10, 12);
    assert_eq!(w, Some(secs(2)));
    let (_, w) = relapse(&mut s, at + 301, at + 302);
    assert_eq!(
        w,
        Some(secs(2)),
        "five minutes in use: a new outage, not a relapse"
    );
}

#[test]
fn a_tier_lost_while_not_active_is_not_damped() {
    let mut s = Steer::default();
    steer(
        &mut s,
        &[true, true, true],
        None,
        Failback::after(secs(2)),
        secs(0),
    );
    // Tier 1 comes and goes while tier 0 serves: no failback to it, no relapse.
    for t in 1..10 {
        steer(
            &mut s,
            &[true, t % 2 == 0, true],
            None,
            Failback::after(secs(2)),
            secs(t),
        );
    }
    assert_eq!(s.damping, vec![1, 1, 1]);
}
