//! Syncs on volumes that reject the preferred method, and syncs that fail,
//! forced for real with strace in the worker binary.
//!
//! On macOS the worker steps down from F_FULLFSYNC to F_BARRIERFSYNC to
//! fsync when a volume (SMB, exFAT, …) rejects the stronger call. Its Linux
//! twin steps down from fdatasync to fsync the same way, and that is what
//! these tests force: strace exists on Linux only. (The decision itself,
//! which errno moves on and which does not, is unit-tested in
//! `shared/src/sync/tests.rs` on every platform.)
#![cfg(target_os = "linux")]

use harness::{ids, put_id as put, TestDir, DEADLINE};
use serde_json::json;

/// Lines of `text` that contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn an_unsupported_fdatasync_falls_back_to_fsync_and_loses_nothing() {
    let dir = TestDir::new();
    let trace = dir.root().join("fdatasync.trace");
    let trace_arg = trace.to_str().expect("a UTF-8 temp path");
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-o",
            trace_arg,
            "-e",
            "trace=fdatasync",
            "-e",
            "inject=fdatasync:error=EINVAL",
        ],
        &[],
    );
    assert_eq!(dir.journals().len(), 1, "the journal was created");
    let mut conn = traced.connect();
    let stats = conn.call(&json!({"op": "stats"}));
    assert!(stats["sync"].is_null(), "no data sync yet: {stats}");
    let n = 25;
    for i in 0..n {
        let a = conn.call(&json!({"op": "put", "id": format!("s{i}"), "data": {"i": i}}));
        assert_eq!(a["ok"], true, "put {i}: {a}");
    }
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["sync"], "fsync", "{stats}");
    assert_eq!(stats["writes"], n, "{stats}");
    drop(conn);

    traced.kill_worker();
    let log = traced.stderr();
    assert_eq!(
        count(&log, "data syncs fall back to fsync"),
        1,
        "one warning about the fallback:\n{log}"
    );
    assert_eq!(count(&log, "Invalid argument"), 1, "{log}");
    // Only the first data sync tried fdatasync; every later one (one per
    // put at least) went straight to fsync.
    let calls = std::fs::read_to_string(&trace).expect("read the strace output");
    assert_eq!(count(&calls, "fdatasync("), 1, "{calls}");
    assert_eq!(count(&calls, "INJECTED"), 1, "{calls}");

    // Every acknowledged put survived the SIGKILL.
    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["count"], n, "{stats}");
    assert!(stats["sync"].is_null(), "no data sync yet: {stats}");
    for i in 0..n {
        let got = conn.call(&json!({"op": "get", "id": format!("s{i}")}));
        assert_eq!(got["session"]["data"]["i"], i, "{got}");
    }
    // The method is found per process: without faults it is fdatasync.
    let a = conn.call(&json!({"op": "put", "id": "after", "data": 1}));
    assert_eq!(a["ok"], true, "{a}");
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["sync"], "fdatasync", "{stats}");
}

#[test]
fn a_failed_fdatasync_is_not_retried_with_fsync() {
    let dir = TestDir::new();
    // Every fdatasync fails as a dying disk's would.
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fdatasync",
            "-e",
            "inject=fdatasync:error=EIO",
        ],
        &[],
    );
    let mut conn = traced.connect();
    let a = conn.call(&json!({"op": "put", "id": "lost", "data": 1}));
    assert_eq!(
        a["ok"], false,
        "a put whose sync failed was acknowledged: {a}"
    );
    assert_eq!(a["error"]["code"], "unavailable", "{a}");
    let message = a["error"]["message"].as_str().expect("a message");
    assert!(message.contains("Input/output error"), "{message}");
    // The journal is not trusted any more: later puts are refused too.
    let b = conn.call(&json!({"op": "put", "id": "later", "data": 2}));
    assert_eq!(b["error"]["code"], "unavailable", "{b}");
    let stats = conn.call(&json!({"op": "stats"}));
    assert!(stats["sync"].is_null(), "no sync succeeded: {stats}");
    assert_eq!(stats["writes"], 0, "{stats}");
    drop(conn);

    traced.kill_worker();
    let log = traced.stderr();
    assert_eq!(count(&log, "fall back"), 0, "{log}");
    // Each put failed in its own journal: after the first failure the
    // worker set that journal aside and started a new one (before it took
    // the second put; the second is set aside after its answer).
    assert_eq!(count(&log, "journal write failed"), 2, "{log}");
    assert!(count(&log, "writes resume") >= 1, "{log}");
}

/// The strace lines (with `-y` paths) that sync `file` after the line
/// where a sync of it was made to fail.
fn syncs_after_failure<'a>(trace: &'a str, file: &str) -> Vec<&'a str> {
    let mut lines = trace.lines().filter(|l| l.contains(file));
    let failed = lines.by_ref().any(|l| l.contains("INJECTED"));
    assert!(failed, "no injected failure on {file}:\n{trace}");
    lines.filter(|l| l.contains("sync(")).collect()
}

const FIRST_JOURNAL: &str = "0000000000000001.journal";

#[test]
fn a_put_answered_unavailable_after_a_failed_sync_never_comes_back() {
    let dir = TestDir::new();
    let trace = dir.root().join("sync.trace");
    let trace_arg = trace.to_str().expect("a UTF-8 temp path");
    // The second data sync fails: the second put's. Only the journal
    // writer thread calls fdatasync, and strace counts per thread.
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-y",
            "-o",
            trace_arg,
            "-e",
            "trace=fdatasync,fsync",
            "-e",
            "inject=fdatasync:error=EIO:when=2",
        ],
        &[],
    );
    let mut conn = traced.connect();
    assert_eq!(put(&mut conn, "kept")["ok"], true);
    let lost = put(&mut conn, "lost");
    assert_eq!(lost["error"]["code"], "unavailable", "{lost}");
    let message = lost["error"]["message"].as_str().expect("a message");
    assert!(message.contains("Input/output error"), "{message}");
    assert!(message.contains(FIRST_JOURNAL), "{message}");
    // Its bytes sit in the page cache of journal 1; the SIGKILL below
    // keeps them there, as a restart after the failure would find them.
    let after = put(&mut conn, "after");
    let got = conn.call(&json!({"op": "get", "id": "lost"}));
    assert_eq!(got["error"]["code"], "not_found", "{got}");
    drop(conn);
    traced.kill_worker();

    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    assert_eq!(
        conn.call(&json!({"op": "get", "id": "lost"}))["error"]["code"],
        "not_found",
        "a put answered unavailable came back after a restart"
    );
    assert_eq!(ids(&mut conn), ["after", "kept"]);
    // Writes resumed at once, in a new journal; journal 1 is gone.
    assert_eq!(after["ok"], true, "{after}");
    assert!(
        !dir.journals().contains(&FIRST_JOURNAL.to_string()),
        "{:?}",
        dir.journals()
    );
    let log = traced.stderr();
    assert_eq!(count(&log, "journal write failed"), 1, "{log}");
    assert_eq!(count(&log, "writes resume"), 1, "{log}");
    // The failed journal was never synced again.
    let calls = std::fs::read_to_string(&trace).expect("read the strace output");
    assert_eq!(
        syncs_after_failure(&calls, FIRST_JOURNAL),
        Vec::<&str>::new()
    );
}

#[test]
fn while_a_failed_write_cannot_be_set_aside_writes_are_refused_and_reads_work() {
    let dir = TestDir::new();
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fdatasync",
            "-e",
            "inject=fdatasync:error=EIO:when=2",
        ],
        &[],
    );
    let mut conn = traced.connect();
    assert_eq!(put(&mut conn, "kept")["ok"], true);
    // A directory where sessions.json goes: every snapshot fails.
    std::fs::create_dir(dir.sessions_json()).expect("block sessions.json");
    let lost = put(&mut conn, "lost");
    assert_eq!(lost["error"]["code"], "unavailable", "{lost}");
    let refused = put(&mut conn, "refused");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().expect("a message");
    for words in [
        "Input/output error",
        "sessions.json",
        "setting it aside failed",
    ] {
        assert!(message.contains(words), "{words:?} in {message}");
    }
    assert_eq!(ids(&mut conn), ["kept"], "reads keep working");
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["writes"], 1, "{stats}");

    // Once a snapshot can be written, a later write sets the failed one
    // aside and goes through.
    std::fs::remove_dir(dir.sessions_json()).expect("unblock sessions.json");
    let answer = harness::wait_until(DEADLINE, "a put to be accepted again", || {
        let a = put(&mut conn, "healed");
        (a["ok"] == true).then_some(a)
    });
    assert_eq!(answer["session"]["id"], "healed");
    drop(conn);
    traced.kill_worker();
    let log = traced.stderr();
    assert!(count(&log, "writes stay refused") >= 1, "{log}");

    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    assert_eq!(ids(&mut conn), ["healed", "kept"]);
}
