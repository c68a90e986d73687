//! Storage faults heal without a restart, forced for real with strace in
//! the worker binary: the failing request gets `unavailable`, `ping` and
//! `stats` show the store `degraded` with the reason, reads keep working,
//! and the worker repairs the fault by itself (its own timer, no write
//! needed), after which writes are taken again. Every acknowledged write
//! survives a SIGKILL.
//!
//! strace counts `when=N` per syscall and per thread. Only the journal
//! writer thread writes (`pwrite64`) and syncs (`fdatasync`) the journal
//! and starts new journals; the start-up thread writes the first journal
//! (two `pwrite64`) and the checkpoint thread writes `sessions.json` with
//! `write`. So `pwrite64` call 3 is the third put's batch, and call 4 is
//! the header of the journal that the first attempt to heal starts.
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::strace::Straced;
use support::{wait_until, Conn, TestDir};

/// "Within a few seconds": a passing fault whose first two repairs fail
/// is repaired by the third, 1 + 2 s after the failure.
const HEAL_WITHIN: Duration = Duration::from_secs(10);

/// Lines of `text` that contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

fn put(conn: &mut Conn, id: &str) -> Value {
    conn.call(&json!({"op": "put", "id": id, "data": {"id": id, "pad": "x".repeat(400)}}))
}

/// The ids a worker serves, sorted.
fn ids(conn: &mut Conn) -> Vec<String> {
    let list = conn.call(&json!({"op": "list"}));
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .collect()
}

/// The store health in a `ping` answer.
fn health(conn: &mut Conn) -> Value {
    let ping = conn.call(&json!({"op": "ping"}));
    assert_eq!(ping["ok"], true, "{ping}");
    ping["store"].clone()
}

/// Starts a worker under strace with `inject` (strace `-e` arguments).
fn traced(dir: &TestDir, trace: &std::path::Path, inject: &[&str], args: &[&str]) -> Straced {
    let trace_arg = trace.to_str().expect("a UTF-8 temp path");
    let mut options = vec![
        "-f",
        "-qq",
        "-y",
        "-o",
        trace_arg,
        "-e",
        "trace=fdatasync,fsync,pwrite64,rename",
    ];
    for i in inject {
        options.extend(["-e", i]);
    }
    dir.start_under_strace(&options, args)
}

/// Asserts that a restarted worker serves exactly `acked`, and perhaps
/// `unsettled`: a write answered `unavailable` whose failed batch was
/// never set aside (the repair never succeeded), which a restart may find
/// whole in the journal and replay (heal.rs).
fn restart_serves(dir: &TestDir, acked: &[String], unsettled: Option<&str>) {
    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    let mut served = ids(&mut conn);
    if let Some(id) = unsettled {
        served.retain(|s| s != id);
    }
    let mut want = acked.to_vec();
    want.sort();
    assert_eq!(served, want, "the acknowledged writes after SIGKILL");
    assert_eq!(health(&mut conn)["state"], "ok");
}

/// One passing fault: the third put fails with `error`; the first two
/// attempts to heal fail too (the disk is still failing), the third
/// succeeds. Returns how long the store was degraded.
fn a_passing_fault_heals(inject: &[&str], error: &str) -> Duration {
    let dir = TestDir::new();
    let trace = dir.root().join("heal.trace");
    let mut traced = traced(&dir, &trace, inject, &[]);
    let mut conn = traced.connect();
    let before = health(&mut conn);
    assert_eq!(before["state"], "ok", "{before}");
    assert!(before["last_error"].is_null(), "{before}");

    let mut acked: Vec<String> = Vec::new();
    for id in ["a0", "a1"] {
        let a = put(&mut conn, id);
        assert_eq!(a["ok"], true, "{a}");
        acked.push(id.into());
    }
    let failed_at = Instant::now();
    let lost = put(&mut conn, "lost");
    assert_eq!(lost["error"]["code"], "unavailable", "{lost}");
    assert!(
        lost["error"]["message"].as_str().unwrap().contains(error),
        "{lost}"
    );

    // Degraded, with the reason, and it stays so while repairs fail.
    let degraded = health(&mut conn);
    assert_eq!(degraded["state"], "degraded", "{degraded}");
    let why = degraded["last_error"].as_str().expect("a reason");
    assert!(why.contains(error), "{why}");
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["store"]["state"], "degraded", "{stats}");
    let refused = put(&mut conn, "refused");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(error),
        "{refused}"
    );
    // Reads keep working.
    assert_eq!(ids(&mut conn), acked);
    let got = conn.call(&json!({"op": "get", "id": "a0"}));
    assert_eq!(got["session"]["id"], "a0", "{got}");

    // Healed by the worker's own timer: nothing is written meanwhile.
    let healed = wait_until(HEAL_WITHIN, "the store to heal by itself", || {
        let h = health(&mut conn);
        (h["state"] == "ok").then_some(h)
    });
    let degraded_for = failed_at.elapsed();
    assert!(healed["last_error"].is_null(), "{healed}");
    assert!(
        healed["since"].as_str() > degraded["since"].as_str(),
        "{healed} after {degraded}"
    );

    // Writes are taken again, without a restart.
    for i in 0..5 {
        let id = format!("c{i}");
        let a = put(&mut conn, &id);
        assert_eq!(a["ok"], true, "{a}");
        acked.push(id);
    }
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["store"]["state"], "ok", "{stats}");
    assert_eq!(stats["writes"], acked.len(), "{stats}");
    drop(conn);
    traced.kill_worker();

    let log = traced.stderr();
    assert_eq!(count(&log, "store degraded"), 1, "{log}");
    assert_eq!(count(&log, "store ok"), 1, "{log}");
    assert_eq!(count(&log, "writes stay refused"), 2, "{log}");
    assert_eq!(count(&log, "writes resume"), 1, "{log}");
    // The journal whose append failed was never synced again.
    let calls = std::fs::read_to_string(&trace).expect("read the strace output");
    let mut first = calls.lines().filter(|l| l.contains(FIRST_JOURNAL));
    assert!(first.by_ref().any(|l| l.contains("INJECTED")), "{calls}");
    let synced: Vec<&str> = first.filter(|l| l.contains("sync(")).collect();
    assert_eq!(synced, Vec::<&str>::new());

    restart_serves(&dir, &acked, None);
    degraded_for
}

const FIRST_JOURNAL: &str = "0000000000000001.journal";

#[test]
fn a_failed_fdatasync_heals_without_a_restart() {
    let took = a_passing_fault_heals(
        &[
            "inject=fdatasync:error=EIO:when=3",
            // The first two new journals cannot be written either.
            "inject=pwrite64:error=EIO:when=4..5",
        ],
        "Input/output error",
    );
    eprintln!("fdatasync EIO: degraded for {took:?}");
}

#[test]
fn a_journal_write_without_space_heals_without_a_restart() {
    let took = a_passing_fault_heals(
        &["inject=pwrite64:error=ENOSPC:when=3..5"],
        "No space left on device",
    );
    eprintln!("pwrite64 ENOSPC: degraded for {took:?}");
}

#[test]
fn a_failed_journal_write_heals_without_a_restart() {
    let took = a_passing_fault_heals(
        &["inject=pwrite64:error=EIO:when=3..5"],
        "Input/output error",
    );
    eprintln!("pwrite64 EIO: degraded for {took:?}");
}

/// The times between attempts the worker logged, in ms.
fn retry_waits(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("writes stay refused"))
        .filter_map(|l| {
            let at = l.find("retry_in_ms=")? + "retry_in_ms=".len();
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn a_persistent_fault_stays_degraded_with_its_reason_and_reads_work() {
    let dir = TestDir::new();
    let trace = dir.root().join("persistent.trace");
    // Every data sync from the 20th on fails, and so does every journal
    // write after it: no repair can succeed.
    let mut traced = traced(
        &dir,
        &trace,
        &[
            "inject=fdatasync:error=EIO:when=20+",
            "inject=pwrite64:error=EIO:when=21+",
        ],
        &[],
    );
    let mut conn = traced.connect();
    let mut acked = Vec::new();
    for i in 1..20 {
        let id = format!("s{i:02}");
        let a = put(&mut conn, &id);
        assert_eq!(a["ok"], true, "{a}");
        acked.push(id);
    }
    let lost = put(&mut conn, "s20");
    assert_eq!(lost["error"]["code"], "unavailable", "{lost}");
    let first = health(&mut conn);
    assert_eq!(first["state"], "degraded", "{first}");

    // For as long as it lasts (three more failed repairs, 1 + 2 + 4 s):
    // degraded since the failure, the error named, reads served, writes
    // refused with the reason.
    wait_until(HEAL_WITHIN * 2, "three more failed repairs", || {
        let h = health(&mut conn);
        assert_eq!(h["state"], "degraded", "{h}");
        assert_eq!(h["since"], first["since"], "{h}");
        let why = h["last_error"].as_str().expect("a reason");
        assert!(why.contains("Input/output error"), "{why}");
        assert!(why.contains("writes are refused"), "{why}");
        assert_eq!(ids(&mut conn), acked);
        let stats = conn.call(&json!({"op": "stats"}));
        assert_eq!(stats["store"]["state"], "degraded", "{stats}");
        assert_eq!(stats["store"]["since"], first["since"], "{stats}");
        (retry_waits(&traced.stderr()).len() >= 4).then_some(())
    });
    let refused = put(&mut conn, "refused");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("Input/output error"), "{message}");
    // Capped backoff: each wait doubles.
    assert_eq!(retry_waits(&traced.stderr())[..4], [1000, 2000, 4000, 8000]);
    drop(conn);
    traced.kill_worker();
    restart_serves(&dir, &acked, Some("s20"));
}

/// Puts `n` sessions with a plain worker, then stops it with SIGTERM
/// (its final snapshot leaves an empty journal: a start that follows
/// renames nothing).
fn populated(dir: &TestDir, n: usize) -> Vec<String> {
    let mut worker = dir.start(&[]);
    let mut conn = worker.connect();
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    for id in &ids {
        assert_eq!(put(&mut conn, id)["ok"], true);
    }
    drop(conn);
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(worker.wait_exit(support::DEADLINE).success());
    ids
}

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
    let degraded = wait_until(support::DEADLINE, "a compaction to fail", || {
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
    let degraded = wait_until(support::DEADLINE, "the failed journal start", || {
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
