//! How many control connections the supervisor holds at once, given its
//! open-file limit, and which one gives way when a new one arrives at the
//! cap.
//!
//! The supervisor must always have descriptors left to start a worker
//! (four pipes and `/dev/null`), run git and cargo (their pipes), take
//! the staging lock and write its logs. Each control connection holds
//! one descriptor, and a `status` answer opens a second one, to ask the
//! worker for its session count. So the cap is half of what the soft
//! limit leaves after [`FD_RESERVE`], and at most [`MAX_CONNECTIONS`].
//!
//! At the cap, a new connection takes the place of the oldest one that
//! has not sent its request yet (a request being answered is never cut);
//! if every connection is being answered, the new one is told to try
//! again. So idle connections can neither exhaust the descriptors nor
//! keep `supervisor status` out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::task::AbortHandle;

/// Descriptors kept out of the control connections' share. Counted:
/// stdio 3; the supervisor lock, the control and session listeners 3;
/// the two log files and a log being pruned 3; the runtime 3; a worker
/// being started: its four pipes (both ends until the spawn) and
/// `/dev/null`, plus the exec-status pipe of the spawn 11; the running
/// worker's pipes 4; git or cargo with piped output and its exec-status
/// pipe 8, the staging lock 1, a release being copied 2. That is 38; the
/// rest is slack for what a library opens that this list does not know.
pub const FD_RESERVE: u64 = 64;

/// The most control connections held at once, whatever the limit.
pub const MAX_CONNECTIONS: usize = 1024;

/// The cap for a soft open-file limit of `open_files`: never below 1.
pub fn connection_cap(open_files: u64) -> usize {
    let share = open_files.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

const WAITING: u8 = 0;
const ANSWERING: u8 = 1;
const CUT: u8 = 2;

/// A connection's side of its slot.
#[derive(Debug, Clone)]
pub struct Ticket(Arc<AtomicU8>);

impl Ticket {
    /// The request has arrived: from now on the connection is not cut.
    /// False if it was cut first (the connection should end at once).
    pub fn answering(&self) -> bool {
        self.0
            .compare_exchange(WAITING, ANSWERING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

struct Slot {
    state: Arc<AtomicU8>,
    task: AbortHandle,
}

/// The connections being served, oldest first.
pub struct Slots {
    cap: usize,
    held: VecDeque<Slot>,
}

impl Slots {
    pub fn new(cap: usize) -> Slots {
        Slots {
            cap,
            held: VecDeque::new(),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Makes room for one more connection: false if all `cap` are being
    /// answered. Cuts the oldest one still waiting for its request.
    pub fn make_room(&mut self) -> bool {
        self.held.retain(|s| !s.task.is_finished());
        if self.held.len() < self.cap {
            return true;
        }
        let cut = self.held.iter().position(|s| {
            s.state
                .compare_exchange(WAITING, CUT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        match cut {
            Some(i) => {
                let slot = self.held.remove(i).expect("the position is in range");
                slot.task.abort();
                true
            }
            None => false,
        }
    }

    /// A ticket for the connection about to be served.
    pub fn ticket() -> Ticket {
        Ticket(Arc::new(AtomicU8::new(WAITING)))
    }

    /// Records the task serving the connection with `ticket`.
    pub fn hold(&mut self, ticket: &Ticket, task: AbortHandle) {
        self.held.push_back(Slot {
            state: ticket.0.clone(),
            task,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_and_a_second_descriptor_each() {
        assert_eq!(connection_cap(256), 96);
        assert_eq!(connection_cap(10240), MAX_CONNECTIONS);
        assert_eq!(connection_cap(1024), 480);
        assert_eq!(connection_cap(64), 1);
        assert_eq!(connection_cap(0), 1);
        assert_eq!(connection_cap(u64::MAX), MAX_CONNECTIONS);
    }

    #[tokio::test]
    async fn the_oldest_waiting_connection_gives_way_and_an_answering_one_never() {
        let mut slots = Slots::new(2);
        let forever = || tokio::spawn(std::future::pending::<()>());
        let (a, b) = (Slots::ticket(), Slots::ticket());
        let (task_a, task_b) = (forever(), forever());
        assert!(slots.make_room());
        slots.hold(&a, task_a.abort_handle());
        assert!(slots.make_room());
        slots.hold(&b, task_b.abort_handle());
        assert!(a.answering(), "a has sent its request");
        // Full: b, the oldest still waiting, is cut.
        assert!(slots.make_room());
        assert!(task_b.await.unwrap_err().is_cancelled());
        assert!(!b.answering(), "a cut connection does not go on");
        let c = Slots::ticket();
        slots.hold(&c, forever().abort_handle());
        assert!(c.answering());
        // Both held connections are being answered: no room.
        assert!(!slots.make_room());
        task_a.abort();
        let _ = task_a.await;
        assert!(slots.make_room(), "a finished task frees its slot");
    }
}
