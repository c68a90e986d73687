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

pub type CheckpointReply = oneshot::Sender<Result<CheckpointInfo, String>>;

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
