//! How many clients the worker serves at once, given its open-file limit.
//!
//! Every client connection holds one file descriptor. If the worker
//! accepted connections until `accept` failed with EMFILE, a client over
//! the limit would wait in the listen queue with no answer, and the store
//! could fail to open its next journal or snapshot. So the connection cap
//! stays below the open-file limit by [`FD_RESERVE`]: a client over the
//! cap is accepted and answered `unavailable` (INTERFACE §5), which needs
//! one descriptor for the moment it takes to write that line.

/// Descriptors kept out of the connection cap, for what the worker holds
/// besides its clients. Counted on Linux and macOS:
/// - stdin, stdout, stderr (stderr is the log): 3
/// - the listening socket, the supervisor's parent pipe and the ready pipe
///   (closed after the announcement): 3
/// - the async runtime: epoll or kqueue, its waker, the signal pipe: 4
/// - the store: its lock, the open journal, the next one while rotating,
///   a snapshot being written and the directory synced after it, a
///   directory listing at recovery: 6 at most
/// - a refused connection while its `unavailable` line is written: 1
///
/// That is 17; the rest is slack for what a library opens that this list
/// does not know about.
pub const FD_RESERVE: u64 = 32;

/// The connection cap: `max_connections`, lowered to the open-file limit
/// minus [`FD_RESERVE`] when that is smaller, and never below 1 (with a
/// tiny limit the worker still serves one client at a time).
pub fn connection_cap(max_connections: usize, open_files: u64) -> usize {
    let allowed = open_files.saturating_sub(FD_RESERVE).max(1);
    let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
    max_connections.min(allowed).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(1024, 256), 256 - FD_RESERVE as usize);
        assert_eq!(connection_cap(1024, 10240), 1024);
        assert_eq!(connection_cap(100, 256), 100);
        assert_eq!(connection_cap(1024, u64::MAX), 1024);
        assert_eq!(
            connection_cap(100_000, 65_536),
            65_536 - FD_RESERVE as usize
        );
    }

    #[test]
    fn a_tiny_limit_still_serves_one_client() {
        assert_eq!(connection_cap(1024, 10), 1);
        assert_eq!(connection_cap(1024, 0), 1);
        assert_eq!(connection_cap(0, 10240), 1);
    }
}
