//! A worker run by hand never takes a socket that is in use: not the
//! supervisor's while its worker is between restarts, not one that
//! anything accepts connections on. Real processes and real sockets.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use harness::supervisor::{status_of, supervisor_cmd, worker_pid, Supervisor};
use harness::{wait_until, Conn, TestDir, DEADLINE};
use nix::sys::signal::Signal;
use serde_json::json;

fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn a_worker_run_by_hand_while_the_supervisors_worker_backs_off_refuses() {
    let dir = TestDir::new();
    // The supervisor's worker fails while `fail` exists.
    let fail = dir.root().join("fail");
    fs::write(&fail, "").unwrap();
    let flaky = dir.root().join("flaky-worker");
    fs::write(
        &flaky,
        format!(
            "#!/bin/sh\nif [ -e {} ]; then echo 'failing on purpose' >&2; exit 1; fi\nexec {} \"$@\"\n",
            fail.display(),
            harness::worker_bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&flaky, fs::Permissions::from_mode(0o755)).unwrap();
    let mut sup = Supervisor::start_with(&dir, &flaky, &["--backoff-max-ms", "60000"]);
    let supervisor_pid = wait_until(DEADLINE, "the supervisor backing off", || {
        assert!(sup.try_exit().is_none(), "the supervisor exited");
        let (code, s) = status_of(&dir.data);
        let s = s?;
        assert_eq!(code, 1, "{s}");
        (s["worker"]["state"] == "backoff" && s["worker"]["restarts"].as_u64()? >= 2)
            .then(|| s["supervisor"]["pid"].as_u64().unwrap())
    });
    assert!(is_socket(&dir.sock()), "the supervisor's socket is there");

    // By hand, on the same data dir: refused, the socket left alone.
    let (status, stderr) = dir.run_to_exit(&[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    for words in [
        "a supervisor".to_string(),
        format!("pid {supervisor_pid}"),
        dir.sock().display().to_string(),
    ] {
        assert!(stderr.contains(&words), "{words:?} missing from {stderr}");
    }
    assert!(
        is_socket(&dir.sock()),
        "the worker run by hand removed the socket"
    );

    // The supervisor's worker gets going: clients reach it by path.
    fs::remove_file(&fail).unwrap();
    let out = supervisor_cmd(&dir.data, &["restart"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let s = sup.wait_ready();
    let answer = Conn::connect(&dir.sock()).call(&json!({"op": "ping"}));
    assert_eq!(answer["pid"], worker_pid(&s), "{answer}");
}

#[test]
fn a_socket_that_accepts_connections_is_not_stale() {
    let dir = TestDir::new();
    // Something listens on the path (no supervisor): refused.
    let other = UnixListener::bind(dir.sock()).unwrap();
    let (status, stderr) = dir.run_to_exit(&[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("accepts connections"), "{stderr}");
    assert!(stderr.contains(dir.sock().to_str().unwrap()), "{stderr}");
    assert!(is_socket(&dir.sock()));
    // Closed, the file left behind is stale: the worker serves there.
    drop(other);
    let mut w = dir.start(&[]);
    assert_eq!(w.call(&json!({"op": "ping"}))["pid"], w.pid());
    // Someone replaces the socket meanwhile: at its exit the worker
    // leaves the new one alone.
    fs::remove_file(dir.sock()).unwrap();
    let replaced = UnixListener::bind(dir.sock()).unwrap();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(DEADLINE).code(), Some(0), "{}", w.stderr());
    assert!(
        is_socket(&dir.sock()),
        "the worker removed a socket not its own"
    );
    drop(replaced);
    // Its own socket it removes.
    fs::remove_file(dir.sock()).unwrap();
    let mut w = dir.start(&[]);
    w.signal(Signal::SIGTERM);
    assert_eq!(w.wait_exit(DEADLINE).code(), Some(0));
    assert!(!dir.sock().exists());
}
