//! Adaptive group commit (`group.rs`) on a slow disk: each journal flush
//! made 20 ms longer, closed-loop clients each waiting for its answer
//! before its next write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use shared::paths::DataDir;

use super::{Store, StoreOptions};

const SLOW: Duration = Duration::from_millis(20);

/// A store whose journal flushes take 20 ms longer.
fn slow_store(dir: &DataDir) -> Store {
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    store.slow_syncs(SLOW);
    store
}

/// `n` clients writing in a closed loop until `stop` is set.
fn clients(store: &Store, n: usize, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..n)
        .map(|c| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    let data = RawValue::from_string(format!("{{\"n\":{done}}}")).unwrap();
                    store.put(format!("client-{c}"), data).await.unwrap();
                    done += 1;
                }
                done
            })
        })
        .collect()
}

/// Waits until `commits` more commits are done; returns the writes and
/// commits seen meanwhile.
async fn over_commits(store: &Store, commits: u64) -> (u64, u64) {
    let before = store.stats();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = store.stats();
        if now.commits - before.commits >= commits {
            return (now.writes - before.writes, now.commits - before.commits);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {commits} commits"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_clients_converge_to_one_flush_each_round() {
    let tmp = tempfile::tempdir().unwrap();
    let store = slow_store(&DataDir::new(tmp.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let n = 8;
    let tasks = clients(&store, n, &stop);
    over_commits(&store, 5).await;
    let (writes, commits) = over_commits(&store, 30).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    // Without waiting, batches alternate full and nearly empty (about
    // n / 2 each on average).
    let per_flush = writes as f64 / commits as f64;
    assert!(
        per_flush >= 0.85 * n as f64,
        "{writes} writes in {commits} flushes: {per_flush:.1} per flush, want about {n}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_writer_never_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = slow_store(&DataDir::new(tmp.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = clients(&store, 1, &stop);
    let (writes, commits) = over_commits(&store, 20).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        writes <= commits + 1,
        "{writes} writes in {commits} flushes"
    );
    assert_eq!(store.group_waits(), (0, 0), "(waits, timed out)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_do_not_hold_back_every_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let store = slow_store(&DataDir::new(tmp.path()));
    let keep = Arc::new(AtomicBool::new(false));
    let leave = Arc::new(AtomicBool::new(false));
    let mut staying = clients(&store, 4, &keep);
    let leaving = clients(&store, 4, &leave);
    over_commits(&store, 10).await;
    leave.store(true, Ordering::Relaxed);
    for t in leaving {
        t.await.unwrap();
    }
    let (_, timeouts_before) = store.group_waits();
    let (writes, commits) = over_commits(&store, 30).await;
    let (_, timeouts) = store.group_waits();
    keep.store(true, Ordering::Relaxed);
    for t in staying.drain(..) {
        t.await.unwrap();
    }
    // The flush after they stopped may wait for them once; after that the
    // writer expects only the four that still write.
    assert!(
        timeouts - timeouts_before <= 3,
        "{} of {commits} flushes waited in vain for clients that stopped",
        timeouts - timeouts_before
    );
    assert!(
        writes as f64 >= 0.85 * 4.0 * commits as f64,
        "{writes} writes in {commits} flushes, want about 4 per flush"
    );
}
