//! Helpers of the store-healing tests (`worker_heal*.rs`,
//! `supervisor_heal.rs`, `doctor.rs`): puts, the health in `ping`, a worker
//! under strace (run directly, or by a supervisor through a wrapper
//! script), and the check that a restart serves exactly the acknowledged
//! writes.

use std::time::Duration;

use serde_json::{json, Value};

use super::strace::{require_strace, Straced};
use super::{worker_bin, Conn, TestDir};

/// "Within a few seconds": a passing fault whose first two repairs fail
/// is repaired by the third, 1 + 2 s after the failure.
pub const HEAL_WITHIN: Duration = Duration::from_secs(10);

/// Lines of `text` that contain `needle`.
pub fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

pub fn put(conn: &mut Conn, id: &str) -> Value {
    conn.call(&json!({"op": "put", "id": id, "data": {"id": id, "pad": "x".repeat(400)}}))
}

pub use super::ids;

/// The store health in a `ping` answer.
pub fn health(conn: &mut Conn) -> Value {
    let ping = conn.call(&json!({"op": "ping"}));
    assert_eq!(ping["ok"], true, "{ping}");
    ping["store"].clone()
}

/// Starts a worker under strace with `inject` (strace `-e` arguments).
pub fn traced(dir: &TestDir, trace: &std::path::Path, inject: &[&str], args: &[&str]) -> Straced {
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
pub fn restart_serves(dir: &TestDir, acked: &[String], unsettled: Option<&str>) {
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

/// Puts `n` sessions with a plain worker, then stops it with SIGTERM
/// (its final snapshot leaves an empty journal: a start that follows
/// renames nothing).
pub fn populated(dir: &TestDir, n: usize) -> Vec<String> {
    let mut worker = dir.start(&[]);
    let mut conn = worker.connect();
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    for id in &ids {
        assert_eq!(put(&mut conn, id)["ok"], true);
    }
    drop(conn);
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(worker.wait_exit(super::DEADLINE).success());
    ids
}

/// Writes `dir/traced-worker`, a script that runs the worker under strace
/// with `inject` (strace `inject=` arguments): a supervisor started with
/// `--worker-bin` on it runs a worker whose system calls fail for real.
pub fn traced_worker_script(dir: &std::path::Path, inject: &[&str]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    require_strace();
    let path = dir.join("traced-worker");
    let mut script = String::from("#!/bin/sh\nexec strace -f -qq -o /dev/null");
    script.push_str(" -e trace=fdatasync,pwrite64");
    for i in inject {
        script.push_str(&format!(" -e {i}"));
    }
    script.push_str(&format!(" '{}' \"$@\"\n", worker_bin().display()));
    std::fs::write(&path, script).expect("write the wrapper");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the wrapper executable");
    path
}
