//! A checkpoint (SIGUSR1) asked for while a size-triggered snapshot is
//! being written: answered only once a durable `sessions.json` holds every
//! write acknowledged before it, and never answered "written" when that
//! snapshot failed.
//!
//! A hook holds each snapshot until the test gives its verdict, and a
//! fence shows when the writer has handled a command: no sleeps.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use shared::paths::DataDir;

use super::{snapshot, CheckpointInfo, Store, StoreOptions};

const DEADLINE: Duration = Duration::from_secs(30);

/// The test's side of the hook: each snapshot reports its size, then
/// waits for a verdict (dropping the gate lets every snapshot through).
struct Gate {
    entered: mpsc::Receiver<usize>,
    verdict: mpsc::Sender<io::Result<()>>,
}

impl Gate {
    /// Waits until a snapshot is being written; the sessions it holds.
    fn entered(&self) -> usize {
        self.entered
            .recv_timeout(DEADLINE)
            .expect("a snapshot starts within the deadline")
    }

    fn finish(&self, verdict: io::Result<()>) {
        self.verdict.send(verdict).expect("the hook waits");
    }
}

fn gated_store(tmp: &tempfile::TempDir) -> (Store, Gate) {
    let (entered_tx, entered) = mpsc::channel();
    let (verdict, verdict_rx) = mpsc::channel::<io::Result<()>>();
    let hook_state = Mutex::new((entered_tx, verdict_rx));
    let hook = move |job: &super::checkpoint::Job| {
        let state = hook_state.lock().expect("one snapshot at a time");
        let _ = state.0.send(job.sessions.len());
        state.1.recv().unwrap_or(Ok(()))
    };
    let options = StoreOptions {
        compact_min_bytes: 16 * 1024,
        prealloc_chunk: 64 * 1024,
        // Each snapshot here is the test's; no retry of a failed one
        // comes while it runs (retries: tests/worker_heal.rs).
        retry: super::RetryPolicy {
            first: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
    };
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open_with(&dir, options, Some(Box::new(hook))).unwrap();
    (store, Gate { entered, verdict })
}

/// Puts sessions until the writer has started a size-triggered snapshot
/// (seen after a fence, so nothing is acknowledged after it started);
/// returns their ids.
async fn until_a_snapshot_starts(store: &Store, gate: &Gate) -> Vec<String> {
    let data = RawValue::from_string(format!("\"{}\"", "x".repeat(900))).unwrap();
    let mut ids = Vec::new();
    while store.inner.checkpoints_pending.load(Ordering::Acquire) == 0 {
        assert!(ids.len() < 1000, "no compaction started");
        let id = format!("k{:04}", ids.len());
        store.put(id.clone(), data.clone()).await.unwrap();
        ids.push(id);
        store.fence().await;
    }
    assert_eq!(gate.entered(), ids.len(), "the snapshot holds every put");
    ids
}

type Pending<'a> =
    Pin<Box<dyn Future<Output = Result<CheckpointInfo, super::CheckpointError>> + Send + 'a>>;

/// Asks for a checkpoint and returns it once the writer has handled it.
async fn checkpoint_handled(store: &Store) -> Pending<'_> {
    let mut checkpoint: Pending<'_> = Box::pin(store.checkpoint());
    // The first poll sends the command (there is room in the channel).
    assert!(
        futures_poll(&mut checkpoint).await.is_none(),
        "answered at once"
    );
    store.fence().await;
    checkpoint
}

/// Polls `f` once: its output if it is ready.
async fn futures_poll<T>(f: &mut Pin<Box<dyn Future<Output = T> + Send + '_>>) -> Option<T> {
    tokio::select! {
        biased;
        out = f.as_mut() => Some(out),
        _ = std::future::ready(()) => None,
    }
}

/// The ids in the durable `sessions.json`.
fn snapshot_ids(tmp: &tempfile::TempDir) -> Vec<String> {
    let sessions = snapshot::load(&DataDir::new(tmp.path()).sessions_json())
        .unwrap()
        .sessions;
    sessions.keys().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_during_a_snapshot_waits_for_it_to_be_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, gate) = gated_store(&tmp);
    let ids = until_a_snapshot_starts(&store, &gate).await;
    let mut checkpoint = checkpoint_handled(&store).await;
    assert!(
        futures_poll(&mut checkpoint).await.is_none(),
        "answered while the snapshot was still being written"
    );
    assert!(!DataDir::new(tmp.path()).sessions_json().exists());
    gate.finish(Ok(()));
    let info = checkpoint.await.expect("the snapshot was written");
    assert_eq!(info.sessions, ids.len());
    assert_eq!(snapshot_ids(&tmp), ids);
    // It covered everything: no second snapshot.
    assert_eq!(store.stats().checkpoints, 1);
    drop(gate);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_during_a_snapshot_that_fails_reports_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, gate) = gated_store(&tmp);
    let ids = until_a_snapshot_starts(&store, &gate).await;
    let checkpoint = checkpoint_handled(&store).await;
    gate.finish(Err(io::Error::other("injected snapshot failure")));
    let err = checkpoint.await.expect_err("the snapshot failed");
    assert!(
        err.to_string().contains("injected snapshot failure"),
        "{err}"
    );
    assert!(!DataDir::new(tmp.path()).sessions_json().exists());
    assert_eq!(store.stats().checkpoints, 0);
    // The next one writes for real.
    let checkpoint = checkpoint_handled(&store).await;
    assert_eq!(gate.entered(), ids.len());
    gate.finish(Ok(()));
    assert_eq!(checkpoint.await.unwrap().sessions, ids.len());
    assert_eq!(snapshot_ids(&tmp), ids);
    drop(gate);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_after_writes_the_snapshot_lacks_writes_another() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, gate) = gated_store(&tmp);
    let mut ids = until_a_snapshot_starts(&store, &gate).await;
    // Acknowledged after the snapshot's state was taken, before the ask.
    store
        .put("late".into(), RawValue::from_string("1".into()).unwrap())
        .await
        .unwrap();
    ids.push("late".into());
    let mut checkpoint = checkpoint_handled(&store).await;
    gate.finish(Ok(()));
    // The first snapshot lacks "late": a second one is written.
    assert_eq!(gate.entered(), ids.len());
    assert!(
        futures_poll(&mut checkpoint).await.is_none(),
        "answered with a snapshot that lacks a write acknowledged before"
    );
    gate.finish(Ok(()));
    assert_eq!(checkpoint.await.unwrap().sessions, ids.len());
    ids.sort();
    assert_eq!(snapshot_ids(&tmp), ids);
    assert_eq!(store.stats().checkpoints, 2);
    drop(gate);
    store.close().await.unwrap();
}
