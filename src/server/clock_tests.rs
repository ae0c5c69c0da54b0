//! The connection clock's deadlines, read straight from its state: which timer applies when,
//! and what wakes the connection task. Deadlines are checked as numbers (the clock's own
//! milliseconds) on a clock with second-long limits; expiry on one with 20 ms limits after a
//! 40 ms sleep, since the clock reads the system's monotonic time, not tokio's.

use super::*;

const HEADER: u64 = 1_000;
const IDLE: u64 = 5_000;
const SEND: u64 = 3_000;
/// The short limits of [`quick`], and how long its tests wait for them to pass.
const QUICK: u64 = 20;
const PAST_QUICK: Duration = Duration::from_millis(40);

fn clock_with(header: u64, idle: u64, send: u64) -> Arc<Clock> {
    Arc::new(Clock::new(&Limits {
        max_header_bytes: 16 << 10,
        header_timeout: Duration::from_millis(header),
        idle_timeout: Duration::from_millis(idle),
        shutdown_grace: Duration::from_secs(1),
        max_connections: 10,
        body_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_millis(send),
        max_concurrent_streams: 10,
        max_in_flight_per_connection: 10,
        body_buffer_per_connection: 1 << 20,
    }))
}

fn clock() -> Arc<Clock> {
    clock_with(HEADER, IDLE, SEND)
}

/// Every limit 20 ms.
fn quick() -> Arc<Clock> {
    clock_with(QUICK, QUICK, QUICK)
}

/// A request begins on `c` (it ends when the guard is dropped).
fn request(c: &Arc<Clock>) -> ActiveRequest {
    ActiveRequest::begin(Arc::clone(c))
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Whether the connection task was woken to re-arm its timer.
async fn woken(c: &Clock) -> bool {
    tokio::time::timeout(Duration::from_millis(20), c.rearm.notified())
        .await
        .is_ok()
}

#[test]
fn a_new_connection_must_complete_its_first_head_within_header_timeout() {
    let c = clock();
    let since = load(&c.idle_since);
    assert_eq!(c.deadline(), Some((since + HEADER, Expiry::Head)));
    assert_eq!(c.expired(), None);
    let q = quick();
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.expired(), Some(Expiry::Head));
}

#[test]
fn after_a_response_the_idle_timeout_runs_until_the_next_heads_first_byte() {
    let c = clock();
    drop(request(&c));
    let idle = load(&c.idle_since);
    assert_eq!(c.deadline(), Some((idle + IDLE, Expiry::Idle)));
    c.on_read();
    let head = load(&c.head_since);
    assert_ne!(head, 0);
    assert_eq!(c.deadline(), Some((head + HEADER, Expiry::Head)));
    let q = quick();
    drop(request(&q));
    q.on_read();
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.expired(), Some(Expiry::Head));
}

#[test]
fn a_connection_idle_past_idle_timeout_expires_as_idle() {
    let q = quick();
    drop(request(&q));
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.expired(), Some(Expiry::Idle));
}

#[test]
fn a_request_in_flight_is_never_cut_by_the_head_or_idle_timer() {
    let q = quick();
    let active = request(&q);
    // Bytes of the next (pipelined) request do not start a head timer either.
    q.on_read();
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.deadline(), None);
    assert_eq!(q.expired(), None);
    drop(active);
    assert!(matches!(q.deadline(), Some((_, Expiry::Idle))));
}

#[test]
fn a_blocked_write_arms_send_timeout_even_with_a_request_in_flight() {
    let c = clock();
    let _active = request(&c);
    c.on_write(true);
    let blocked = load(&c.write_blocked);
    assert_eq!(c.deadline(), Some((blocked + SEND, Expiry::Send)));
    std::thread::sleep(Duration::from_millis(5));
    c.on_write(true);
    assert_eq!(
        load(&c.write_blocked),
        blocked,
        "timed from the first blocked write"
    );
    c.on_write(false);
    assert_eq!(c.deadline(), None, "the client took bytes again");
    let q = quick();
    let _active = request(&q);
    q.on_write(true);
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.expired(), Some(Expiry::Send));
}

#[test]
fn progress_on_one_waiting_body_restarts_send_timeout_for_the_others() {
    let c = clock();
    let _active = request(&c);
    c.body_waits();
    c.body_waits();
    let before = load(&c.waiting_since);
    std::thread::sleep(Duration::from_millis(5));
    c.body_progressed();
    let after = load(&c.waiting_since);
    assert!(after > before, "{before} → {after}");
    assert_eq!(c.deadline(), Some((after + SEND, Expiry::Send)));
    c.body_progressed();
    assert_eq!(c.deadline(), None, "no body waits any more");
}

#[test]
fn the_earlier_of_the_head_and_send_deadlines_applies() {
    // header_timeout (1 s) falls before send_timeout (3 s), and the other way round.
    let c = clock();
    c.on_write(true);
    assert!(matches!(c.deadline(), Some((_, Expiry::Head))));
    let c = clock_with(SEND, IDLE, HEADER);
    c.on_write(true);
    assert!(matches!(c.deadline(), Some((_, Expiry::Send))));
}

#[test]
fn a_closing_connection_is_cut_only_by_send_timeout() {
    let q = quick();
    q.close();
    std::thread::sleep(PAST_QUICK);
    assert_eq!(q.deadline(), None);
    assert_eq!(q.expired(), None);
    q.on_write(true);
    assert!(matches!(q.deadline(), Some((_, Expiry::Send))));
}

#[test]
fn with_a_request_in_flight_the_task_checks_again_within_the_shortest_timer() {
    let c = clock();
    let _active = request(&c);
    let now = now_ms();
    c.arm();
    let armed = load(&c.armed);
    assert!(
        armed >= now + HEADER && armed <= now_ms() + HEADER,
        "{armed} vs {now}"
    );
}

#[tokio::test]
async fn only_a_deadline_earlier_than_the_armed_one_wakes_the_connection_task() {
    let c = clock();
    // Nothing armed yet: a head's first byte is earlier than "never".
    c.on_read();
    assert!(woken(&c).await);
    // Armed for the head deadline (1 s): the idle deadline after a response (5 s) is later.
    c.arm();
    drop(request(&c));
    assert!(!woken(&c).await);
    // A blocked write while armed far ahead is earlier: wake.
    c.armed.store(u64::MAX - 1, Ordering::Relaxed);
    c.on_write(true);
    assert!(woken(&c).await);
}
