//! The writer's command queue: a `std` channel, so that the writer thread
//! can wait for a command with a timeout precise to well under a
//! millisecond (`group.rs` waits a fraction of a flush; tokio's timer
//! counts whole milliseconds), and a semaphore that bounds it.
//!
//! The bound is the one the queue always had ([`CAPACITY`] commands):
//! a caller takes a permit before it sends (waiting, asynchronously, while
//! the queue is full) and the writer gives it back when it takes the
//! command. So a flood of writes queues in the callers' tasks, not as an
//! unbounded backlog in front of the writer.

use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::command::Command;

/// The most commands waiting for the writer.
pub const CAPACITY: usize = 8192;

/// The callers' end. The writer stops once every one is gone.
pub struct Sender {
    tx: mpsc::Sender<Command>,
    room: Arc<Semaphore>,
}

/// The writer's end. Dropping it (the writer stopped) refuses every
/// further command, including those waiting for room.
pub struct Receiver {
    rx: mpsc::Receiver<Command>,
    room: Arc<Semaphore>,
}

/// Why nothing was received.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    /// The time given passed (or, for `try_recv`, nothing is queued).
    Timeout,
    /// Every sender is gone and nothing is left.
    Closed,
}

pub fn channel() -> (Sender, Receiver) {
    let (tx, rx) = mpsc::channel();
    let room = Arc::new(Semaphore::new(CAPACITY));
    (
        Sender {
            tx,
            room: room.clone(),
        },
        Receiver { rx, room },
    )
}

impl Sender {
    /// Queues `cmd`, waiting while the queue is full; gives it back if the
    /// writer has stopped.
    pub async fn send(&self, cmd: Command) -> Result<(), Command> {
        match self.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_closed) => return Err(cmd),
        }
        self.tx.send(cmd).map_err(|e| e.0)
    }

    /// Queues `cmd` if there is room now.
    pub fn try_send(&self, cmd: Command) -> Result<(), Command> {
        match self.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(cmd),
        }
        self.tx.send(cmd).map_err(|e| e.0)
    }
}

/// A sender that does not keep the writer running (the checkpoint
/// thread's, to wake it when a snapshot ends).
pub type WeakSender = Weak<Sender>;

impl Receiver {
    /// Waits for the next command.
    pub fn recv(&self) -> Result<Command, Empty> {
        self.took(self.rx.recv().map_err(|_| Empty::Closed))
    }

    /// Waits at most `wait` for the next command.
    pub fn recv_timeout(&self, wait: Duration) -> Result<Command, Empty> {
        self.took(self.rx.recv_timeout(wait).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => Empty::Timeout,
            mpsc::RecvTimeoutError::Disconnected => Empty::Closed,
        }))
    }

    /// The next command if one is queued.
    pub fn try_recv(&self) -> Result<Command, Empty> {
        self.took(self.rx.try_recv().map_err(|e| match e {
            mpsc::TryRecvError::Empty => Empty::Timeout,
            mpsc::TryRecvError::Disconnected => Empty::Closed,
        }))
    }

    /// A command taken frees its place in the queue.
    fn took(&self, received: Result<Command, Empty>) -> Result<Command, Empty> {
        if received.is_ok() {
            self.room.add_permits(1);
        }
        received
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Callers waiting for room get their command back at once.
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_waits_for_room_and_a_stopped_writer_refuses() {
        let (tx, rx) = channel();
        for _ in 0..CAPACITY {
            assert!(tx.send(Command::Wake).await.is_ok(), "room");
        }
        assert!(tx.try_send(Command::Wake).is_err(), "the queue is full");
        let tx = Arc::new(tx);
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(Command::Wake).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a sender waits while the queue is full"
        );
        assert!(rx.try_recv().is_ok());
        assert!(waiting.await.expect("sender task"), "room made, sent");
        assert_eq!(
            rx.recv_timeout(Duration::ZERO).err(),
            None,
            "commands are still queued"
        );
        drop(rx);
        assert!(tx.send(Command::Wake).await.is_err(), "the writer stopped");
    }
}
