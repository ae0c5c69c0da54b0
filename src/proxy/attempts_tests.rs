//! The walk's timing over paused time, with fake attempts: each planned attempt takes a fixed
//! time and then ends as the table says.

use std::cell::Cell;
use std::time::Duration;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// A fake attempt's fate: how long it takes, and how it ends.
#[derive(Clone, Copy)]
struct Fake {
    takes: Duration,
    ends: Verdict,
}

fn answers(ms: u64) -> Fake {
    Fake {
        takes: MS * ms as u32,
        ends: Verdict::Answer,
    }
}

fn fails(ms: u64, next: Next) -> Fake {
    Fake {
        takes: MS * ms as u32,
        ends: Verdict::Failed(next),
    }
}

/// What a run saw: when each attempt started and finished (ms after the walk began).
#[derive(Default)]
struct Seen {
    started: Vec<(usize, u64)>,
    finished: Vec<(usize, u64)>,
}

/// Walks `plan` with hedge delay `hedge` for every attempt and a budget of `tokens`.
async fn run(plan: &[Fake], hedge: Option<Duration>, tokens: usize) -> (Walked, Seen, usize) {
    let begin = Instant::now();
    let at = move || (Instant::now() - begin).as_millis() as u64;
    let mut seen = Seen::default();
    let left = Cell::new(tokens);
    let walked = walk(
        &mut seen,
        plan.len(),
        |seen, i, mut slot| {
            seen.started.push((i, at()));
            let fake = plan[i];
            slot.set(Some(async move {
                tokio::time::sleep(fake.takes).await;
                fake.ends
            }));
            Some(hedge)
        },
        |seen, i, ends| {
            seen.finished.push((i, at()));
            ends
        },
        || match left.get() {
            0 => false,
            n => {
                left.set(n - 1);
                true
            }
        },
    )
    .await;
    (walked, seen, left.get())
}

#[tokio::test(start_paused = true)]
async fn no_hedge_is_sent_before_the_delay() {
    let (w, seen, tokens) = run(&[answers(99), answers(1)], Some(MS * 100), 5).await;
    assert_eq!(w.answered, Some(0));
    assert_eq!((w.started, w.hedges, w.cancelled), (1, 0, None));
    assert_eq!(seen.started, vec![(0, 0)]);
    assert_eq!(tokens, 5, "nothing spent");
}

#[tokio::test(start_paused = true)]
async fn one_hedge_is_sent_once_the_delay_passed() {
    let (w, seen, tokens) = run(&[answers(500), answers(500), answers(1)], Some(MS * 100), 5).await;
    assert_eq!(seen.started, vec![(0, 0), (1, 100)], "one hedge, at 100 ms");
    assert_eq!((w.started, w.hedges), (2, 1));
    assert_eq!(
        w.answered,
        Some(0),
        "the first attempt answered first (500 < 600 ms)"
    );
    assert_eq!(w.cancelled.map(|(i, _)| i), Some(1));
    assert_eq!(tokens, 4, "the hedge was paid");
}

#[tokio::test(start_paused = true)]
async fn the_first_response_head_wins_and_the_loser_is_cancelled() {
    // A blackholed first attempt: the hedge answers after 100 + 5 ms.
    let (w, seen, _) = run(&[answers(15_000), answers(5)], Some(MS * 100), 5).await;
    assert_eq!(w.answered, Some(1));
    assert_eq!(
        seen.finished,
        vec![(1, 105)],
        "the blackholed attempt never finished"
    );
    let (loser, ran) = w.cancelled.expect("a loser");
    assert_eq!(
        (loser, ran),
        (0, MS * 105),
        "dropped when the hedge answered"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_hedge_delay_the_walk_is_todays() {
    let plan = [fails(30, Next::Paid), fails(10, Next::Free), answers(10)];
    let (w, seen, tokens) = run(&plan, None, 5).await;
    assert_eq!(seen.started, vec![(0, 0), (1, 30), (2, 40)]);
    assert_eq!((w.answered, w.hedges, w.cancelled), (Some(2), 0, None));
    assert_eq!(tokens, 4, "only the retry after a sent request was paid");
}

#[tokio::test(start_paused = true)]
async fn a_failed_hedge_falls_through_to_the_rest_of_the_plan() {
    let plan = [answers(1_000), fails(5, Next::Free), answers(10)];
    let (w, seen, _) = run(&plan, Some(MS * 100), 5).await;
    assert_eq!(seen.started, vec![(0, 0), (1, 100), (2, 105)]);
    assert_eq!(w.answered, Some(2));
    assert_eq!(w.cancelled.map(|(i, _)| i), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_failing_after_the_hedge_leaves_the_hedge_running() {
    let plan = [fails(150, Next::Stop), answers(200)];
    let (w, _, _) = run(&plan, Some(MS * 100), 5).await;
    assert_eq!(w.answered, Some(1), "the hedge still answers");
    assert_eq!(w.cancelled, None);
}

#[tokio::test(start_paused = true)]
async fn the_budget_refuses_hedges_and_paid_retries_but_not_free_ones() {
    // No tokens: no hedge, and the paid retry after the first failure is refused.
    let (w, seen, _) = run(&[fails(300, Next::Paid), answers(1)], Some(MS * 100), 0).await;
    assert_eq!(seen.started, vec![(0, 0)]);
    assert_eq!(
        (w.answered, w.refused),
        (None, 2),
        "the hedge, then the retry"
    );
    // A failure that proves nothing was sent is retried whatever the budget.
    let (w, seen, _) = run(&[fails(3, Next::Free), answers(1)], Some(MS * 100), 0).await;
    assert_eq!(seen.started, vec![(0, 0), (1, 3)]);
    assert_eq!((w.answered, w.refused), (Some(1), 0));
}

#[tokio::test(start_paused = true)]
async fn at_most_two_attempts_are_ever_in_flight() {
    let plan = [
        answers(10_000),
        answers(10_000),
        answers(10_000),
        answers(1),
    ];
    let (w, seen, _) = run(&plan, Some(MS * 100), 5).await;
    assert_eq!(
        seen.started,
        vec![(0, 0), (1, 100)],
        "no third while two are out"
    );
    assert_eq!(w.answered, Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_stop_verdict_ends_the_walk_when_nothing_else_is_in_flight() {
    let (w, seen, _) = run(&[fails(20, Next::Stop), answers(1)], None, 5).await;
    assert_eq!(seen.started, vec![(0, 0)]);
    assert_eq!((w.answered, w.started), (None, 1));
}

#[tokio::test(start_paused = true)]
async fn without_a_hedge_delay_a_paid_retry_still_asks_the_budget() {
    let (w, seen, _) = run(&[fails(30, Next::Paid), answers(1)], None, 0).await;
    assert_eq!(seen.started, vec![(0, 0)]);
    assert_eq!((w.answered, w.refused), (None, 1));
    let (w, seen, _) = run(&[fails(30, Next::Free), answers(1)], None, 0).await;
    assert_eq!(seen.started, vec![(0, 0), (1, 30)]);
    assert_eq!((w.answered, w.refused), (Some(1), 0));
}
