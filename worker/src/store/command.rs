//! What callers send the journal writer, and what it answers: the
//! writer's vocabulary, shared by its callers (`Store`), its queue, the
//! checkpoint thread (which wakes it and answers snapshot waiters) and
//! the writer itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use shared::protocol::{ApiError, Session};
use tokio::sync::oneshot;

/// What a finished checkpoint wrote.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub sessions: usize,
    pub bytes: u64,
    pub took: Duration,
}

pub type CheckpointReply = oneshot::Sender<Result<CheckpointInfo, CheckpointError>>;

/// Why a snapshot that was asked for (SIGUSR1, the final one, a repair)
/// was not written. The journals still hold every acknowledged write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CheckpointError {
    /// Writing, syncing or renaming it failed.
    #[error("{0}")]
    Write(#[source] Arc<std::io::Error>),
    /// It could not be started, or the repair it was part of failed
    /// (`heal.rs`): why, with the paths involved.
    #[error("{0}")]
    NotStarted(String),
    /// The store is closing: nothing more is written.
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The final snapshot was already asked for.
    #[error("the store is already closed")]
    Closed,
    /// The writer thread ended before it answered.
    #[error("the store writer stopped")]
    WriterStopped,
    /// The checkpoint thread ended before it answered.
    #[error("the checkpoint thread is gone")]
    ThreadGone,
    /// Asked to wait for a snapshot when none was being written (a bug).
    #[error("no snapshot was being written")]
    NoneWritten,
    /// The store's threads could not be joined.
    #[error("the store's threads did not stop cleanly: {0}")]
    Join(String),
}

/// A put's answer: the session as stored, and the one it replaced (which
/// the caller drops, so freeing it costs the writer nothing).
pub type PutReply = oneshot::Sender<Result<(Arc<Session>, Option<Arc<Session>>), ApiError>>;
/// A delete's answer, with the removed session for the caller to drop.
pub type DeleteReply = oneshot::Sender<Result<Option<Arc<Session>>, ApiError>>;

/// What callers send the writer. Records arrive encoded (JSON and
/// checksum are the caller's work, done in parallel); the writer only
/// orders them, makes them durable and applies them.
pub enum Command {
    Put {
        id: String,
        data: Box<RawValue>,
        updated_at: String,
        record: Vec<u8>,
        reply: PutReply,
    },
    Delete {
        id: String,
        record: Vec<u8>,
        reply: DeleteReply,
    },
    /// Write `sessions.json` now (SIGUSR1).
    Checkpoint { reply: CheckpointReply },
    /// Final snapshot, then stop.
    Close { reply: CheckpointReply },
    /// A snapshot ended (sent by the checkpoint thread): look at how.
    Wake,
    /// Test builds: answered once the batch it came in is done.
    #[cfg(test)]
    Fence(oneshot::Sender<()>),
}
