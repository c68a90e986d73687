//! The store's health under the supervisor: a worker started through a
//! wrapper that runs it under strace, which makes its journal syncs and
//! writes fail for real. `supervisor status` exits 1 and shows the store
//! degraded with the error while the fault lasts, then 0 and ok once the
//! worker has repaired it by itself; the supervisor logs each change once.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::heal::traced_worker_script;
use harness::supervisor::{status_of, supervisor_cmd, worker_pid, Supervisor};
use harness::{ids, put_id as put, wait_until, Conn, TestDir, DEADLINE};
use serde_json::{json, Value};

/// Writes `dir/traced-worker`: `strace … worker "$@"` with `inject`.
fn wrapper(dir: &TestDir, inject: &[&str]) -> PathBuf {
    traced_worker_script(dir.root(), inject)
}

/// `supervisor status` for a person: (exit code, what it printed).
fn human_status(data: &Path) -> (i32, String) {
    let out = supervisor_cmd(data, &["status"]).output().unwrap();
    (
        out.status.code().expect("status exits normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Lines of `text` that contain `needle`.
fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until `status --json` shows the store degraded (exit 1, worker
/// ready); returns the status.
fn wait_degraded(sup: &Supervisor) -> Value {
    wait_until(DEADLINE, "status to show the store degraded", || {
        let (code, status) = status_of(&sup.data);
        let status = status?;
        if status["store"]["state"] != "degraded" {
            return None;
        }
        assert_eq!(code, 1, "exit status while degraded: {status}");
        assert_eq!(status["worker"]["state"], "ready", "{status}");
        Some(status)
    })
}

#[test]
fn status_shows_a_degraded_store_until_the_worker_heals_it() {
    let dir = TestDir::new();
    // The third put's sync fails; so do the first three attempts to start
    // a new journal (at once, +1 s, +2 s); the fourth (+4 s) works.
    let wrapper = wrapper(
        &dir,
        &[
            "inject=fdatasync:error=EIO:when=3",
            "inject=pwrite64:error=EIO:when=4..6",
        ],
    );
    let mut sup = Supervisor::start_with(&dir, &wrapper, &[]);
    let ready = sup.wait_ready();
    assert_eq!(ready["store"]["state"], "ok", "{ready}");
    assert!(ready["store"]["last_error"].is_null(), "{ready}");
    assert!(ready["store"]["since"].is_string(), "{ready}");

    let mut conn = Conn::connect(&sup.sock());
    let mut acked = Vec::new();
    for id in ["a0", "a1"] {
        assert_eq!(put(&mut conn, id)["ok"], true);
        acked.push(id.to_string());
    }
    let failed_at = Instant::now();
    let lost = put(&mut conn, "lost");
    assert_eq!(lost["error"]["code"], "unavailable", "{lost}");

    let status = wait_degraded(&sup);
    let store = &status["store"];
    let why = store["last_error"].as_str().expect("the error");
    assert!(why.contains("Input/output error"), "{why}");
    assert!(store["since"].is_string(), "{store}");
    let (code, text) = human_status(&sup.data);
    assert_eq!(code, 1, "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("store"))
        .unwrap_or_else(|| panic!("no store line:\n{text}"));
    assert!(line.contains("DEGRADED"), "{text}");
    assert!(line.contains("Input/output error"), "{text}");
    // Reads work, writes are refused with the reason.
    assert_eq!(ids(&mut conn), acked);
    let refused = put(&mut conn, "refused");
    assert_eq!(refused["error"]["code"], "unavailable", "{refused}");

    // Healed without a write and without a restart.
    let healed = sup.wait_worker("the store to heal", |s| s["store"]["state"] == "ok");
    let degraded_for = failed_at.elapsed();
    eprintln!("under the supervisor: degraded for {degraded_for:?}");
    assert!(healed["store"]["last_error"].is_null(), "{healed}");
    assert_eq!(worker_pid(&healed), worker_pid(&status), "no restart");
    let (code, text) = human_status(&sup.data);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("store") && l.ends_with(" ok")),
        "{text}"
    );
    for i in 0..5 {
        let id = format!("c{i}");
        assert_eq!(put(&mut conn, &id)["ok"], true);
        acked.push(id);
    }

    // One log line per change of state.
    let log = sup.log_text("supervisor");
    assert_eq!(count(&log, "store degraded"), 1, "{log}");
    assert_eq!(count(&log, "store ok again"), 1, "{log}");

    // Every acknowledged write survives a SIGKILL of the worker itself.
    let pid = conn.call(&json!({"op": "ping"}))["pid"].as_u64().unwrap();
    drop(conn);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL the worker");
    let old = worker_pid(&healed);
    sup.wait_worker("a new worker", |s| {
        s["worker"]["pid"] != old && s["store"]["state"] == "ok"
    });
    let mut conn = Conn::connect(&sup.sock());
    acked.sort();
    assert_eq!(ids(&mut conn), acked);
}

#[test]
fn status_exits_1_for_as_long_as_a_fault_lasts() {
    let dir = TestDir::new();
    // From the third put on, every data sync and every journal write fails.
    let wrapper = wrapper(
        &dir,
        &[
            "inject=fdatasync:error=EIO:when=3+",
            "inject=pwrite64:error=EIO:when=4+",
        ],
    );
    let mut sup = Supervisor::start_with(&dir, &wrapper, &[]);
    sup.wait_ready();
    let mut conn = Conn::connect(&sup.sock());
    for id in ["a0", "a1"] {
        assert_eq!(put(&mut conn, id)["ok"], true);
    }
    assert_eq!(put(&mut conn, "lost")["error"]["code"], "unavailable");
    let first = wait_degraded(&sup);
    // Past three more failed repairs (1 + 2 + 4 s), status keeps saying so.
    let until = Instant::now() + Duration::from_secs(8);
    wait_until(DEADLINE, "several failed repairs", || {
        let (code, status) = status_of(&sup.data);
        let status = status.expect("status answers");
        assert_eq!(code, 1, "{status}");
        assert_eq!(status["store"]["state"], "degraded", "{status}");
        assert_eq!(
            status["store"]["since"], first["store"]["since"],
            "{status}"
        );
        let why = status["store"]["last_error"].as_str().unwrap();
        assert!(why.contains("Input/output error"), "{why}");
        assert_eq!(ids(&mut conn), ["a0", "a1"], "reads work");
        (Instant::now() >= until).then_some(())
    });
    let log = sup.log_text("supervisor");
    assert_eq!(count(&log, "store degraded"), 1, "{log}");
    assert_eq!(count(&log, "store ok again"), 0, "{log}");
}
