//! Storage faults and how the writer repairs them by itself.
//!
//! **A failed journal append.** A batch whose write or sync failed is
//! answered `unavailable` (after the first attempt to set it aside, below,
//! so that a crash cannot bring back a write its client was told failed),
//! but its bytes may be on disk whole, in part, or
//! only in the page cache of the journal, from where a restart would replay
//! them (or, once the cache is dropped, find zeros followed by later
//! batches: corruption). Rewriting or syncing that file again proves
//! nothing: after a failed sync the kernel may have dropped its dirty
//! pages, and a second sync "succeeds" (PostgreSQL's fsync-gate). So the
//! failed journal is never written or synced again. Instead the writer
//! starts a new generation and writes a snapshot of the acknowledged state
//! (the failed batch was never applied to it) that covers every older
//! generation, the failed one included. A start never reads a covered
//! journal, and the checkpoint thread deletes it. Until that snapshot is
//! durable, writes are refused with the reason (a write in the new journal
//! could otherwise be replayed after the failed batch); reads keep working.
//!
//! **A failed snapshot** (compaction, SIGUSR1) or a failed start of a new
//! journal for one. The journals still hold every acknowledged write, so
//! writes go on; but the journal grows and `sessions.json` falls behind,
//! so the store is degraded until a snapshot succeeds.
//!
//! **When it is tried again.** A failed append is set aside at once (a
//! passing fault heals before the next write). Every further attempt, for
//! either fault, waits 1 s, then 2 s, 4 s, … up to 30 s between attempts
//! ([`RetryPolicy`](super::RetryPolicy)), for as long as it takes. The
//! writer's own timer drives the attempts (`Writer::run`), so a store that
//! gets no writes heals too; writes never trigger one. A SIGUSR1 while
//! writes are refused is answered by an attempt made at once.
//!
//! If it never succeeds (the disk is gone), nothing durable can rule the
//! failed batch out, and a restart may still replay it: its outcome is
//! unknown, like that of a commit whose fsync failed in PostgreSQL.
//!
//! **Health.** Every change is published (`health.rs`): `degraded` with
//! [`Poisoned::why`] or [`SnapshotFault::why`], else `ok`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::command::{CheckpointError, CheckpointInfo};
use super::fault::SnapshotFault;
use super::journal::{JournalFile, HEADER_LEN};
use super::retry::Backoff;
use super::writer::Writer;

impl Writer {
    /// When the writer's timer must wake it for an attempt, if ever.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        if let Some(p) = &self.poisoned {
            return Some(p.backoff.next_try);
        }
        match &self.snapshot_fault {
            // While a snapshot is being written, its end wakes the writer.
            Some(f) if !self.snapshot_in_flight() => Some(f.backoff.next_try),
            _ => None,
        }
    }

    /// Whether a snapshot is being written (or queued).
    fn snapshot_in_flight(&self) -> bool {
        self.inner.checkpoints_pending.load(Ordering::Acquire) > 0
    }

    /// Makes every attempt that is due.
    pub(super) fn retry_due(&mut self) {
        let now = Instant::now();
        if self
            .poisoned
            .as_ref()
            .is_some_and(|p| now >= p.backoff.next_try)
        {
            let _ = self.heal();
        } else if self.poisoned.is_none()
            && !self.snapshot_in_flight()
            && self
                .snapshot_fault
                .as_ref()
                .is_some_and(|f| now >= f.backoff.next_try)
        {
            info!("trying the failed snapshot again");
            if self.journal.written() == HEADER_LEN as u64 {
                // Nothing in the journal in use: the state as of now is
                // exactly that of every older generation.
                self.dirty = false;
                self.send_job(self.journal.generation - 1, Vec::new());
            } else {
                self.start_checkpoint(Vec::new());
            }
        }
    }

    /// Takes the outcome of the last snapshot that ended: a failure makes
    /// (or keeps) the store degraded, a success repairs it.
    pub(super) fn note_snapshot_outcome(&mut self) {
        let outcome = self
            .inner
            .snapshot_outcome
            .lock()
            .expect("snapshot outcome lock poisoned")
            .take();
        match outcome {
            None => return,
            Some(Ok(())) => {
                if self.snapshot_fault.take().is_some() {
                    info!("a snapshot succeeded; the store is healthy again");
                }
            }
            Some(Err(e)) => {
                // sessions.json lacks what the failed one was to hold.
                self.dirty = true;
                self.snapshot_failed(format!(
                    "a snapshot to {} failed ({e})",
                    self.inner.dir.sessions_json().display()
                ));
            }
        }
        self.publish_health();
    }

    /// Records a failed snapshot (or journal start for one) and schedules
    /// the next attempt.
    pub(super) fn snapshot_failed(&mut self, why: String) {
        let fault = self.snapshot_fault.get_or_insert_with(|| SnapshotFault {
            why: String::new(),
            backoff: Backoff::now(),
        });
        fault.why = why;
        let wait = fault.backoff.failed(self.options.retry);
        warn!(
            error = %fault.why,
            retry_in_ms = wait.as_millis() as u64,
            "snapshots fail; writes go on in the journal"
        );
        self.publish_health();
    }

    /// One attempt: a new journal, if not started yet, then a snapshot
    /// covering every generation before it. On success writes resume.
    pub(super) fn heal(&mut self) -> Result<CheckpointInfo, String> {
        let Some(journal_failed) = self.poisoned.as_ref().map(|p| p.journal_failed) else {
            return Err("nothing to heal".into());
        };
        if journal_failed {
            let dir = self.inner.dir.journal_dir();
            match self.next_journal() {
                Ok(j) => {
                    // The failed file is closed here, never synced again.
                    self.journal = j;
                    self.note_journal_bytes();
                    if let Some(p) = self.poisoned.as_mut() {
                        p.journal_failed = false;
                    }
                }
                Err(e) => {
                    let why = format!("cannot start a new journal in {}: {e}", dir.display());
                    self.still_refusing(why.clone());
                    return Err(why);
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        self.send_job(self.journal.generation - 1, vec![tx]);
        let result = rx
            .blocking_recv()
            .unwrap_or(Err(CheckpointError::ThreadGone));
        // This snapshot's outcome (and any older one's) is settled here.
        let _ = self
            .inner
            .snapshot_outcome
            .lock()
            .expect("snapshot outcome lock poisoned")
            .take();
        match result {
            Ok(info) => {
                self.poisoned = None;
                self.snapshot_fault = None;
                self.dirty = false;
                info!(
                    journal = %self.journal.path.display(),
                    sessions = info.sessions,
                    "the failed journal write is set aside by a snapshot; writes resume"
                );
                self.publish_health();
                Ok(info)
            }
            Err(e) => {
                let why = format!(
                    "the snapshot to {} failed: {e}",
                    self.inner.dir.sessions_json().display()
                );
                self.still_refusing(why.clone());
                Err(why)
            }
        }
    }

    fn still_refusing(&mut self, failed: String) {
        let policy = self.options.retry;
        if let Some(poisoned) = self.poisoned.as_mut() {
            let wait = poisoned.backoff.failed(policy);
            error!(
                error = %failed,
                retry_in_ms = wait.as_millis() as u64,
                "cannot set aside a failed journal write; writes stay refused"
            );
            poisoned.heal_error = Some(failed);
        }
        self.publish_health();
    }

    /// Starts the journal after the one in use. A name already taken can
    /// only be this process's own: an earlier start of that generation
    /// whose clean-up failed (nothing was ever appended to it, and a
    /// journal is never replaced), so it is skipped. A start replays it as
    /// empty; the next snapshot covers and deletes it.
    pub(super) fn next_journal(&self) -> std::io::Result<JournalFile> {
        let dir = self.inner.dir.journal_dir();
        let mut generation = self.journal.generation + 1;
        loop {
            match JournalFile::create(&dir, generation, self.options.prealloc_chunk) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && generation < self.journal.generation + 8 =>
                {
                    warn!(error = %e, "skipping a journal generation left by a failed start");
                    generation += 1;
                }
                other => return other,
            }
        }
    }
}
