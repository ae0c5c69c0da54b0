//! The process's heap (glibc malloc): tuned at start so that hot-path buffers are not handed
//! back to the kernel and faulted in again on every request, with the number of arenas
//! bounded; and a trimmer that gives memory back once a burst of connections is over.
//!
//! Why both: with `M_TRIM_THRESHOLD` raised, glibc returns memory only from the top of each
//! heap, and a burst leaves its freed connection buffers scattered through the heaps, so the
//! resident size stayed at the burst's peak (and each arena of a new thread kept its own). A
//! `malloc_trim(0)` gives back every free page inside the heaps too; it runs on a blocking
//! thread, at most every [`MIN_GAP`], when the open client connections have fallen to half of
//! their peak since the last trim, and once more [`LATE`] after such a trim, when the idle
//! upstream connections that the burst left in the pools have expired.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Allocations at least this large get their own mapping (and are unmapped when freed).
const MMAP_THRESHOLD: i32 = 1 << 20;
/// Free memory at the top of a heap beyond this is returned to the kernel at once.
const TRIM_THRESHOLD: i32 = 8 << 20;
/// How often the trimmer looks at the open connections.
const TICK: Duration = Duration::from_secs(1);
/// The least time between two trims.
pub const MIN_GAP: Duration = Duration::from_secs(5);
/// A peak below this many connections is not a burst worth trimming after.
pub const MIN_PEAK: usize = 64;
/// After a trim, the next one comes this late at the latest: an idle pooled upstream
/// connection is closed between one and two pool idle timeouts after its last use.
pub const LATE: Duration = Duration::from_secs(2 * crate::client::POOL_IDLE_TIMEOUT.as_secs() + 5);

/// Fixes glibc's mmap and trim thresholds and bounds its arenas to `arenas`; call before
/// any thread starts. Does nothing with another allocator.
///
/// With glibc's dynamic thresholds, freed 64 KiB-class response buffers were unmapped or
/// trimmed and every request faulted fresh pages in (benches/README.md §1). Each thread that
/// meets a locked arena otherwise gets a new one, up to 8 per core, each holding on to what
/// its threads freed.
pub fn tune(arenas: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(
            libc::M_ARENA_MAX,
            i32::try_from(arenas.max(1)).unwrap_or(i32::MAX),
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// Gives every free page of every arena back to the kernel (`malloc_trim(0)`); returns
/// whether any memory was released. Blocks while it walks the heaps: call it on a blocking
/// thread.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the arenas' locks itself and only releases free pages.
    unsafe {
        libc::malloc_trim(0) != 0
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// The resident set size of this process in bytes (`/proc/self/statm`), 0 if unknown.
pub fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// When to trim: the open connections have fallen to half of their peak since the last trim
/// (a peak of at least [`MIN_PEAK`]) and the last trim is at least [`MIN_GAP`] ago; or
/// [`LATE`] has passed since a trim after which nothing was trimmed.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    peak: usize,
    last: Option<Instant>,
    /// When the late trim after the last one is due.
    late: Option<Instant>,
}

/// Why the heap is trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// The open connections fell to half of their peak.
    BurstOver,
    /// [`LATE`] after the last trim: the pools' idle connections have expired since.
    Late,
}

impl TrimPolicy {
    /// Records `open` connections at `now`; returns whether to trim now, and why.
    pub fn observe(&mut self, open: usize, now: Instant) -> Option<Trim> {
        self.peak = self.peak.max(open);
        let burst_over = self.peak >= MIN_PEAK && open <= self.peak / 2;
        let rested = self.last.is_none_or(|t| now.duration_since(t) >= MIN_GAP);
        if burst_over && rested {
            self.peak = open;
            self.last = Some(now);
            self.late = Some(now + LATE);
            return Some(Trim::BurstOver);
        }
        if self.late.is_some_and(|at| now >= at) {
            self.last = Some(now);
            self.late = None;
            return Some(Trim::Late);
        }
        None
    }
}

/// Trims after bursts until `shutdown`: every second (`TICK`) it reads `open()`, the client
/// connections open now, and asks [`TrimPolicy`].
pub async fn trimmer(open: impl Fn() -> usize + Send, shutdown: CancellationToken) {
    let mut policy = TrimPolicy::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let connections = open();
        let Some(why) = policy.observe(connections, Instant::now()) else {
            continue;
        };
        let job = tokio::task::spawn_blocking(|| {
            let before = resident_bytes();
            let start = Instant::now();
            let released = trim();
            (before, resident_bytes(), start.elapsed(), released)
        });
        match job.await {
            Ok((before, after, took, released)) => debug!(
                ?why,
                connections,
                released,
                rss_before_mib = before >> 20,
                rss_after_mib = after >> 20,
                took_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                "heap trimmed"
            ),
            Err(e) => debug!(error = %e, "heap trim did not run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_burst_is_trimmed_when_half_of_its_connections_have_closed() {
        let mut p = TrimPolicy::default();
        let t = Instant::now();
        assert_eq!(p.observe(5000, t), None, "at the peak");
        assert_eq!(p.observe(2600, t + secs(1)), None, "not yet half");
        assert_eq!(p.observe(2500, t + secs(2)), Some(Trim::BurstOver));
        assert_eq!(
            p.observe(1300, t + secs(20)),
            None,
            "the peak starts over, at 2500"
        );
        assert_eq!(p.observe(1250, t + secs(21)), Some(Trim::BurstOver));
    }

    #[test]
    fn small_swings_are_not_bursts() {
        let mut p = TrimPolicy::default();
        let t = Instant::now();
        assert_eq!(p.observe(MIN_PEAK - 1, t), None);
        assert_eq!(p.observe(0, t + secs(10)), None);
        assert_eq!(
            p.observe(0, t + 2 * LATE),
            None,
            "no late trim without a first"
        );
    }

    #[test]
    fn trims_are_at_least_min_gap_apart() {
        let mut p = TrimPolicy::default();
        let t = Instant::now();
        p.observe(1000, t);
        assert_eq!(p.observe(0, t + secs(1)), Some(Trim::BurstOver));
        p.observe(1000, t + secs(2));
        assert_eq!(p.observe(0, t + secs(3)), None, "too soon");
        assert_eq!(p.observe(0, t + secs(1) + MIN_GAP), Some(Trim::BurstOver));
    }

    #[test]
    fn a_trim_is_followed_by_a_late_one_once_the_pools_have_expired() {
        let mut p = TrimPolicy::default();
        let t = Instant::now();
        p.observe(1000, t);
        assert_eq!(p.observe(10, t + secs(1)), Some(Trim::BurstOver));
        assert_eq!(p.observe(10, t + LATE), None);
        assert_eq!(p.observe(10, t + secs(1) + LATE), Some(Trim::Late));
        assert_eq!(p.observe(10, t + secs(2) + 3 * LATE), None, "only once");
    }

    #[test]
    fn trimming_and_reading_the_resident_size_work_here() {
        let _released = trim();
        assert!(resident_bytes() > 0);
    }
}
