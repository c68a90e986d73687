//! The real supervisor under a low open-file limit: started with a soft
//! limit of 256 it raises it, so its worker serves 400 clients at once and
//! its control socket holds 400 connections. When it cannot raise it, 300
//! idle control connections still leave it the descriptors to replace a
//! killed worker, and `status` answers. A silent control connection is
//! closed after the read deadline; a control socket out of descriptors
//! (EMFILE injected with strace) is logged at a bounded rate.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use harness::fdlimit::{self, accept_failure_lines, burst};
use harness::supervisor::{worker_pid, Supervisor};
use harness::{wait_until, TestDir, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

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
    let mut sup = Supervisor::spawn_with(&dir, Some(&harness::worker_bin()), &[], |cmd| {
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

/// How many of `streams` the supervisor has closed (EOF, a reset, or an
/// answer it sends before closing), without waiting.
fn closed_by_supervisor(streams: &[UnixStream]) -> usize {
    streams
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).expect("set non-blocking");
            let mut byte = [0u8; 1];
            let closed = match (&mut &**s).read(&mut byte) {
                Ok(_) => true,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            s.set_nonblocking(false).expect("set blocking");
            closed
        })
        .count()
}

#[test]
fn with_256_files_300_idle_control_connections_leave_room_to_replace_a_killed_worker() {
    const IDLE: usize = 300;
    fdlimit::raise_own_limit(4 * IDLE as u64);
    let dir = TestDir::new();
    // Soft and hard limit 256: the supervisor cannot raise it.
    let mut sup = Supervisor::spawn_with(&dir, Some(&harness::worker_bin()), &[], |cmd| {
        fdlimit::limit_hard(cmd, 256)
    });
    let first = worker_pid(&sup.wait_ready());
    let cap = supervisor::control::slots::connection_cap(256);

    let idle = idle_control_connections(&dir, IDLE);
    // Until the supervisor has taken all of them it will: the oldest
    // beyond its cap closed (or, were there no cap, accept failing).
    wait_until(DEADLINE, "the idle control connections taken", || {
        let failing = !accept_failure_lines(&sup.log_text("supervisor")).is_empty();
        (failing || closed_by_supervisor(&idle) >= IDLE - cap).then_some(())
    });

    kill(Pid::from_raw(first as i32), Signal::SIGKILL).expect("kill the worker");
    let killed = Instant::now();
    let status = wait_until(Duration::from_secs(5), "a new worker ready", || {
        let (code, status) = sup.status();
        let status = status?;
        let replaced = code == 0 && status["worker"]["pid"].as_u64() != Some(u64::from(first));
        replaced.then_some(status)
    });
    eprintln!(
        "a new worker was ready {:?} after the kill, with {IDLE} idle control connections",
        killed.elapsed()
    );
    assert_eq!(status["worker"]["state"], "ready", "{status}");
    assert_eq!(status["worker"]["restarts"], 1, "{status}");
    let last_exit = status["worker"]["last_exit"].as_str().unwrap_or_default();
    assert!(last_exit.contains("SIGKILL"), "{status}");
    let (code, status) = sup.status();
    assert_eq!(code, 0, "status answers: {status:?}");
    let log = sup.log_text("supervisor");
    assert!(accept_failure_lines(&log).is_empty(), "{log}");
    assert!(
        log.contains(&format!("holds at most {cap} connections at once")),
        "the supervisor logs its lowered cap:\n{log}"
    );
    drop(idle);
}

#[test]
fn a_control_connection_that_sends_nothing_is_closed_after_the_read_deadline() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &["--control-timeout-ms", "1000"]);
    sup.wait_ready();
    let sock = dir.data.join("supervisor.sock");
    for (what, sent) in [("nothing", &b""[..]), ("half a request", b"{\"op\":\"sta")] {
        let mut s = UnixStream::connect(&sock).expect("connect to the control socket");
        s.set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        s.write_all(sent).expect("send");
        let mut answer = Vec::new();
        let n = s
            .read_to_end(&mut answer)
            .unwrap_or_else(|e| panic!("sent {what}: closed, not a read timeout: {e}"));
        assert_eq!(n, 0, "sent {what}: {}", String::from_utf8_lossy(&answer));
    }
    // A client that asks at once is answered.
    let (code, status) = sup.status();
    assert_eq!(code, 0, "{status:?}");
}

/// Fault injection with strace (Linux): the control socket's accept fails
/// with EMFILE 150 times in a row, as it would out of descriptors.
#[cfg(target_os = "linux")]
#[test]
fn a_control_socket_out_of_descriptors_is_logged_at_a_bounded_rate() {
    const INJECTED: usize = 150;
    harness::strace::require_strace();
    let dir = TestDir::new();
    let trace = dir.root().join("accept.trace");
    let trace_arg = trace.display().to_string();
    // Without -f, strace follows the supervisor's main thread only, where
    // its runtime accepts; the worker it starts runs untraced. The first
    // accept (the readiness probe's status) succeeds, the next ones (the
    // runtime accepts again at once, to see whether more are waiting) fail.
    let inject = format!(
        "inject=accept,accept4:error=EMFILE:when=2..{}",
        INJECTED + 1
    );
    let strace = [
        "strace",
        "-qq",
        "-o",
        &trace_arg,
        "-e",
        "trace=accept,accept4",
        "-e",
        &inject,
    ];
    let mut sup = Supervisor::spawn_under(&dir, &strace, Some(&harness::worker_bin()), &[]);
    let ready = sup.wait_ready();
    // The guard kills strace; this one the supervisor it traces.
    let _kill_real =
        harness::supervisor::KillOnDrop(ready["supervisor"]["pid"].as_u64().map(|p| p as u32));
    let lines = wait_until(DEADLINE, "a failed accept logged", || {
        let log = sup.log_text("supervisor");
        let lines: Vec<String> = accept_failure_lines(&log)
            .into_iter()
            .map(String::from)
            .collect();
        (!lines.is_empty()).then_some(lines)
    });
    assert!(lines[0].contains("Too many open files"), "{}", lines[0]);
    // A status client waits in the listen queue until accept works again,
    // then is answered.
    let status = sup.wait_ready();
    assert_eq!(status["worker"]["state"], "ready");
    let trace = std::fs::read_to_string(&trace).expect("read the strace output");
    let injected = trace.matches("(INJECTED)").count();
    assert!(
        injected >= INJECTED,
        "accept failed {injected} times:\n{trace}"
    );
    // 150 failures 20 ms apart take about 3 s, inside one 10 s interval:
    // the first line, and a second only on a very slow machine.
    let lines = accept_failure_lines(&sup.log_text("supervisor"))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    assert!((1..=2).contains(&lines.len()), "{lines:#?}");
}
