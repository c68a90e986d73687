//! After a failed journal append: make the failed batch unable to come
//! back, then take writes again.
//!
//! A batch whose write or sync failed was answered `unavailable`, but its
//! bytes may be on disk whole, in part, or only in the page cache of the
//! journal, from where a restart would replay them (or, once the cache is
//! dropped, find zeros followed by later batches: corruption). Rewriting
//! or syncing that file again proves nothing: after a failed sync the
//! kernel may have dropped its dirty pages, and a second sync "succeeds"
//! (PostgreSQL's fsync-gate). So the failed journal is never written or
//! synced again. Instead the writer starts a new generation and writes a
//! snapshot of the acknowledged state (the failed batch was never applied
//! to it) that covers every older generation, the failed one included. A
//! start never reads a covered journal, and the checkpoint thread deletes
//! it. Until that snapshot is durable, writes are refused with the reason
//! (a write in the new journal could otherwise be replayed after the
//! failed batch); reads keep working. A failed attempt is tried again on a
//! later write, at most once per [`RETRY_AFTER`].
//!
//! If it never succeeds (the disk is gone), nothing durable can rule the
//! failed batch out, and a restart may still replay it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{error, info};

use super::journal::JournalFile;
use super::writer::Writer;

/// The least time between two attempts to heal.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why writes are refused, and what is left to do about it.
pub struct Poisoned {
    /// The failed append.
    failure: String,
    /// Why the last attempt to set it aside failed, if one did.
    heal_error: Option<String>,
    /// Whether the journal in use is the one whose append failed (no new
    /// generation could be started yet).
    pub journal_failed: bool,
    /// No attempt to heal before this.
    pub next_try: Instant,
}

impl Poisoned {
    /// After a failed append to the journal in use.
    pub fn new(failure: String) -> Poisoned {
        Poisoned {
            failure,
            heal_error: None,
            journal_failed: true,
            next_try: Instant::now(),
        }
    }

    /// What refused writes are answered.
    pub fn why(&self) -> String {
        match &self.heal_error {
            None => self.failure.clone(),
            Some(e) => format!(
                "{}; setting it aside failed ({e}); writes are refused until that works \
                 (tried again on a later write)",
                self.failure
            ),
        }
    }
}

impl Writer {
    /// Tries to heal if writes are refused and an attempt is due.
    pub(super) fn heal_if_due(&mut self) {
        if self
            .poisoned
            .as_ref()
            .is_some_and(|p| Instant::now() >= p.next_try)
        {
            self.heal();
        }
    }

    /// One attempt: a new journal, if not started yet, then a snapshot
    /// covering every generation before it. On success writes resume.
    fn heal(&mut self) {
        let Some(poisoned) = self.poisoned.as_mut() else {
            return;
        };
        poisoned.next_try = Instant::now() + RETRY_AFTER;
        if poisoned.journal_failed {
            let dir = self.inner.dir.journal_dir();
            let next = self.journal.generation + 1;
            match JournalFile::create(&dir, next, self.options.prealloc_chunk) {
                Ok(j) => {
                    // The failed file is closed here, never synced again.
                    self.journal = j;
                    poisoned.journal_failed = false;
                    self.inner
                        .counters
                        .journal_bytes
                        .store(self.journal.written(), Ordering::Relaxed);
                }
                Err(e) => {
                    return self.still_refusing(format!(
                        "cannot start a new journal in {}: {e}",
                        dir.display()
                    ))
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        self.send_job(self.journal.generation - 1, vec![tx]);
        let result = rx
            .blocking_recv()
            .unwrap_or_else(|_| Err("the checkpoint thread is gone".into()));
        match result {
            Ok(info) => {
                self.poisoned = None;
                self.dirty = false;
                info!(
                    journal = %self.journal.path.display(),
                    sessions = info.sessions,
                    "the failed journal write is set aside by a snapshot; writes resume"
                );
            }
            Err(e) => self.still_refusing(format!(
                "the snapshot to {} failed: {e}",
                self.inner.dir.sessions_json().display()
            )),
        }
    }

    fn still_refusing(&mut self, failed: String) {
        error!(
            error = %failed,
            "cannot set aside a failed journal write; writes stay refused"
        );
        if let Some(poisoned) = self.poisoned.as_mut() {
            poisoned.heal_error = Some(failed);
        }
    }
}
