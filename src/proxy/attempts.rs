//! The walk over a request's attempt plan (DESIGN §7.4) as a small state machine: at most two
//! attempts in flight; an attempt still without a response head after its hedge delay gets a
//! hedge (the next planned attempt, started while the first goes on); the first answer wins and
//! the other attempt is dropped (its connection closed, or its h2 stream reset); a failure
//! starts the next planned attempt when the forwarder's verdict allows it. Retries after a
//! request was sent, and hedges, are paid from the route's retry budget; retries of failures
//! that prove nothing was sent are free.
//!
//! The machine is generic over the attempt future, so that its timing is tested with fake
//! attempts over paused time; the forwarder (`forward`) supplies the real ones and judges how
//! each ended.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How one finished attempt ended, as the forwarder judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A response head to pass on: the request is answered.
    Answer,
    /// A failure, and whether the next planned attempt may follow it.
    Failed(Next),
}

/// Whether the next planned attempt may follow a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// It may not (replay safety, a failing origin, the last planned attempt).
    Stop,
    /// It may, for free: the failure proves nothing was sent.
    Free,
    /// It may if the retry budget allows.
    Paid,
}

/// What the walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walked {
    /// The plan index of the attempt whose answer won, if any.
    pub answered: Option<usize>,
    /// Attempts started, hedges included.
    pub started: usize,
    /// Hedges among them.
    pub hedges: usize,
    /// The attempt dropped because another answered first, and how long it had run.
    pub cancelled: Option<(usize, Duration)>,
    /// Retries or hedges the budget refused.
    pub refused: usize,
}

/// One attempt in flight: its plan index, when it started (read from the clock only when it
/// may be hedged: only then can it be cancelled), its hedge deadline, and whether it was
/// hedged.
#[derive(Debug, Clone, Copy)]
struct Flight {
    index: usize,
    since: Option<Instant>,
    hedge_at: Option<Instant>,
    hedged: bool,
}

/// What woke the walk.
enum Woke<T> {
    /// Attempt in slot `0` or `1` finished.
    Done(usize, T),
    /// The hedge delay of the one attempt in flight passed.
    Hedge,
}

/// Walks `planned` attempts. `start(state, i, slot)` puts attempt `i` into `slot` (built in
/// place: an attempt future is large) and returns its hedge delay (None: never hedged), or
/// returns None when it cannot be made (a streamed body is gone); `judge(state, i, output)`
/// says how a finished attempt ended; `spend()` asks the retry budget for one retry or hedge.
pub(super) async fn walk<S, F>(
    state: &mut S,
    planned: usize,
    mut start: impl FnMut(&mut S, usize, Pin<&mut Option<F>>) -> Option<Option<Duration>>,
    mut judge: impl FnMut(&mut S, usize, F::Output) -> Verdict,
    mut spend: impl FnMut() -> bool,
) -> Walked
where
    F: Future,
{
    let mut walked = Walked::default();
    let mut slots = [pin!(None::<F>), pin!(None::<F>)];
    let mut flights: [Option<Flight>; 2] = [None, None];
    let mut timer = pin!(None::<Sleep>);
    // The next planned attempt, and whether any more may start.
    let mut next = 0;
    let mut open = true;
    let mut launch = |state: &mut S,
                      slots: &mut [std::pin::Pin<&mut Option<F>>; 2],
                      flights: &mut [Option<Flight>; 2],
                      next: &mut usize,
                      walked: &mut Walked|
     -> bool {
        if *next >= planned {
            return false;
        }
        let Some(k) = flights.iter().position(Option::is_none) else {
            return false;
        };
        let Some(hedge_after) = start(state, *next, slots[k].as_mut()) else {
            return false;
        };
        let since = hedge_after.map(|_| Instant::now());
        flights[k] = Some(Flight {
            index: *next,
            since,
            hedge_at: since.zip(hedge_after).map(|(t, d)| t + d),
            hedged: false,
        });
        *next += 1;
        walked.started += 1;
        true
    };
    if !launch(state, &mut slots, &mut flights, &mut next, &mut walked) {
        return walked;
    }
    // While the attempt out may not be hedged (one tier left, a POST, `off`), attempts run one
    // after another, each awaited in place: that path costs what a plain loop does.
    while let Some(done) = flights[0].filter(|f| f.hedge_at.is_none()) {
        let Some(attempt) = slots[0].as_mut().as_pin_mut() else {
            break;
        };
        let out = attempt.await;
        slots[0].set(None);
        flights[0] = None;
        let go_on = match judge(state, done.index, out) {
            Verdict::Answer => {
                walked.answered = Some(done.index);
                false
            }
            Verdict::Failed(Next::Stop) => false,
            Verdict::Failed(Next::Free) => true,
            Verdict::Failed(Next::Paid) if next >= planned => false,
            Verdict::Failed(Next::Paid) => {
                let paid = spend();
                walked.refused += usize::from(!paid);
                paid
            }
        };
        if !go_on || !launch(state, &mut slots, &mut flights, &mut next, &mut walked) {
            return walked;
        }
    }
    loop {
        // Arm the hedge timer when exactly one attempt is in flight and it may be hedged.
        let alone = match flights {
            [Some(f), None] | [None, Some(f)] => Some(f),
            _ => None,
        };
        let due = alone
            .filter(|f| open && !f.hedged && next < planned)
            .and_then(|f| f.hedge_at);
        match (due, timer.as_mut().as_pin_mut()) {
            (Some(at), Some(t)) => {
                if t.deadline() != at {
                    t.reset(at);
                }
            }
            (Some(at), None) => timer.set(Some(tokio::time::sleep_until(at))),
            (None, Some(_)) => timer.set(None),
            (None, None) => {}
        }
        let woke = std::future::poll_fn(|cx| {
            for (k, slot) in slots.iter_mut().enumerate() {
                if let Some(f) = slot.as_mut().as_pin_mut() {
                    if let Poll::Ready(out) = f.poll(cx) {
                        return Poll::Ready(Woke::Done(k, out));
                    }
                }
            }
            if let Some(t) = timer.as_mut().as_pin_mut() {
                if t.poll(cx).is_ready() {
                    return Poll::Ready(Woke::Hedge);
                }
            }
            Poll::Pending
        })
        .await;
        match woke {
            Woke::Hedge => {
                timer.set(None);
                if let Some(f) = flights.iter_mut().flatten().next() {
                    f.hedged = true;
                }
                if spend() {
                    if launch(state, &mut slots, &mut flights, &mut next, &mut walked) {
                        walked.hedges += 1;
                    }
                } else {
                    walked.refused += 1;
                }
            }
            Woke::Done(k, out) => {
                slots[k].set(None);
                let Some(done) = flights[k].take() else {
                    continue;
                };
                match judge(state, done.index, out) {
                    Verdict::Answer => {
                        walked.answered = Some(done.index);
                        let other = 1 - k;
                        if let Some(loser) = flights[other].take() {
                            // Dropped: its connection is closed, or its h2 stream reset.
                            slots[other].set(None);
                            let ran = loser.since.map_or(Duration::ZERO, |t| t.elapsed());
                            walked.cancelled = Some((loser.index, ran));
                        }
                        return walked;
                    }
                    Verdict::Failed(Next::Stop) => open = false,
                    Verdict::Failed(Next::Free) => {
                        if open {
                            launch(state, &mut slots, &mut flights, &mut next, &mut walked);
                        }
                    }
                    Verdict::Failed(Next::Paid) => {
                        if open && next < planned {
                            if spend() {
                                launch(state, &mut slots, &mut flights, &mut next, &mut walked);
                            } else {
                                walked.refused += 1;
                                open = false;
                            }
                        }
                    }
                }
                if flights.iter().all(Option::is_none) {
                    return walked;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "attempts_tests.rs"]
mod tests;
