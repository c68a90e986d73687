//! How the writer takes commands: it waits for the first (or for the next
//! repair attempt, `heal.rs`), takes every one queued behind it, may wait
//! a little for the writes it expects (`group.rs`), commits them as one
//! batch, takes what queued during the flush, and only then answers
//! (before any snapshot work the commit starts).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::command::Command;
use super::queue::{Empty, Receiver};
use super::writer::{Writer, MAX_BATCH};

/// The commands of the next batch, and how many of them are writes.
struct Batch {
    commands: Vec<Command>,
    writes: usize,
}

impl Batch {
    fn push(&mut self, cmd: Command) {
        if matches!(cmd, Command::Put { .. } | Command::Delete { .. }) {
            self.writes += 1;
        }
        self.commands.push(cmd);
    }

    /// Takes every command queued now, up to a full batch.
    fn drain(&mut self, rx: &Receiver) {
        while self.commands.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => self.push(cmd),
                Err(_) => break,
            }
        }
    }
}

impl Writer {
    /// Commits batches until `Close` (or every sender is gone). While a
    /// fault waits for its next attempt, the writer wakes for it even if
    /// no command comes (`heal.rs`).
    pub fn run(mut self, rx: Receiver) {
        let mut batch = Batch {
            commands: Vec::with_capacity(64),
            writes: 0,
        };
        // What queues during a flush: the start of the next batch.
        let mut next = Batch {
            commands: Vec::with_capacity(64),
            writes: 0,
        };
        loop {
            if batch.commands.is_empty() {
                let received = match self.next_retry() {
                    None => rx.recv(),
                    Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                };
                match received {
                    Ok(first) => batch.push(first),
                    Err(Empty::Timeout) => {
                        self.retry_due();
                        continue;
                    }
                    Err(Empty::Closed) => return,
                }
            }
            batch.drain(&rx);
            self.gather(&rx, &mut batch);
            let answered = batch.writes;
            let close = self.commit(&mut batch.commands, &mut || next.drain(&rx));
            self.group
                .committed(answered, next.writes, self.answered_at);
            std::mem::swap(&mut batch, &mut next);
            next.writes = 0;
            if let Some(waiters) = close {
                self.close(waiters);
                return;
            }
        }
    }

    /// Waits, bounded, for the writes the next commit can expect (`group.rs`).
    fn gather(&mut self, rx: &Receiver, batch: &mut Batch) {
        if self.poisoned.is_some() {
            // Writes are refused: nothing is flushed, nothing to wait for.
            return;
        }
        let gave_up = self.wait_for_expected(rx, batch);
        self.group.gathered(batch.writes, Instant::now(), gave_up);
    }

    /// Whether it stopped waiting before the expected writes were in.
    fn wait_for_expected(&mut self, rx: &Receiver, batch: &mut Batch) -> bool {
        let counters = &self.inner.counters;
        let mut waited = false;
        while batch.commands.len() < MAX_BATCH {
            let now = Instant::now();
            let Some(due) = self.group.due(batch.writes, now) else {
                return false;
            };
            if now >= due {
                if waited {
                    counters.group_wait_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return true;
            }
            if !waited {
                waited = true;
                counters.group_waits.fetch_add(1, Ordering::Relaxed);
            }
            match rx.recv_timeout(due - now) {
                Ok(cmd) => {
                    batch.push(cmd);
                    batch.drain(rx);
                }
                Err(Empty::Timeout) => {
                    counters.group_wait_timeouts.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(Empty::Closed) => return false,
            }
        }
        false
    }
}
