//! The real worker under a low open-file limit: with a soft limit of 256 it
//! raises the limit and serves 400 clients at once; with a hard limit of 256
//! it refuses what it cannot hold with `unavailable` instead of hanging;
//! failed accepts are logged at a bounded rate.

use harness::fdlimit::{self, accept_failure_lines, burst};
use harness::{wait_until, Conn, TestDir, Worker, DEADLINE};
use serde_json::json;

const CLIENTS: usize = 400;

/// Waits until the worker counts exactly `n` open connections (asking on
/// `probe`, which is one of them).
fn wait_connections(probe: &mut Conn, n: u64) {
    wait_until(DEADLINE, &format!("{n} open connection(s)"), || {
        (probe.call(&json!({"op": "stats"}))["connections"] == n).then_some(())
    });
}

#[test]
fn with_a_soft_limit_of_256_the_worker_serves_400_clients_at_once() {
    fdlimit::raise_own_limit(4 * CLIENTS as u64);
    let dir = TestDir::new();
    let (mut cmd, log) = dir.command(&[]);
    fdlimit::limit_soft(&mut cmd, 256);
    let mut worker = Worker::spawn(cmd, log, dir.sock());
    worker.wait_ready();

    let burst = burst(&dir.sock(), CLIENTS, "c");
    assert!(burst.other.is_empty(), "{burst:?}");
    assert_eq!(burst.unavailable, 0, "{burst:?}");
    assert_eq!(burst.served.len(), CLIENTS, "{burst:?}");
    // All of them at once: the worker holds every one, plus this probe.
    let mut probe = worker.connect();
    let held = probe.call(&json!({"op": "stats"}))["connections"].clone();
    assert!(held.as_u64() >= Some(CLIENTS as u64 + 1), "stats: {held}");

    drop(burst);
    wait_connections(&mut probe, 1);
    assert_eq!(
        probe.call(&json!({"op": "stats"}))["count"],
        CLIENTS,
        "every client's session is stored"
    );
    let log = worker.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("open-file limit") && l.contains("was=256")),
        "the worker logs the limit it raised:\n{log}"
    );
    assert!(accept_failure_lines(&log).is_empty(), "{log}");
}

#[test]
fn with_a_hard_limit_of_256_clients_over_the_cap_get_unavailable_and_none_hangs() {
    fdlimit::raise_own_limit(4 * CLIENTS as u64);
    let dir = TestDir::new();
    let (mut cmd, log) = dir.command(&[]);
    fdlimit::limit_hard(&mut cmd, 256);
    let mut worker = Worker::spawn(cmd, log, dir.sock());
    worker.wait_ready();
    let cap = worker::limits::connection_cap(1024, 256);
    let mut probe = worker.connect();
    // The readiness probe's connection may still be winding down.
    wait_connections(&mut probe, 1);

    let burst = burst(&dir.sock(), CLIENTS, "c");
    assert!(
        burst.other.is_empty(),
        "every client gets an answer: {burst:?}"
    );
    assert_eq!(burst.served.len(), cap - 1, "the probe holds one slot");
    assert_eq!(burst.unavailable, CLIENTS - (cap - 1), "{burst:?}");
    assert_eq!(
        probe.call(&json!({"op": "ping"}))["ok"],
        true,
        "a held connection is still served while the cap is full"
    );

    drop(burst);
    wait_connections(&mut probe, 1);
    // It keeps serving new clients afterwards.
    let mut late = worker.connect();
    let put = late.call(&json!({"op": "put", "id": "late", "data": "after the burst"}));
    assert_eq!(put["ok"], true, "{put}");
    assert_eq!(
        late.call(&json!({"op": "get", "id": "late"}))["session"]["data"],
        "after the burst"
    );
    assert_eq!(probe.call(&json!({"op": "stats"}))["count"], cap);

    let log = worker.stderr();
    assert!(
        log.contains(&format!("serving at most {cap} connections at once")),
        "the worker logs its lowered cap:\n{log}"
    );
    assert!(
        log.contains("the open-file limit stays at 256"),
        "the worker warns that it could not raise the limit:\n{log}"
    );
    assert_eq!(
        accept_failure_lines(&log),
        Vec::<&str>::new(),
        "the cap keeps accept from ever failing"
    );
}

/// Fault injection with strace (Linux): accept fails with EMFILE 150 times
/// in a row, as it would at the open-file limit.
#[cfg(target_os = "linux")]
#[test]
fn a_storm_of_failed_accepts_is_logged_once_and_the_worker_serves_on() {
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};

    const INJECTED: usize = 150;
    let dir = TestDir::new();
    let (inner, log) = dir.command(&[]);
    let trace = dir.root().join("accept.trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .args(["-e", "trace=accept,accept4", "-e"])
        // Per thread, the first accept succeeds (the readiness ping) and
        // the next ones fail.
        .arg(format!(
            "inject=accept,accept4:error=EMFILE:when=2..{}",
            INJECTED + 1
        ))
        .arg("--")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    // strace counts calls per thread: with one runtime thread, every
    // accept runs on it and the 150 failures come in a row, instead of
    // another thread's first (succeeding) accept cutting the storm short.
    cmd.env("TOKIO_WORKER_THREADS", "1");
    // The worker stops when this pipe closes, whatever happens to strace.
    let (parent_r, parent_w) = shared::fd::pipe().expect("create a pipe");
    harness::pass_fds(
        &mut cmd,
        &[(parent_r.as_raw_fd(), shared::launch::PARENT_FD)],
    );
    cmd.env(
        shared::launch::PARENT_FD_ENV,
        shared::launch::PARENT_FD.to_string(),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open the log"),
    );
    let mut strace = Worker::spawn(cmd, log, dir.sock());
    drop(parent_r);

    let pid = wait_until(DEADLINE, "the worker to answer ping", || {
        if let Some(status) = strace.try_exit() {
            panic!("strace exited ({status}):\n{}", strace.stderr());
        }
        Conn::try_connect(&dir.sock())?.try_call(&json!({"op": "ping"}))?["pid"].as_u64()
    });
    // This client waits in the listen queue until accept works again.
    let mut client = Conn::connect(&dir.sock());
    let put = client.call(&json!({"op": "put", "id": "storm", "data": 1}));
    assert_eq!(put["ok"], true, "served after the storm: {put}");
    assert_eq!(
        client.call(&json!({"op": "get", "id": "storm"}))["session"]["data"],
        1
    );

    drop(parent_w);
    strace.wait_exit(DEADLINE);
    let trace = std::fs::read_to_string(&trace).expect("read the strace output");
    let injected = trace.matches("(INJECTED)").count();
    assert!(
        injected >= INJECTED,
        "accept failed {injected} times, fewer than injected:\n{trace}"
    );
    let log = strace.stderr();
    assert!(
        log.contains("stopped"),
        "worker {pid} stopped cleanly:\n{log}"
    );
    let lines = accept_failure_lines(&log);
    // 150 failures 20 ms apart take about 3 s, well inside one 10 s
    // interval: the first line, and a second only on a very slow machine.
    assert!(
        (1..=2).contains(&lines.len()),
        "{injected} failed accepts logged as {} lines:\n{log}",
        lines.len()
    );
    assert!(lines[0].contains("Too many open files"), "{}", lines[0]);
}
