//! What the store's threads share (the writer, the checkpoint thread and
//! every reader), and the store's options.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Mutex, RwLock};

use shared::paths::DataDir;

use super::snapshot::Sessions;
use super::{health, queue, RetryPolicy};

/// Tuning knobs; the defaults suit a real deployment.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// A snapshot is written once the journal is larger than the last
    /// snapshot and larger than this.
    pub compact_min_bytes: u64,
    /// The journal is preallocated with zeros in chunks of this size.
    pub prealloc_chunk: u64,
    /// How often a storage fault is tried again (`heal.rs`).
    pub retry: RetryPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            compact_min_bytes: 64 * 1024 * 1024,
            // Small enough that a start reads and checks it in about a
            // millisecond; large enough that growing it (a write of zeros
            // and a sync) comes once per thousand ~1 KB writes.
            prealloc_chunk: 1024 * 1024,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub writes: AtomicU64,
    pub commits: AtomicU64,
    pub checkpoints: AtomicU64,
    pub journal_bytes: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    /// Flushes held back for expected writes (`group.rs`), and how many
    /// of those waits ended before all of them came.
    pub group_waits: AtomicU64,
    pub group_wait_timeouts: AtomicU64,
}

/// What the writer, the checkpoint thread and readers share.
pub struct Inner {
    pub(crate) dir: DataDir,
    pub(crate) sessions: RwLock<Sessions>,
    pub(crate) counters: Counters,
    /// Messages sent to the checkpoint thread whose snapshot is not yet
    /// durable or failed.
    pub(crate) checkpoints_pending: AtomicUsize,
    /// The outcome of the last snapshot written, until the writer takes
    /// it (set before that snapshot stops counting in
    /// `checkpoints_pending`).
    pub(crate) snapshot_outcome: Mutex<Option<Result<(), String>>>,
    /// Wakes the writer when a snapshot ends (weak, so that the writer
    /// still ends when every `Store` handle is gone).
    pub(crate) wake_writer: queue::WeakSender,
    /// What `ping` and `stats` report (`health.rs`).
    pub(crate) health: Mutex<health::HealthCell>,
    /// Test builds: run before each snapshot is written; an error fails it.
    #[cfg(test)]
    pub(crate) before_snapshot: Option<super::SnapshotHook>,
    /// Test builds: how long each journal flush is made to last longer,
    /// in microseconds (a slow disk).
    #[cfg(test)]
    pub(crate) slow_sync_micros: AtomicU64,
    pub(crate) last_checkpoint_at: Mutex<Option<String>>,
}
