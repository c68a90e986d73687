//! Syncs on volumes that reject the preferred method, forced for real with
//! strace in the worker binary.
//!
//! On macOS the worker steps down from F_FULLFSYNC to F_BARRIERFSYNC to
//! fsync when a volume (SMB, exFAT, …) rejects the stronger call. Its Linux
//! twin steps down from fdatasync to fsync the same way, and that is what
//! these tests force: strace exists on Linux only. (The decision itself,
//! which errno moves on and which does not, is unit-tested in
//! `shared/src/sync/tests.rs` on every platform.)
#![cfg(target_os = "linux")]

mod support;

use serde_json::json;
use support::TestDir;

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
    assert_eq!(count(&log, "journal write failed"), 1, "{log}");
}
