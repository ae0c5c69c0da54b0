//! bascule's own resources: the open-files limit (raised at start, and what it allows of
//! `max_connections`), and telling a local resource failure (out of file descriptors or
//! memory) from an upstream's. A local failure is bascule's own: it must never count against
//! an upstream's health nor be reported as a broken config (DESIGN §7.6).

use std::io;

/// File descriptors kept aside for listeners, the admin API, the config watcher, DNS and logs.
const RESERVED_FDS: u64 = 64;

/// Whether `e` is a local resource exhaustion: out of file descriptors (process or system) or
/// of kernel memory, as opposed to anything the peer did.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
    )
}

/// Whether the process is out of file descriptors right now (a descriptor cannot be duplicated).
pub fn fds_exhausted() -> bool {
    // SAFETY: dup() of the standard error descriptor has no memory effects; the duplicate, if
    // any, is closed at once.
    let fd = unsafe { libc::dup(2) };
    if fd < 0 {
        return is_exhaustion(&io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by dup() and is owned here.
    unsafe { libc::close(fd) };
    false
}

/// The open-files limit after start: what it was, and what it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now (raised to the hard limit when it was lower).
    pub now: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the most an unprivileged process may
/// have), as nginx's `worker_rlimit_nofile` and HAProxy do for themselves.
pub fn raise_file_limit() -> io::Result<FileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let was = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(FileLimit {
        was,
        now: lim.rlim_cur,
    })
}

/// How many client connections `nofile` descriptors can carry when `configured` are asked
/// for: each client connection may need one upstream connection besides its own socket, and
/// a few descriptors stay reserved. Never less than 1.
pub fn connections_for(nofile: u64, configured: usize) -> usize {
    let fits = nofile.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(fits)
        .unwrap_or(usize::MAX)
        .clamp(1, configured.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_descriptors_or_memory_is_local_and_a_refusal_is_not() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS] {
            assert!(is_exhaustion(&io::Error::from_raw_os_error(code)), "{code}");
        }
        for code in [libc::ECONNREFUSED, libc::ETIMEDOUT, libc::EHOSTUNREACH] {
            assert!(
                !is_exhaustion(&io::Error::from_raw_os_error(code)),
                "{code}"
            );
        }
        assert!(!is_exhaustion(&io::Error::other("no os error")));
    }

    #[test]
    fn connections_are_sized_to_the_descriptors_available() {
        assert_eq!(connections_for(1_048_576, 10_000), 10_000, "plenty");
        assert_eq!(
            connections_for(1024, 10_000),
            480,
            "two per connection, 64 reserved"
        );
        assert_eq!(connections_for(10, 10_000), 1, "never zero");
        assert_eq!(connections_for(u64::MAX, 200), 200);
    }

    #[test]
    fn a_process_with_descriptors_to_spare_is_not_exhausted() {
        assert!(!fds_exhausted());
    }
}
