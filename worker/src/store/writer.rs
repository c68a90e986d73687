//! The single writer: group commit into the journal, then apply and answer.
//!
//! It drains every pending command, encodes all writes into one buffer,
//! makes it durable with one write and one fsync, applies the batch to the
//! in-memory map and answers every caller. Reads never wait for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::value::RawValue;
use shared::protocol::{ApiError, ErrorCode, Session};
use tracing::{error, warn};

use super::checkpoint::Message;
use super::command::{CheckpointError, CheckpointReply, Command, DeleteReply, PutReply};
use super::fault::{Poisoned, SnapshotFault};
use super::group::GroupCommit;
use super::journal::JournalFile;
use super::{Inner, StoreOptions};

/// The most commands one commit takes.
pub(super) const MAX_BATCH: usize = 4096;

enum Answer {
    Put(PutReply, Arc<Session>, Option<Arc<Session>>),
    Delete(DeleteReply, Option<Arc<Session>>),
}

enum Ack {
    Put {
        id: String,
        data: Box<RawValue>,
        updated_at: String,
        reply: PutReply,
    },
    Delete {
        id: String,
        reply: DeleteReply,
    },
}

impl Ack {
    fn fail(self, err: ApiError) {
        match self {
            Ack::Put { reply, .. } => {
                let _ = reply.send(Err(err));
            }
            Ack::Delete { reply, .. } => {
                let _ = reply.send(Err(err));
            }
        }
    }
}

pub struct Writer {
    pub inner: Arc<Inner>,
    pub journal: JournalFile,
    pub checkpoints: std::sync::mpsc::Sender<Message>,
    pub options: StoreOptions,
    /// Set after a failed journal write or fsync, until the failed batch
    /// is set aside (`heal.rs`): writes are refused meanwhile.
    pub poisoned: Option<Poisoned>,
    /// Set after a failed snapshot, until one succeeds (`heal.rs`).
    pub snapshot_fault: Option<SnapshotFault>,
    /// Whether the journal holds writes that `sessions.json` lacks. A
    /// checkpoint with nothing new answers at once and writes nothing.
    pub dirty: bool,
    /// When to hold a flush back for more writes (`group.rs`).
    pub(super) group: GroupCommit,
    /// The last commit's answers, sent once the writer has taken what
    /// queued during its flush (`intake.rs`).
    answers: Vec<Answer>,
    /// When the last answers went out.
    pub(super) answered_at: std::time::Instant,
}

impl Writer {
    pub fn new(
        inner: Arc<Inner>,
        journal: JournalFile,
        checkpoints: std::sync::mpsc::Sender<Message>,
        options: StoreOptions,
        dirty: bool,
    ) -> Writer {
        Writer {
            inner,
            journal,
            checkpoints,
            options,
            poisoned: None,
            snapshot_fault: None,
            dirty,
            group: GroupCommit::default(),
            answers: Vec::new(),
            answered_at: std::time::Instant::now(),
        }
    }

    /// Commits one batch; if a `Close` came, returns who waits for the end.
    /// `before_answers` runs once the batch is durable, just before its
    /// answers go out (`intake.rs` takes what queued during the flush).
    pub(super) fn commit(
        &mut self,
        batch: &mut Vec<Command>,
        before_answers: &mut dyn FnMut(),
    ) -> Option<Vec<CheckpointReply>> {
        self.note_snapshot_outcome();
        self.retry_due();
        if batch.iter().all(|c| matches!(c, Command::Wake)) {
            // Only news of a snapshot: handled above. A compaction that is
            // due waits for the next commit, as it always has.
            batch.clear();
            return None;
        }
        // One group commit is one batch (journal.rs): its header, then records.
        let mut buf = Vec::new();
        super::journal::start_batch(&mut buf);
        let mut acks: Vec<Ack> = Vec::new();
        let mut checkpoint_waiters = Vec::new();
        let mut close = None;
        #[cfg(test)]
        let mut fences = Vec::new();
        {
            let sessions = self
                .inner
                .sessions
                .read()
                .expect("session map lock poisoned");
            for cmd in batch.drain(..) {
                match cmd {
                    Command::Put {
                        id,
                        data,
                        updated_at,
                        record,
                        reply,
                    } => {
                        if let Some(p) = &self.poisoned {
                            let _ = reply.send(Err(unavailable(&p.why())));
                            continue;
                        }
                        buf.extend_from_slice(&record);
                        acks.push(Ack::Put {
                            id,
                            data,
                            updated_at,
                            reply,
                        });
                    }
                    Command::Delete { id, record, reply } => {
                        if let Some(p) = &self.poisoned {
                            let _ = reply.send(Err(unavailable(&p.why())));
                            continue;
                        }
                        // An earlier command of this batch on the same id
                        // decides (deletes are rare; puts pay nothing for it).
                        let earlier = acks.iter().rev().find_map(|a| match a {
                            Ack::Put { id: other, .. } if *other == id => Some(true),
                            Ack::Delete { id: other, .. } if *other == id => Some(false),
                            _ => None,
                        });
                        let exists = earlier.unwrap_or_else(|| sessions.contains_key(&id));
                        if !exists {
                            let _ = reply.send(Err(ApiError::new(
                                ErrorCode::NotFound,
                                format!("no session with id {id:?}"),
                            )));
                            continue;
                        }
                        buf.extend_from_slice(&record);
                        acks.push(Ack::Delete { id, reply });
                    }
                    Command::Checkpoint { reply } => checkpoint_waiters.push(reply),
                    Command::Close { reply } => close = Some(reply),
                    Command::Wake => {}
                    #[cfg(test)]
                    Command::Fence(reply) => fences.push(reply),
                }
            }
        }

        if !acks.is_empty() {
            self.make_durable(&mut buf, acks);
        }
        before_answers();
        // Answered before any snapshot work starts (a new journal costs
        // syncs of its own).
        self.answer();
        if let Some(reply) = close {
            // The final snapshot answers every checkpoint asked for with it.
            checkpoint_waiters.push(reply);
            return Some(checkpoint_waiters);
        }
        let pending = self.snapshot_pending();
        // A fault waits for its own next attempt (heal.rs).
        let due = !pending
            && self.poisoned.is_none()
            && self.snapshot_fault.is_none()
            && self.journal.written() > self.compaction_threshold();
        if self.poisoned.is_some() && !checkpoint_waiters.is_empty() {
            // Asked for now: the snapshot that sets the failed write aside
            // is the one asked for.
            let result = self.heal().map_err(CheckpointError::NotStarted);
            for w in checkpoint_waiters {
                let _ = w.send(result.clone());
            }
        } else if due || (self.dirty && !checkpoint_waiters.is_empty()) {
            // The new snapshot holds everything acknowledged so far.
            self.start_checkpoint(checkpoint_waiters);
        } else if !checkpoint_waiters.is_empty() && pending {
            // Nothing acknowledged since the last snapshot was asked for,
            // but it is not durable yet: its result is the answer.
            self.inner
                .checkpoints_pending
                .fetch_add(1, Ordering::AcqRel);
            self.send(Message::Wait(checkpoint_waiters));
        } else if !checkpoint_waiters.is_empty() {
            // sessions.json is durable and holds every acknowledged write.
            let info = self.unchanged();
            for w in checkpoint_waiters {
                let _ = w.send(Ok(info.clone()));
            }
        }
        #[cfg(test)]
        for fence in fences {
            let _ = fence.send(());
        }
        None
    }

    fn make_durable(&mut self, buf: &mut [u8], acks: Vec<Ack>) {
        if let Err(e) = self.journal.reserve(buf.len() as u64) {
            // Nothing was written where records go: the journal is intact.
            warn!(error = %e, path = %self.journal.path.display(), "cannot extend the journal");
            let err = ApiError::new(
                ErrorCode::Unavailable,
                format!("cannot extend the journal (disk full?): {e}"),
            );
            acks.into_iter().for_each(|a| a.fail(err.clone()));
            return;
        }
        let started = std::time::Instant::now();
        let appended = self.journal.append_batch(buf, acks.len() as u32);
        #[cfg(test)]
        self.slow_sync();
        if let Err(e) = appended {
            let why = format!(
                "a journal write to {} failed ({e})",
                self.journal.path.display()
            );
            error!(error = %e, "journal write failed; refusing writes until it is set aside");
            // Degraded before the answers go out: a client told
            // `unavailable` never sees `ok` in a ping that follows.
            self.poisoned = Some(Poisoned::new(why.clone()));
            self.publish_health();
            // Set aside before the answers go out: until a snapshot covers
            // the failed journal, a restart could replay the batch, and a
            // client told `unavailable` must not find its write later.
            // (If setting it aside fails, the outcome stays unknown:
            // heal.rs.)
            let _ = self.heal();
            let err = unavailable(&why);
            acks.into_iter().for_each(|a| a.fail(err.clone()));
            return;
        }
        self.group.flushed(started.elapsed());
        let writes = acks.len() as u64;
        let mut answers = std::mem::take(&mut self.answers);
        {
            // Applied in order, one lookup per command, exactly as replay
            // applies the records.
            let mut sessions = self
                .inner
                .sessions
                .write()
                .expect("session map lock poisoned");
            for ack in acks {
                match ack {
                    Ack::Put {
                        id,
                        data,
                        updated_at,
                        reply,
                    } => {
                        let (session, old) =
                            super::record::apply_put(&mut sessions, id, data, updated_at, None);
                        answers.push(Answer::Put(reply, session, old));
                    }
                    Ack::Delete { id, reply } => {
                        let old = sessions.remove(&id);
                        answers.push(Answer::Delete(reply, old));
                    }
                }
            }
        }
        self.dirty = true;
        let c = &self.inner.counters;
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.writes.fetch_add(writes, Ordering::Relaxed);
        self.note_journal_bytes();
        self.answers = answers;
    }

    /// Test builds: a slow disk (`Store::slow_syncs`).
    #[cfg(test)]
    fn slow_sync(&self) {
        let micros = self.inner.slow_sync_micros.load(Ordering::Relaxed);
        if micros > 0 {
            std::thread::sleep(std::time::Duration::from_micros(micros));
        }
    }

    /// Sends the last commit's answers: its writes are durable.
    fn answer(&mut self) {
        self.answered_at = std::time::Instant::now();
        for answer in self.answers.drain(..) {
            match answer {
                Answer::Put(reply, session, old) => {
                    let _ = reply.send(Ok((session, old)));
                }
                Answer::Delete(reply, old) => {
                    let _ = reply.send(Ok(old));
                }
            }
        }
    }
}

fn unavailable(why: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, why.to_string())
}
