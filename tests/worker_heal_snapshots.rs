//! Failed snapshots and compactions heal without a restart, forced for
//! real with strace in the worker binary: writes go on meanwhile (the
//! journal holds them), `ping` shows the store `degraded` with the reason,
//! each failed attempt warns once (not at every commit), and the worker's
//! own timer tries again until a snapshot succeeds. A journal left behind
//! by a failed start is skipped, never fatal ("File exists"). (One test
//! blocks sessions.json with a directory instead: a fault that lasts
//! exactly as long as the test wants.)
//!
//! strace counts `when=N` per syscall and per thread: the journal writer
//! thread starts journals (a rename each), the checkpoint thread writes
//! snapshots (a rename each, then unlinks and a directory sync).
#![cfg(target_os = "linux")]

use harness::heal::{count, health, ids, populated, put, restart_serves, traced, HEAL_WITHIN};
use harness::{wait_until, TestDir};
use serde_json::json;

#[test]
fn failed_compactions_heal_and_writes_go_on_meanwhile() {
    let dir = TestDir::new();
    let mut acked = populated(&dir, 3);
    let trace = dir.root().join("compaction.trace");
    // The first rename of each thread fails: the writer's starts the
    // journal for the first compaction, the checkpoint thread's replaces
    // sessions.json in the first snapshot (the retry's).
    let mut traced = traced(
        &dir,
        &trace,
        &["inject=rename:error=EIO:when=1"],
        &["--compact-min-bytes", "4096"],
    );
    let mut conn = traced.connect();
    // Writes until a compaction is due and fails: each is still taken.
    let degraded = wait_until(harness::DEADLINE, "a compaction to fail", || {
        let id = format!("w{}", acked.len());
        let a = put(&mut conn, &id);
        assert_eq!(a["ok"], true, "a write while snapshots fail: {a}");
        acked.push(id);
        let h = health(&mut conn);
        (h["state"] == "degraded").then_some(h)
    });
    let why = degraded["last_error"].as_str().expect("a reason");
    for words in [
        "cannot start a new journal",
        "Input/output error",
        "writes are still accepted",
    ] {
        assert!(why.contains(words), "{words:?} in {why}");
    }
    // More commits while it is degraded: still taken, and no warning each.
    for i in 0..20 {
        let id = format!("d{i}");
        assert_eq!(put(&mut conn, &id)["ok"], true);
        acked.push(id);
    }
    assert_eq!(ids(&mut conn).len(), acked.len());
    // Healed by the timer, with no write to trigger it.
    wait_until(HEAL_WITHIN, "the snapshots to work again", || {
        (health(&mut conn)["state"] == "ok").then_some(())
    });
    let stats = conn.call(&json!({"op": "stats"}));
    assert!(stats["checkpoints"].as_u64() >= Some(1), "{stats}");
    drop(conn);
    traced.kill_worker();

    let log = traced.stderr();
    // One warning per failed attempt (the journal start, the snapshot of
    // the retry), not one per commit; "File exists" never.
    assert_eq!(count(&log, "snapshots fail"), 2, "{log}");
    assert_eq!(count(&log, "store degraded"), 1, "{log}");
    assert_eq!(count(&log, "store ok"), 1, "{log}");
    assert_eq!(count(&log, "exists"), 0, "{log}");
    // The snapshot that healed covers the older journals, now deleted.
    assert!(dir.journals().len() <= 2, "{:?}", dir.journals());
    restart_serves(&dir, &acked, None);
}

#[test]
fn a_journal_left_by_a_failed_start_is_skipped_and_snapshots_heal() {
    let dir = TestDir::new();
    let mut acked = populated(&dir, 2);
    let journals = dir.journals();
    assert_eq!(journals.len(), 1, "{journals:?}");
    let current =
        u64::from_str_radix(journals[0].trim_end_matches(".journal"), 16).expect("a journal name");
    let next = format!("{:016x}.journal", current + 1);
    let journal_dir = dir.journal_dir();
    let next_path = journal_dir.join(&next);
    let trace = dir.root().join("leftover.trace");
    // Only calls on the journal directory and the next journal are
    // traced: the directory sync after the next journal's rename fails,
    // and so does the unlink that would take that journal back. It stays.
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-y",
            "-o",
            trace.to_str().expect("a UTF-8 temp path"),
            "-P",
            journal_dir.to_str().expect("a UTF-8 temp path"),
            "-P",
            next_path.to_str().expect("a UTF-8 temp path"),
            "-e",
            "trace=fsync,unlink,rename",
            "-e",
            "inject=fsync:error=EIO:when=1",
            "-e",
            "inject=unlink:error=EIO:when=1",
        ],
        &[],
    );
    let mut conn = traced.connect();
    assert_eq!(put(&mut conn, "new")["ok"], true);
    acked.push("new".into());
    // SIGUSR1: a snapshot, which starts the next journal first.
    let pid = traced.pid.expect("the worker's pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .expect("SIGUSR1 the worker");
    let degraded = wait_until(harness::DEADLINE, "the failed journal start", || {
        let h = health(&mut conn);
        (h["state"] == "degraded").then_some(h)
    });
    assert!(
        degraded["last_error"]
            .as_str()
            .unwrap()
            .contains("Input/output error"),
        "{degraded}"
    );
    assert!(next_path.exists(), "the journal the failed start left");
    wait_until(HEAL_WITHIN, "the snapshots to work again", || {
        (health(&mut conn)["state"] == "ok").then_some(())
    });
    assert_eq!(put(&mut conn, "after")["ok"], true);
    acked.push("after".into());
    drop(conn);
    traced.kill_worker();
    let log = traced.stderr();
    assert_eq!(count(&log, "skipping a journal generation"), 1, "{log}");
    // strace counts per thread: the checkpoint thread's first sync of the
    // journal directory and its first unlink there (of the skipped
    // journal, once a snapshot covers it) fail too. Each failed attempt
    // warns once.
    assert_eq!(count(&log, "snapshots fail"), 3, "{log}");
    assert!(!next_path.exists(), "a snapshot covers the skipped journal");
    restart_serves(&dir, &acked, None);
}

#[test]
fn a_blocked_snapshot_warns_once_per_attempt_not_at_every_commit() {
    let dir = TestDir::new();
    let mut worker = dir.start(&["--compact-min-bytes", "4096"]);
    let mut conn = worker.connect();
    // A directory where sessions.json goes: every snapshot fails until
    // it is removed.
    std::fs::create_dir(dir.sessions_json()).expect("block sessions.json");
    let started = std::time::Instant::now();
    let mut acked = Vec::new();
    // ~120 KB of writes: a compaction would be due every few commits.
    for i in 0..60 {
        let id = format!("b{i:02}");
        let data = json!({"pad": "y".repeat(2000)});
        let a = conn.call(&json!({"op": "put", "id": id, "data": data}));
        assert_eq!(a["ok"], true, "a write while snapshots fail: {a}");
        acked.push(id);
    }
    let h = health(&mut conn);
    assert_eq!(h["state"], "degraded", "{h}");
    assert!(
        h["last_error"].as_str().unwrap().contains("sessions.json"),
        "{h}"
    );
    // Attempts come 1, 2, 4 … s apart, whatever the number of commits.
    let attempts_possible = 1 + (started.elapsed().as_secs_f64() + 1.0).log2().ceil() as usize;
    let warned = count(&worker.stderr(), "snapshots fail");
    assert!(
        (1..=attempts_possible).contains(&warned),
        "{warned} warnings in {:?}:\n{}",
        started.elapsed(),
        worker.stderr()
    );
    std::fs::remove_dir(dir.sessions_json()).expect("unblock sessions.json");
    wait_until(harness::DEADLINE, "the snapshots to work again", || {
        (health(&mut conn)["state"] == "ok").then_some(())
    });
    assert!(dir.sessions_json().is_file());
    drop(conn);
    worker.kill();
    restart_serves(&dir, &acked, None);
}
