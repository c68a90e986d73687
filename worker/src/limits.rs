//! What clients may cost the worker: how many it serves at once, given
//! its open-file limit, and how many request bytes they may make it hold.
//!
//! Every client connection holds one file descriptor. If the worker
//! accepted connections until `accept` failed with EMFILE, a client over
//! the limit would wait in the listen queue with no answer, and the store
//! could fail to open its next journal or snapshot. So the connection cap
//! stays below the open-file limit by [`FD_RESERVE`]: a client over the
//! cap is accepted and answered `unavailable` (README, "Open files and
//! connections"), which needs one descriptor for the moment it takes to
//! write that line. [`ServerOptions`] carries these limits to the server,
//! and [`Shared`] to every connection.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use shared::protocol::MAX_LINE;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits and identity the server enforces.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Only this uid may connect (the owner of the data directory).
    pub owner_uid: u32,
    /// Connections beyond this get `unavailable` and are closed. Already
    /// kept below the open-file limit (`limits::connection_cap`).
    pub max_connections: usize,
    /// How long open connections get to finish once shutdown starts.
    pub drain_timeout: Duration,
    /// Request bytes beyond each connection's own buffer, shared by all.
    pub budget: RequestBudget,
    /// A connection that has not finished a request line for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// A connection whose client takes none of its answers for this long
    /// is closed.
    pub write_timeout: Duration,
}

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub options: ServerOptions,
    /// Connections open now.
    pub active: AtomicUsize,
}

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

/// Request bytes every connection may buffer without touching the shared
/// budget: enough for any everyday request, so a small `ping` is read and
/// answered even while the budget is spent. 1024 connections hold 8 MiB.
pub const CONNECTION_BUFFER: usize = 8 * 1024;

/// What a connection takes from the budget once its request outgrows
/// [`CONNECTION_BUFFER`]: room for the longest request line and its
/// newline. Taken whole, so a request that has started arriving can always
/// finish; two requests each holding half the room they need would wait
/// for each other forever.
pub const LARGE_REQUEST: usize = MAX_LINE + 1 - CONNECTION_BUFFER;

/// The default budget for request bytes beyond [`CONNECTION_BUFFER`],
/// shared by all connections (`--request-budget-bytes`): 64 MiB.
pub const DEFAULT_REQUEST_BUDGET: u64 = 64 * 1024 * 1024;

/// The default for `--idle-timeout-ms`: a connection that has not
/// finished its next request line for this long is closed.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;

/// The default for `--write-timeout-ms`: a connection whose client takes
/// no part of an answer for this long is closed.
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 10_000;

/// The shared budget for request bytes: [`LARGE_REQUEST`]-sized slots,
/// handed out first come, first served. A connection waiting for a slot
/// is not read from (backpressure), so the worker never holds more than
/// the budget plus [`CONNECTION_BUFFER`] per connection.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    slots: Arc<Semaphore>,
    total: usize,
}

/// One [`LARGE_REQUEST`] slot, given back when dropped.
#[derive(Debug)]
pub struct LargeRequest(#[allow(dead_code)] OwnedSemaphorePermit);

impl RequestBudget {
    /// A budget of `bytes`, rounded down to whole slots, and never less
    /// than one (a budget below one large request still lets one through
    /// at a time).
    pub fn new(bytes: u64) -> RequestBudget {
        let slots = usize::try_from(bytes / LARGE_REQUEST as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        RequestBudget {
            slots: Arc::new(Semaphore::new(slots)),
            total: slots,
        }
    }

    /// Waits for a slot.
    pub async fn reserve(&self) -> LargeRequest {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the budget's semaphore is never closed");
        LargeRequest(permit)
    }

    /// A slot if one is free now and nobody is waiting for one (a
    /// released slot goes to the longest waiter first, never to this).
    pub fn try_reserve(&self) -> Option<LargeRequest> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .ok()
            .map(LargeRequest)
    }

    /// Bytes handed out now.
    pub fn used(&self) -> u64 {
        let used = self.total - self.slots.available_permits();
        (used * LARGE_REQUEST) as u64
    }

    /// The whole budget in bytes (whole slots).
    pub fn bytes(&self) -> u64 {
        (self.total * LARGE_REQUEST) as u64
    }
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

    #[test]
    fn the_default_budget_holds_64_large_requests() {
        let budget = RequestBudget::new(DEFAULT_REQUEST_BUDGET);
        assert_eq!(budget.bytes(), 64 * LARGE_REQUEST as u64);
        assert!(budget.bytes() <= DEFAULT_REQUEST_BUDGET);
        assert_eq!(RequestBudget::new(1).bytes(), LARGE_REQUEST as u64);
        assert_eq!(CONNECTION_BUFFER + LARGE_REQUEST, MAX_LINE + 1);
    }

    #[tokio::test]
    async fn slots_come_back_when_dropped() {
        let budget = RequestBudget::new(2 * LARGE_REQUEST as u64);
        let a = budget.reserve().await;
        let _b = budget.reserve().await;
        assert_eq!(budget.used(), budget.bytes());
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve().await }
        });
        drop(a);
        let _c = waiting
            .await
            .expect("the third request gets the freed slot");
        assert_eq!(budget.used(), budget.bytes());
    }
}
