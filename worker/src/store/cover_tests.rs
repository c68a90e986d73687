//! Replay across generations: `sessions.json` names the journals it
//! covers, and a start never replays those over it.

use serde_json::value::RawValue;
use shared::paths::DataDir;

use super::{journal, recovery, snapshot, Store, StoreOptions};

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_string()).unwrap()
}

fn journal_path(dir: &DataDir, generation: u64) -> std::path::PathBuf {
    dir.journal_dir().join(journal::file_name(generation))
}

fn generations(dir: &DataDir) -> Vec<u64> {
    recovery::list_journals(&dir.journal_dir())
        .unwrap()
        .into_iter()
        .map(|(g, _)| g)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_journal_left_by_a_crash_is_not_replayed_over_a_newer_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let (store, _) = Store::open(&dir, StoreOptions::default()).unwrap();
    store.put("k".into(), raw("1")).await.unwrap();
    store.put("other".into(), raw("2")).await.unwrap();
    let first = std::fs::read(journal_path(&dir, 1)).unwrap();
    // Generation 1 is covered, then generation 2 (with the delete).
    store.checkpoint().await.unwrap();
    store.delete("k".into()).await.unwrap();
    store.checkpoint().await.unwrap();
    assert_eq!(generations(&dir), [3]);
    let loaded = snapshot::load(&dir.sessions_json()).unwrap();
    assert_eq!(loaded.covers_through_generation, Some(2));
    drop(store);

    // A power cut kept journal 1 (its removal never reached the disk)
    // but not journal 2, whose delete sessions.json holds.
    std::fs::write(journal_path(&dir, 1), &first).unwrap();
    let (store, report) = Store::open(&dir, StoreOptions::default()).unwrap();
    assert!(store.get("k").is_none(), "a deleted session came back");
    assert_eq!(store.get("other").unwrap().data.get(), "2");
    assert_eq!(report.replayed_records, 0);
    assert_eq!(report.covered_removed.len(), 1, "{report:?}");
    assert_eq!(generations(&dir), [3], "journal 1 is removed");
    // Writes go on in generation 3 and survive another start.
    store.put("late".into(), raw("3")).await.unwrap();
    drop(store);
    let (store, report) = Store::open(&dir, StoreOptions::default()).unwrap();
    assert_eq!(report.replayed_records, 1);
    assert_eq!(store.len(), 2);
    assert!(store.get("k").is_none());
}

#[test]
fn a_covered_journal_is_not_even_read_and_new_journals_come_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    shared::paths::ensure_private_dir(&dir.journal_dir()).unwrap();
    snapshot::save(&dir.sessions_json(), &[], 5).unwrap();
    // Damaged, but covered: nothing in it is needed.
    std::fs::write(journal_path(&dir, 4), b"not a journal at all").unwrap();
    let recovered = recovery::recover(&dir, 4096).unwrap();
    assert_eq!(recovered.report.covered_removed.len(), 1);
    // The next generation is after everything the snapshot covers, or
    // its writes would be skipped at the next start.
    assert_eq!(recovered.journal.generation, 6);
    assert_eq!(generations(&dir), [6]);
}

#[test]
fn a_snapshot_without_the_field_replays_every_journal() {
    // The first release's sessions.json and journal, side by side.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    shared::paths::ensure_private_dir(&dir.journal_dir()).unwrap();
    std::fs::copy(data.join("sessions-v1.json"), dir.sessions_json()).unwrap();
    std::fs::copy(
        data.join("journal-first-release.journal"),
        journal_path(&dir, 1),
    )
    .unwrap();
    let recovered = recovery::recover(&dir, 4096).unwrap();
    assert_eq!(recovered.report.replayed_records, 5);
    assert!(recovered.report.covered_removed.is_empty());
    assert_eq!(
        recovered.sessions["user-1"].data.get(),
        r#"{"title":"Planning","n":2}"#
    );
    assert_eq!(generations(&dir), [1, 2]);
}
