//! Store-level tests: group commit, checkpoints, compaction, reopen.

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use shared::paths::DataDir;
use shared::protocol::ErrorCode;

use super::{journal, recovery, Store, StoreOptions};

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_string()).unwrap()
}

fn small() -> StoreOptions {
    StoreOptions {
        compact_min_bytes: 16 * 1024,
        prealloc_chunk: 64 * 1024,
        ..StoreOptions::default()
    }
}

fn journals(dir: &DataDir) -> Vec<u64> {
    recovery::list_journals(&dir.journal_dir())
        .unwrap()
        .into_iter()
        .map(|(g, _)| g)
        .collect()
}

async fn wait_until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !probe() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_a_reopen_without_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    {
        let (store, _) = Store::open(&dir, small()).unwrap();
        let first = store.put("a".into(), raw("1")).await.unwrap();
        let second = store.put("a".into(), raw(r#"{"v":2}"#)).await.unwrap();
        assert_eq!(first.created_at, second.created_at);
        store.put("b".into(), raw("null")).await.unwrap();
        store.delete("b".into()).await.unwrap();
        let err = store.delete("b".into()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        // Dropped without close: like a crash, nothing but the journal.
    }
    assert!(!dir.sessions_json().exists());
    let (store, report) = Store::open(&dir, small()).unwrap();
    assert_eq!(report.replayed_records, 4);
    assert_eq!(store.get("a").unwrap().data.get(), r#"{"v":2}"#);
    assert!(store.get("b").is_none());
    assert_eq!(store.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, StoreOptions::default()).unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                store.put(format!("w{w}-{i}"), raw("{}")).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.writes, 640);
    assert_eq!(stats.count, 640);
    assert!(stats.commits < stats.writes, "no batching: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_writes_everything_acknowledged_and_drops_old_journals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, StoreOptions::default()).unwrap();
    for i in 0..10 {
        store
            .put(format!("s{i}"), raw(&i.to_string()))
            .await
            .unwrap();
    }
    assert_eq!(journals(&dir), vec![1]);
    let info = store.checkpoint().await.unwrap();
    assert_eq!(info.sessions, 10);
    assert_eq!(journals(&dir), vec![2]);
    let loaded = super::snapshot::load(&dir.sessions_json()).unwrap();
    assert_eq!(loaded.covers_through_generation, Some(1));
    let snap = loaded.sessions;
    assert_eq!(snap.len(), 10);
    assert_eq!(snap["s7"].data.get(), "7");
    // Writes after the checkpoint land in the new journal.
    store.put("late".into(), raw("true")).await.unwrap();
    drop(store);
    let (store, report) = Store::open(&dir, StoreOptions::default()).unwrap();
    assert_eq!(report.replayed_records, 1);
    assert_eq!(store.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_starts_once_the_journal_outgrows_its_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, small()).unwrap();
    let data = raw(&format!("\"{}\"", "x".repeat(900)));
    for round in 0..60 {
        for i in 0..10 {
            store.put(format!("k{i}"), data.clone()).await.unwrap();
        }
        if round == 0 {
            assert_eq!(store.stats().checkpoints, 0);
        }
    }
    wait_until("a compaction", || store.stats().checkpoints >= 1).await;
    let gens = journals(&dir);
    assert!(
        gens.iter().all(|g| *g > 1),
        "journal 1 is still there: {gens:?}"
    );
    // The journal never grows far past the threshold.
    assert!(store.stats().journal_bytes < 64 * 1024);
    store.close().await.unwrap();
    let left = journals(&dir);
    assert_eq!(left.len(), 1, "close leaves one fresh journal: {left:?}");
    drop(store);
    let (store, report) = Store::open(&dir, small()).unwrap();
    assert_eq!(report.replayed_records, 0);
    assert_eq!(store.len(), 10);
    assert_eq!(store.get("k3").unwrap().data.get(), data.get());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_close_are_refused_and_a_second_open_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, small()).unwrap();
    match Store::open(&dir, small()) {
        Err(super::OpenError::Io { error, .. }) => {
            assert!(error.to_string().contains("already owns"), "{error}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second store opened the same directory"),
    }
    store.put("a".into(), raw("1")).await.unwrap();
    store.close().await.unwrap();
    let err = store.put("b".into(), raw("2")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert_eq!(store.list(None, None).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_by_prefix_and_limit_in_id_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, small()).unwrap();
    for id in ["b", "a:2", "a:1", "ab", "c"] {
        store.put(id.into(), raw("0")).await.unwrap();
    }
    let ids =
        |v: Vec<shared::protocol::SessionHeader>| v.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(None, None)), ["a:1", "a:2", "ab", "b", "c"]);
    assert_eq!(ids(store.list(Some("a"), None)), ["a:1", "a:2", "ab"]);
    assert_eq!(ids(store.list(Some("a:"), Some(1))), ["a:1"]);
    assert!(store.list(Some("zz"), None).is_empty());
    assert!(store.list(None, Some(0)).is_empty());
    // Pages: ids after the last one of the previous page.
    assert_eq!(ids(store.list_after(None, Some("a:2"), 2)), ["ab", "b"]);
    assert_eq!(
        ids(store.list_after(Some("a"), Some("a:1"), 9)),
        ["a:2", "ab"]
    );
    assert!(store.list_after(Some("a"), Some("ab"), 9).is_empty());
}

/// Appends one batch of `payloads` to `j`.
fn append(j: &mut journal::JournalFile, payloads: &[&[u8]]) {
    let mut buf = Vec::new();
    journal::start_batch(&mut buf);
    for p in payloads {
        journal::encode_record(p, &mut buf);
    }
    j.reserve(buf.len() as u64).unwrap();
    j.append_batch(&mut buf, payloads.len() as u32).unwrap();
}

#[test]
fn a_batch_torn_by_a_power_cut_reopens_with_the_batches_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    shared::paths::ensure_private_dir(&dir.journal_dir()).unwrap();
    let mut j = journal::JournalFile::create(&dir.journal_dir(), 1, 4096).unwrap();
    let put = |id: &str| format!(r#"{{"put":{{"id":"{id}","data":1,"updated_at":"t"}}}}"#);
    append(&mut j, &[put("a").as_bytes()]);
    let good = j.written() as usize;
    append(&mut j, &[put("b").as_bytes(), put("c").as_bytes()]);
    let end = j.written() as usize;
    drop(j);
    // The power cut kept the end of the second batch and lost its start.
    let path = dir.journal_dir().join(journal::file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[good..good + 40].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let recovered = recovery::recover(&dir, 4096).unwrap();
    assert_eq!(recovered.sessions.len(), 1);
    assert!(recovered.sessions.contains_key("a"));
    assert_eq!(recovered.report.set_aside.len(), 1);
    assert_eq!(recovered.journal.written(), good as u64);
    let aside: Vec<_> = std::fs::read_dir(dir.damaged_dir()).unwrap().collect();
    assert_eq!(aside.len(), 1);
    let kept = std::fs::read(aside[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(kept, bytes[good..end]);
    let now = std::fs::read(&path).unwrap();
    assert!(
        now[good..].iter().all(|b| *b == 0),
        "the torn bytes are zeroed"
    );

    // Appends go on after the last good batch, in sequence.
    let mut j = recovered.journal;
    append(&mut j, &[put("d").as_bytes()]);
    drop(j);
    let again = recovery::recover(&dir, 4096).unwrap();
    assert!(again.report.set_aside.is_empty());
    let ids: Vec<_> = again.sessions.keys().cloned().collect();
    assert_eq!(ids, ["a", "d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_with_nothing_new_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, StoreOptions::default()).unwrap();
    store.put("a".into(), raw("1")).await.unwrap();
    store.checkpoint().await.unwrap();
    let inode = std::fs::metadata(dir.sessions_json()).unwrap().ino();
    let journals_before = journals(&dir);
    // Nothing new: the same file, no new journal.
    let info = store.checkpoint().await.unwrap();
    assert_eq!(info.sessions, 1);
    assert_eq!(std::fs::metadata(dir.sessions_json()).unwrap().ino(), inode);
    assert_eq!(journals(&dir), journals_before);
    assert_eq!(store.stats().checkpoints, 1);
    // A write makes the next one real.
    store.put("b".into(), raw("2")).await.unwrap();
    store.checkpoint().await.unwrap();
    assert_ne!(std::fs::metadata(dir.sessions_json()).unwrap().ino(), inode);
    assert_eq!(store.stats().checkpoints, 2);
    // A clean stop after that rewrites nothing either.
    let inode = std::fs::metadata(dir.sessions_json()).unwrap().ino();
    store.close().await.unwrap();
    assert_eq!(std::fs::metadata(dir.sessions_json()).unwrap().ino(), inode);
    drop(store);
    let (store, report) = Store::open(&dir, StoreOptions::default()).unwrap();
    assert_eq!(report.replayed_records, 0);
    assert_eq!(store.len(), 2);
}

#[test]
fn a_journal_of_the_first_release_still_replays() {
    // Written by the first release: put records carried `created_at`.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/journal-first-release.journal");
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    shared::paths::ensure_private_dir(&dir.journal_dir()).unwrap();
    std::fs::copy(&fixture, dir.journal_dir().join(journal::file_name(1))).unwrap();
    let recovered = recovery::recover(&dir, 4096).unwrap();
    assert_eq!(recovered.report.replayed_records, 5);
    let s = &recovered.sessions;
    assert_eq!(s.len(), 2);
    assert_eq!(s["user-1"].created_at, "2026-11-24T06:00:00.123Z");
    assert_eq!(s["user-1"].updated_at, "2026-11-24T06:05:00.456Z");
    assert_eq!(s["user-1"].data.get(), r#"{"title":"Planning","n":2}"#);
    assert!(!s.contains_key("gone"));
    assert_eq!(s["team:alpha@host.local"].data.get(), "[1,2,3]");
    // New writes go to a new generation in the current format; the first
    // release's journal is kept and replayed before it.
    let mut j = recovered.journal;
    assert_eq!(j.generation, 2);
    append(
        &mut j,
        &[br#"{"put":{"id":"user-1","data":"new","updated_at":"u"}}"#],
    );
    drop(j);
    let bytes = std::fs::read(dir.journal_dir().join(journal::file_name(2))).unwrap();
    assert!(matches!(
        journal::decode_header(&bytes),
        journal::Header::Valid {
            version: journal::FORMAT_VERSION,
            ..
        }
    ));
    assert_eq!(
        std::fs::read(dir.journal_dir().join(journal::file_name(1))).unwrap(),
        std::fs::read(&fixture).unwrap(),
        "the first release's journal is unchanged"
    );
    let again = recovery::recover(&dir, 4096).unwrap();
    assert_eq!(again.report.replayed_records, 6);
    assert_eq!(again.sessions["user-1"].data.get(), r#""new""#);
    assert_eq!(
        again.sessions["user-1"].created_at,
        "2026-11-24T06:00:00.123Z"
    );
    assert_eq!(again.journal.generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_derives_created_at_exactly_as_the_writer_did() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (first, second, recreated);
    {
        let (store, _) = Store::open(&dir, small()).unwrap();
        first = store.put("k".into(), raw("1")).await.unwrap();
        second = store.put("k".into(), raw("2")).await.unwrap();
        store.delete("k".into()).await.unwrap();
        recreated = store.put("k".into(), raw("3")).await.unwrap();
        store.put("other".into(), raw("0")).await.unwrap();
        // A checkpoint, then a crash before the covered journal is gone
        // would replay these records on top of the snapshot: same result.
    }
    assert_eq!(first.created_at, second.created_at);
    assert_eq!(recreated.created_at, recreated.updated_at);
    let (store, _) = Store::open(&dir, small()).unwrap();
    let k = store.get("k").unwrap();
    assert_eq!(k.created_at, recreated.created_at);
    assert_eq!(k.updated_at, recreated.updated_at);
    assert_eq!(k.data.get(), "3");
    // Replaying the same journal again on top of its own result changes nothing.
    store.checkpoint().await.unwrap();
    drop(store);
    let snapshot = std::fs::read(dir.sessions_json()).unwrap();
    let recovered = recovery::recover(&dir, 64 * 1024).unwrap();
    assert_eq!(recovered.sessions["k"].created_at, recreated.created_at);
    assert_eq!(std::fs::read(dir.sessions_json()).unwrap(), snapshot);
}
