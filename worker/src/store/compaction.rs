//! When and how the writer starts a snapshot: a journal grown past the
//! compaction threshold, a checkpoint asked for (SIGUSR1), the final one
//! at close. The writer starts a new journal generation first, then hands
//! the state as of that moment to the checkpoint thread
//! (`checkpoint.rs`), which writes `sessions.json` and deletes the
//! journals it covers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use shared::protocol::Session;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::checkpoint::{Job, Message};
use super::command::{CheckpointError, CheckpointInfo, CheckpointReply};
use super::writer::Writer;

impl Writer {
    /// Whether a snapshot asked for is not yet durable (or failed); and,
    /// if the last one failed, marks the journal as holding writes that
    /// `sessions.json` lacks.
    ///
    /// `checkpoints_pending` is read before the outcome: the checkpoint
    /// thread sets the outcome before it counts a snapshot done, so a
    /// writer that sees none pending also sees any failure.
    pub(super) fn snapshot_pending(&mut self) -> bool {
        let pending = self.inner.checkpoints_pending.load(Ordering::Acquire) > 0;
        self.note_snapshot_outcome();
        pending
    }

    /// Hands `message` to the checkpoint thread (which counted it in
    /// `checkpoints_pending`); if that thread is gone, answers its waiters.
    pub(super) fn send(&self, message: Message) {
        if let Err(std::sync::mpsc::SendError(message)) = self.checkpoints.send(message) {
            self.inner
                .checkpoints_pending
                .fetch_sub(1, Ordering::AcqRel);
            let waiters = match message {
                Message::Write(job) => job.waiters,
                Message::Wait(waiters) => waiters,
            };
            for w in waiters {
                let _ = w.send(Err(CheckpointError::ThreadGone));
            }
        }
    }

    /// What a checkpoint with nothing new reports.
    pub(super) fn unchanged(&self) -> CheckpointInfo {
        CheckpointInfo {
            sessions: self
                .inner
                .sessions
                .read()
                .expect("session map lock poisoned")
                .len(),
            bytes: self.inner.counters.snapshot_bytes.load(Ordering::Relaxed),
            took: std::time::Duration::ZERO,
        }
    }

    /// Journal size past which a snapshot is written: twice the snapshot's
    /// size, and at least the configured minimum. (Once the snapshot's size
    /// rewrote a large store too often under heavy writes; a start replays
    /// at most that much journal, which the restore benchmark allows.)
    pub(super) fn compaction_threshold(&self) -> u64 {
        let snapshot = self.inner.counters.snapshot_bytes.load(Ordering::Relaxed);
        snapshot
            .saturating_mul(2)
            .max(self.options.compact_min_bytes)
    }

    /// Starts a new journal, then hands the state as of now to the
    /// checkpoint thread, which writes `sessions.json` and then deletes the
    /// journals it covers.
    /// A failure to start the journal is a snapshot fault: tried again
    /// with backoff (`heal.rs`), not at every commit.
    pub(super) fn start_checkpoint(&mut self, waiters: Vec<CheckpointReply>) {
        let next = match self.next_journal() {
            Ok(j) => j,
            Err(e) => {
                let why = format!(
                    "cannot start a new journal in {} for a snapshot: {e}",
                    self.inner.dir.journal_dir().display()
                );
                for w in waiters {
                    let _ = w.send(Err(CheckpointError::NotStarted(why.clone())));
                }
                self.snapshot_failed(why);
                return;
            }
        };
        let covered = std::mem::replace(&mut self.journal, next);
        self.dirty = false;
        self.note_journal_bytes();
        self.send_job(covered.generation, waiters);
    }

    /// Publishes the size of the journal in use for `stats`.
    pub(super) fn note_journal_bytes(&self) {
        self.inner
            .counters
            .journal_bytes
            .store(self.journal.written(), Ordering::Relaxed);
    }

    pub(super) fn send_job(&mut self, upto_generation: u64, waiters: Vec<CheckpointReply>) {
        let sessions: Vec<Arc<Session>> = self
            .inner
            .sessions
            .read()
            .expect("session map lock poisoned")
            .values()
            .cloned()
            .collect();
        self.inner
            .checkpoints_pending
            .fetch_add(1, Ordering::AcqRel);
        self.send(Message::Write(Job {
            sessions,
            upto_generation,
            waiters,
        }));
    }

    /// The final snapshot. A fresh (empty, preallocated) journal is started
    /// first so that the next start has nothing to replay and nothing to
    /// create; if that fails the snapshot covers the current journal too.
    pub(super) fn close(mut self, waiters: Vec<CheckpointReply>) {
        let pending = self.snapshot_pending();
        // A failed batch not yet set aside (heal.rs) needs this snapshot too.
        if self.poisoned.is_some() {
            self.dirty = true;
        }
        if !pending && !self.dirty {
            // sessions.json already holds everything: nothing to rewrite.
            let info = self.unchanged();
            info!(
                sessions = info.sessions,
                "nothing new since the last snapshot"
            );
            for w in waiters {
                let _ = w.send(Ok(info.clone()));
            }
            return;
        }
        let covered = match self.next_journal() {
            Ok(j) => std::mem::replace(&mut self.journal, j).generation,
            Err(e) => {
                warn!(error = %e, "cannot start a fresh journal for the next start");
                self.journal.generation
            }
        };
        let (tx, rx) = oneshot::channel();
        self.send_job(covered, vec![tx]);
        let result = rx
            .blocking_recv()
            .unwrap_or(Err(CheckpointError::ThreadGone));
        match &result {
            Ok(info) => info!(
                sessions = info.sessions,
                bytes = info.bytes,
                "final snapshot written"
            ),
            Err(e) => {
                error!(error = %e, "final snapshot failed; the journal still holds every write")
            }
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}
