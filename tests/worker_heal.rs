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

use std::time::{Duration, Instant};

use harness::heal::{count, health, ids, put, restart_serves, traced, HEAL_WITHIN};
use harness::{wait_until, TestDir};
use serde_json::json;

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
