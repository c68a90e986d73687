//! The checkpoint thread: writes `sessions.json` with the atomic-replace
//! recipe, then deletes the journals the snapshot covers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use shared::protocol::Session;
use tracing::{debug, warn};

use super::command::{CheckpointError, CheckpointInfo, CheckpointReply, Command};
use super::recovery::list_journals;
use super::snapshot;
use super::Inner;

/// A state to write, and the newest journal generation it covers.
pub struct Job {
    pub sessions: Vec<Arc<Session>>,
    /// Every record of every journal up to this generation is in
    /// `sessions`, and no record of a later one: the writer takes the
    /// state just after starting generation `upto_generation + 1`, before
    /// anything is written to it (or, at the final snapshot, when nothing
    /// more will be). The snapshot says so (`covers_through_generation`).
    pub upto_generation: u64,
    pub waiters: Vec<CheckpointReply>,
}

/// What the writer sends the checkpoint thread.
pub enum Message {
    /// Write this state.
    Write(Job),
    /// Nothing was acknowledged since the last `Write` was sent: answer
    /// these with that snapshot's result once it is durable (or failed).
    Wait(Vec<CheckpointReply>),
}

/// Writes snapshots in the order they were asked for. Every message counts
/// in `checkpoints_pending` until its snapshot is durable or has failed, so
/// the writer can tell that `sessions.json` is current only when none is.
pub fn run(inner: Arc<Inner>, rx: std::sync::mpsc::Receiver<Message>) {
    let mut last: Option<Result<CheckpointInfo, CheckpointError>> = None;
    while let Ok(first) = rx.recv() {
        // Only the newest state queued matters: it covers every older one,
        // and every `Wait` queued was sent with nothing newer to write.
        let messages: Vec<Message> = std::iter::once(first).chain(rx.try_iter()).collect();
        let count = messages.len();
        let mut newest = None;
        let mut waiters = Vec::new();
        for message in messages {
            match message {
                Message::Write(mut job) => {
                    waiters.append(&mut job.waiters);
                    newest = Some(job);
                }
                Message::Wait(mut w) => waiters.append(&mut w),
            }
        }
        let result = match newest {
            Some(job) => {
                let result = write_job(&inner, &job);
                last = Some(result.clone());
                result
            }
            // A `Wait` is only sent while a `Write` is pending, and that
            // one was handled before it: this is its result.
            None => last.clone().unwrap_or(Err(CheckpointError::NoneWritten)),
        };
        // After the outcome (in write_job): a writer that sees nothing
        // pending also sees how the last snapshot went.
        inner.checkpoints_pending.fetch_sub(count, Ordering::AcqRel);
        for w in waiters {
            let _ = w.send(result.clone());
        }
        // A full queue needs no wake-up: the writer is busy and looks at
        // the outcome before each batch.
        if let Some(writer) = inner.wake_writer.upgrade() {
            let _ = writer.try_send(Command::Wake);
        }
    }
}

/// Writes one snapshot and logs how it went.
fn write_job(inner: &Inner, job: &Job) -> Result<CheckpointInfo, CheckpointError> {
    let started = Instant::now();
    let result = write(inner, job).map_err(|e| CheckpointError::Write(Arc::new(e)));
    // The writer must not think sessions.json is up to date after a
    // failure, and retries until one succeeds (heal.rs).
    *inner
        .snapshot_outcome
        .lock()
        .expect("snapshot outcome lock poisoned") =
        Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
    let result = result.map(|bytes| CheckpointInfo {
        sessions: job.sessions.len(),
        bytes,
        took: started.elapsed(),
    });
    match &result {
        Ok(info) => debug!(
            sessions = info.sessions,
            bytes = info.bytes,
            took_ms = info.took.as_millis() as u64,
            "snapshot written"
        ),
        Err(e) => warn!(error = %e, "snapshot failed; the journals still hold every write"),
    }
    result
}

fn write(inner: &Inner, job: &Job) -> std::io::Result<u64> {
    #[cfg(test)]
    if let Some(hook) = &inner.before_snapshot {
        hook(job)?;
    }
    let bytes = snapshot::save(
        &inner.dir.sessions_json(),
        &job.sessions,
        job.upto_generation,
    )?;
    let journal_dir = inner.dir.journal_dir();
    let journals = list_journals(&journal_dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    for (generation, path) in journals {
        if generation <= job.upto_generation {
            std::fs::remove_file(&path)?;
        }
    }
    shared::fsutil::fsync_dir(&journal_dir)?;
    let c = &inner.counters;
    c.snapshot_bytes.store(bytes, Ordering::Relaxed);
    c.checkpoints.fetch_add(1, Ordering::Relaxed);
    *inner
        .last_checkpoint_at
        .lock()
        .expect("checkpoint time lock poisoned") = Some(shared::time::now_rfc3339());
    Ok(bytes)
}
