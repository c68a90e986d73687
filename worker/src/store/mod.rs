//! The durable session store.
//!
//! State lives in memory (a sorted map); durability comes from the journal
//! (every acknowledged write is fsync'd there first) and `sessions.json`
//! (written on checkpoints, after which the journals it covers go away).
//! See `journal.rs` for the file format and `recovery.rs` for restores.

pub mod checkpoint;
mod command;
mod compaction;
mod fault;
mod group;
mod heal;
mod health;
mod inner;
mod intake;
pub mod journal;
mod queue;
pub mod record;
pub mod recovery;
mod retry;
pub mod snapshot;
pub mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::value::RawValue;
use shared::paths::DataDir;
use shared::protocol::{ApiError, ErrorCode, Session, SessionHeader, Stats};
use tokio::sync::oneshot;

use command::Command;
pub use command::{CheckpointError, CheckpointInfo};
pub use recovery::{OpenError, RecoveryReport};
pub use retry::RetryPolicy;
use writer::Writer;

pub(crate) use inner::Counters;
pub use inner::{Inner, StoreOptions};

/// Test builds: what runs before each snapshot (to hold one in flight or
/// make it fail).
#[cfg(test)]
pub(crate) type SnapshotHook = Box<dyn Fn(&checkpoint::Job) -> std::io::Result<()> + Send + Sync>;

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    tx: Arc<queue::Sender>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    _lock: Arc<shared::lock::PidLock>,
}

/// A put or delete encoded for the writer, not yet sent to it.
pub struct Prepared(Command);

fn closed() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "the store is shutting down")
}

impl Store {
    /// Takes the data directory's lock, restores its state and starts the
    /// writer. Refuses (changing nothing) when data is damaged.
    pub fn open(
        dir: &DataDir,
        options: StoreOptions,
    ) -> Result<(Store, RecoveryReport), OpenError> {
        Self::open_with(
            dir,
            options,
            #[cfg(test)]
            None,
        )
    }

    /// [`open`](Self::open); test builds also take a hook that runs before
    /// each snapshot.
    pub(crate) fn open_with(
        dir: &DataDir,
        options: StoreOptions,
        #[cfg(test)] before_snapshot: Option<SnapshotHook>,
    ) -> Result<(Store, RecoveryReport), OpenError> {
        dir.ensure().map_err(|error| OpenError::Io {
            what: format!("cannot use data directory {}", dir.root().display()),
            error,
        })?;
        let lock =
            shared::lock::acquire(&dir.worker_lock(), "worker").map_err(|error| OpenError::Io {
                what: "cannot take the store lock".into(),
                error,
            })?;
        let recovered = recovery::recover(dir, options.prealloc_chunk)?;
        let spawn_err = |error| OpenError::Io {
            what: "cannot start a store thread".into(),
            error,
        };
        let (tx, rx) = queue::channel();
        let tx = Arc::new(tx);
        let inner = Arc::new(Inner {
            dir: dir.clone(),
            sessions: RwLock::new(recovered.sessions),
            counters: Counters::default(),
            checkpoints_pending: AtomicUsize::new(0),
            snapshot_outcome: Mutex::new(None),
            wake_writer: Arc::downgrade(&tx),
            health: Mutex::new(health::HealthCell::new()),
            last_checkpoint_at: Mutex::new(None),
            #[cfg(test)]
            before_snapshot,
            #[cfg(test)]
            slow_sync_micros: std::sync::atomic::AtomicU64::new(0),
        });
        inner
            .counters
            .snapshot_bytes
            .store(recovered.report.snapshot_bytes, Ordering::Relaxed);
        inner
            .counters
            .journal_bytes
            .store(recovered.journal.written(), Ordering::Relaxed);
        let (ckpt_tx, ckpt_rx) = std::sync::mpsc::channel();
        let ckpt_inner = inner.clone();
        let ckpt = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || checkpoint::run(ckpt_inner, ckpt_rx))
            .map_err(spawn_err)?;
        let writer = Writer::new(
            inner.clone(),
            recovered.journal,
            ckpt_tx,
            options,
            recovered.report.replayed_records > 0 || !dir.sessions_json().exists(),
        );
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(spawn_err)?;
        let store = Store {
            inner,
            tx,
            threads: Arc::new(Mutex::new(vec![writer, ckpt])),
            _lock: Arc::new(lock),
        };
        Ok((store, recovered.report))
    }

    /// Creates or replaces a session; returns once it is durable.
    pub async fn put(&self, id: String, data: Box<RawValue>) -> Result<Arc<Session>, ApiError> {
        let (write, durable) = self.prepare_put(id, data);
        self.send(write).await?;
        durable.await
    }

    /// Deletes a session; returns once the deletion is durable.
    pub async fn delete(&self, id: String) -> Result<(), ApiError> {
        let (write, durable) = self.prepare_delete(id);
        self.send(write).await?;
        durable.await
    }

    /// A put made ready for the writer, and what resolves once it is
    /// durable (after [`Store::send`]; `unavailable` if it is never sent).
    /// Writes prepared first and then sent one right after another reach
    /// the writer together, in the order sent, and may share one commit.
    pub fn prepare_put(
        &self,
        id: String,
        data: Box<RawValue>,
    ) -> (
        Prepared,
        impl Future<Output = Result<Arc<Session>, ApiError>> + Send + 'static,
    ) {
        let updated_at = shared::time::now_rfc3339();
        let record = record::encode_put(&id, &data, &updated_at);
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Put {
            id,
            data,
            updated_at,
            record,
            reply,
        };
        let durable = async move {
            // The replaced session is freed here, not on the writer thread.
            let (session, _replaced) = rx.await.map_err(|_| closed())??;
            Ok(session)
        };
        (Prepared(cmd), durable)
    }

    /// A delete made ready for the writer; like [`Store::prepare_put`].
    pub fn prepare_delete(
        &self,
        id: String,
    ) -> (
        Prepared,
        impl Future<Output = Result<(), ApiError>> + Send + 'static,
    ) {
        let record = record::encode_del(&id);
        let (reply, rx) = oneshot::channel();
        let durable = async move {
            let _removed = rx.await.map_err(|_| closed())??;
            Ok(())
        };
        (Prepared(Command::Delete { id, record, reply }), durable)
    }

    /// Hands a prepared write to the writer (waiting only if its queue is
    /// full); `unavailable` if the store is closing.
    pub async fn send(&self, write: Prepared) -> Result<(), ApiError> {
        self.tx.send(write.0).await.map_err(|_| closed())
    }

    /// One session, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.inner
            .sessions
            .read()
            .expect("session map lock poisoned")
            .get(id)
            .cloned()
    }

    /// Session headers sorted by id, from `prefix`, at most `limit`.
    pub fn list(&self, prefix: Option<&str>, limit: Option<usize>) -> Vec<SessionHeader> {
        self.list_after(prefix, None, limit.unwrap_or(usize::MAX))
    }

    /// Like [`Store::list`], but only ids after `after` (a page of a
    /// longer list, which `after`, the last id of the previous page, ends).
    pub fn list_after(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<SessionHeader> {
        let sessions = self
            .inner
            .sessions
            .read()
            .expect("session map lock poisoned");
        let prefix = prefix.unwrap_or("");
        let from = match after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        sessions
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .take_while(|(id, _)| id.starts_with(prefix))
            .take(limit)
            .map(|(_, s)| SessionHeader {
                id: s.id.clone(),
                created_at: s.created_at.clone(),
                updated_at: s.updated_at.clone(),
            })
            .collect()
    }

    /// How many sessions there are.
    pub fn len(&self) -> usize {
        self.inner
            .sessions
            .read()
            .expect("session map lock poisoned")
            .len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters for `stats` (without `connections`, which the server adds).
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            count: self.len(),
            journal_bytes: c.journal_bytes.load(Ordering::Relaxed),
            snapshot_bytes: c.snapshot_bytes.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            last_checkpoint_at: self
                .inner
                .last_checkpoint_at
                .lock()
                .expect("checkpoint time lock poisoned")
                .clone(),
            connections: 0,
            request_budget: 0,
            request_budget_used: 0,
            sync: shared::sync::data_sync_method().map(str::to_string),
            store: Some(self.health()),
            group_waits: c.group_waits.load(Ordering::Relaxed),
            group_wait_timeouts: c.group_wait_timeouts.load(Ordering::Relaxed),
        }
    }

    /// Returns once a durable `sessions.json` holds every write
    /// acknowledged before the call: it waits for a snapshot being written
    /// and writes another if that one lacks some; it writes nothing if
    /// `sessions.json` already holds them all. An error if the snapshot
    /// that was to hold them failed (the journals still do).
    pub async fn checkpoint(&self) -> Result<CheckpointInfo, CheckpointError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Checkpoint { reply })
            .await
            .map_err(|_| CheckpointError::ShuttingDown)?;
        rx.await.map_err(|_| CheckpointError::ShuttingDown)?
    }

    /// Test builds: returns once the writer has handled every command
    /// sent before this one, to the end of its batch.
    #[cfg(test)]
    pub(crate) async fn fence(&self) {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Fence(reply))
            .await
            .map_err(|_| ())
            .expect("the writer runs");
        rx.await.expect("the writer answers a fence");
    }

    /// Test builds: every journal flush from now on lasts `by` longer.
    #[cfg(test)]
    pub(crate) fn slow_syncs(&self, by: std::time::Duration) {
        self.inner
            .slow_sync_micros
            .store(by.as_micros() as u64, Ordering::Relaxed);
    }

    /// Test builds: flushes held back for expected writes, and how many of
    /// those waits timed out (`group.rs`).
    #[cfg(test)]
    pub(crate) fn group_waits(&self) -> (u64, u64) {
        let c = &self.inner.counters;
        (
            c.group_waits.load(Ordering::Relaxed),
            c.group_wait_timeouts.load(Ordering::Relaxed),
        )
    }

    /// Writes the final snapshot and stops the store's threads. Writes
    /// sent after this are refused with `unavailable`.
    pub async fn close(&self) -> Result<CheckpointInfo, CheckpointError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Close { reply })
            .await
            .map_err(|_| CheckpointError::Closed)?;
        let result = rx.await.map_err(|_| CheckpointError::WriterStopped)?;
        let threads = std::mem::take(&mut *self.threads.lock().expect("thread list lock poisoned"));
        tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await
        .map_err(|e| CheckpointError::Join(e.to_string()))?;
        result
    }
}

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod cover_tests;
#[cfg(test)]
mod generation_tests;
#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;
