//! The real supervisor under a low open-file limit: started with a soft
//! limit of 256 it raises it, so its worker serves 400 clients at once and
//! its control socket holds 400 connections; when it cannot raise it, a
//! control socket out of descriptors is logged at a bounded rate.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;
use support::fdlimit::{self, accept_failure_lines, burst};
use support::supervisor::Supervisor;
use support::{wait_until, TestDir, DEADLINE};

const CLIENTS: usize = 400;

/// `n` connections to the control socket, open and silent.
fn idle_control_connections(dir: &TestDir, n: usize) -> Vec<UnixStream> {
    let sock = dir.data.join("supervisor.sock");
    (0..n)
        .map(|i| {
            let s = UnixStream::connect(&sock)
                .unwrap_or_else(|e| panic!("control connection {i} to {}: {e}", sock.display()));
            s.set_read_timeout(Some(DEADLINE))
                .expect("set a read timeout");
            s
        })
        .collect()
}

#[test]
fn with_a_soft_limit_of_256_the_supervisor_serves_400_clients_and_answers_status() {
    fdlimit::raise_own_limit(8 * CLIENTS as u64);
    let dir = TestDir::new();
    let mut sup = Supervisor::spawn_with(&dir, Some(&support::worker_bin()), &[], |cmd| {
        fdlimit::limit_soft(cmd, 256)
    });
    sup.wait_ready();

    // 400 clients of the worker, all connected at once.
    let clients = burst(&sup.sock(), CLIENTS, "c");
    assert!(clients.other.is_empty(), "{clients:?}");
    assert_eq!(clients.unavailable, 0, "{clients:?}");
    assert_eq!(clients.served.len(), CLIENTS, "{clients:?}");
    let (code, status) = sup.status();
    let status = status.expect("status answers while 400 clients are connected");
    assert_eq!(code, 0, "{status}");
    assert_eq!(status["sessions"]["count"], CLIENTS, "{status}");

    // 400 control connections held open by the supervisor itself: it
    // still accepts one more and answers it.
    let mut control = idle_control_connections(&dir, CLIENTS);
    let (code, status) = sup.status();
    assert_eq!(
        code, 0,
        "status with 400 idle control connections: {status:?}"
    );
    // Then all 400 ask at once.
    for (i, s) in control.iter_mut().enumerate() {
        s.write_all(b"{\"op\":\"status\"}\n")
            .unwrap_or_else(|e| panic!("control connection {i}: send: {e}"));
    }
    let mut with_count = 0;
    for (i, s) in control.into_iter().enumerate() {
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("control connection {i}: no answer: {e}"));
        let answer: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("control connection {i}: not JSON ({e}): {line:?}"));
        assert_eq!(answer["worker"]["state"], "ready", "{i}: {answer}");
        with_count += usize::from(answer["sessions"]["count"] == CLIENTS);
    }
    // Each status asks the worker for its count on a connection of its own,
    // with a one-second limit; a busy moment may leave a few without it.
    eprintln!("{with_count} of {CLIENTS} concurrent status answers had the session count");
    assert!(with_count > 0, "no status answer had the session count");

    drop(clients);
    let status = sup.wait_worker("the sessions counted after the clients left", |s| {
        s["sessions"]["count"] == CLIENTS
    });
    assert_eq!(status["worker"]["restarts"], 0, "{status}");
    let log = sup.log_text("supervisor");
    assert!(
        log.lines()
            .any(|l| l.contains("open-file limit") && l.contains("was=256")),
        "the supervisor logs the limit it raised:\n{log}"
    );
    assert!(accept_failure_lines(&log).is_empty(), "{log}");
}

#[test]
fn a_control_socket_out_of_descriptors_is_logged_at_a_bounded_rate() {
    fdlimit::raise_own_limit(4 * CLIENTS as u64);
    let dir = TestDir::new();
    let mut sup = Supervisor::spawn_with(&dir, Some(&support::worker_bin()), &[], |cmd| {
        fdlimit::limit_hard(cmd, 256)
    });
    sup.wait_ready();

    // More silent control connections than the supervisor has descriptors
    // for (the control socket has no connection cap): accept fails with
    // EMFILE every 20 ms while they stay open.
    let idle = idle_control_connections(&dir, 300);
    let lines = wait_until(DEADLINE, "a second accept-failure line", || {
        let log = sup.log_text("supervisor");
        let lines: Vec<String> = accept_failure_lines(&log)
            .into_iter()
            .map(String::from)
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    // The first failure at once, the next line 10 s later with the count
    // of the ~500 failures in between.
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("Too many open files"), "{}", lines[0]);
    let left_out: u64 = lines[1]
        .split("failed_since=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed_since count: {}", lines[1]));
    assert!(left_out >= 100, "{left_out} failures in 10 s: {}", lines[1]);

    // Once the connections close, it answers again.
    drop(idle);
    let status = sup.wait_ready();
    assert_eq!(status["worker"]["state"], "ready");
}
