//! Requests pipelined on one connection (sent without waiting for each
//! answer): the writes among them share commits, every answer comes in
//! the order of the requests, and reads see the writes sent before them.
//!
//! Each flush is slowed to 50 ms for real with strace (`delay_exit` on
//! fdatasync and fsync), so that how many commits a run takes depends on
//! the worker, not on the machine's load: while one commit waits for its
//! flush, every request sent at once has arrived. strace exists on Linux
//! only; the read-ahead itself has no platform-specific code.
#![cfg(target_os = "linux")]

use std::io::Write;

use harness::strace::Straced;
use harness::{wait_until, Conn, TestDir, DEADLINE};
use serde_json::{json, Value};

/// Requests in flight on one connection at most (`conn/ahead.rs`).
const MAX_AHEAD: u64 = 64;

/// A worker whose every fdatasync and fsync takes 50 ms longer.
fn slow_flush_worker(dir: &TestDir) -> Straced {
    dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "--seccomp-bpf",
            "-e",
            "trace=fdatasync,fsync",
            "-e",
            "inject=fdatasync,fsync:delay_exit=50000",
        ],
        &[],
    )
}

/// `stats`' `writes` and `commits`.
fn counts(conn: &mut Conn) -> (u64, u64) {
    let stats = conn.call(&json!({"op": "stats"}));
    let n = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("stats has no {k}: {stats}"))
    };
    (n("writes"), n("commits"))
}

/// Sends every request in one write.
fn send_at_once(conn: &mut Conn, requests: &[Value]) {
    let mut bytes = Vec::new();
    for r in requests {
        bytes.extend_from_slice(r.to_string().as_bytes());
        bytes.push(b'\n');
    }
    conn.stream.write_all(&bytes).expect("send the requests");
}

/// The next answer, parsed.
fn next_answer(conn: &mut Conn) -> Value {
    let line = conn
        .recv()
        .expect("read an answer")
        .expect("an answer, not EOF");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn put(id: &str, data: Value) -> Value {
    json!({"op": "put", "id": id, "data": data})
}

/// Asserts that `answer` is the session `id` with `data`.
fn assert_session(answer: &Value, id: &str, data: &Value) {
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["session"]["id"], id, "{answer}");
    assert_eq!(&answer["session"]["data"], data, "{answer}");
}

fn assert_error(answer: &Value, code: &str) {
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
}

/// `n` puts of ids `{prefix}{i}` with data `i`.
fn puts(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| put(&format!("{prefix}{i:02}"), json!(i)))
        .collect()
}

/// Reads the answers to `puts(prefix, n)`, in order.
fn expect_puts(conn: &mut Conn, prefix: &str, n: usize) {
    for i in 0..n {
        assert_session(&next_answer(conn), &format!("{prefix}{i:02}"), &json!(i));
    }
}

#[test]
fn puts_sent_at_once_share_commits_and_are_answered_in_order() {
    let dir = TestDir::new();
    let worker = slow_flush_worker(&dir);
    let mut c = worker.connect();
    let (writes0, commits0) = counts(&mut c);
    send_at_once(&mut c, &puts("p", 32));
    expect_puts(&mut c, "p", 32);
    let (writes, commits) = counts(&mut c);
    assert_eq!(writes - writes0, 32);
    // One commit for the first put, which the writer takes alone at
    // once, and one for the rest; a third at most.
    assert!(
        commits - commits0 <= 3,
        "32 pipelined puts took {} commits",
        commits - commits0
    );
}

#[test]
fn a_get_pipelined_after_a_put_sees_the_new_value() {
    let dir = TestDir::new();
    let worker = slow_flush_worker(&dir);
    let mut c = worker.connect();
    c.call(&put("x", json!("old")));
    let (_, commits0) = counts(&mut c);
    let mut requests = puts("a", 16);
    requests.push(put("x", json!("new")));
    requests.push(json!({"op": "get", "id": "x"}));
    requests.push(json!({"op": "get", "id": "a15"}));
    send_at_once(&mut c, &requests);
    expect_puts(&mut c, "a", 16);
    assert_session(&next_answer(&mut c), "x", &json!("new"));
    assert_session(&next_answer(&mut c), "x", &json!("new"));
    assert_session(&next_answer(&mut c), "a15", &json!(15));
    let (_, commits) = counts(&mut c);
    assert!(commits - commits0 <= 3, "{} commits", commits - commits0);
}

#[test]
fn a_get_pipelined_after_a_delete_finds_nothing() {
    let dir = TestDir::new();
    let worker = slow_flush_worker(&dir);
    let mut c = worker.connect();
    c.call(&put("d", json!(1)));
    let (_, commits0) = counts(&mut c);
    let mut requests = puts("e", 16);
    requests.push(json!({"op": "delete", "id": "d"}));
    requests.push(json!({"op": "get", "id": "d"}));
    requests.push(json!({"op": "list", "prefix": "d"}));
    send_at_once(&mut c, &requests);
    expect_puts(&mut c, "e", 16);
    assert_eq!(next_answer(&mut c), json!({"ok": true}));
    assert_error(&next_answer(&mut c), "not_found");
    assert_eq!(next_answer(&mut c), json!({"ok": true, "sessions": []}));
    let (_, commits) = counts(&mut c);
    assert!(commits - commits0 <= 3, "{} commits", commits - commits0);
}

#[test]
fn a_bad_request_among_pipelined_writes_is_answered_in_its_place() {
    let dir = TestDir::new();
    let worker = slow_flush_worker(&dir);
    let mut c = worker.connect();
    let (writes0, commits0) = counts(&mut c);
    let mut bytes = Vec::new();
    for r in puts("f", 12) {
        bytes.extend_from_slice(format!("{r}\n").as_bytes());
    }
    bytes.extend_from_slice(b"{\"op\": \"put\", \"id\": \n");
    bytes.extend_from_slice(b"{\"op\": \"fly\"}\n");
    for r in puts("g", 12) {
        bytes.extend_from_slice(format!("{r}\n").as_bytes());
    }
    c.stream.write_all(&bytes).expect("send the requests");
    expect_puts(&mut c, "f", 12);
    assert_error(&next_answer(&mut c), "bad_request");
    assert_error(&next_answer(&mut c), "bad_request");
    expect_puts(&mut c, "g", 12);
    let (writes, commits) = counts(&mut c);
    assert_eq!(writes - writes0, 24);
    assert!(commits - commits0 <= 3, "{} commits", commits - commits0);
}

#[test]
fn a_client_pipelining_past_the_bound_is_answered_in_order_and_others_meanwhile() {
    const N: usize = 1000;
    let dir = TestDir::new();
    let worker = slow_flush_worker(&dir);
    let mut other = worker.connect();
    let (writes0, commits0) = counts(&mut other);
    let mut c = worker.connect();
    // The client sends everything before it reads: the worker must keep
    // reading it while answering, or both wait for each other.
    let mut sending = c.stream.try_clone().expect("clone the socket");
    let sender = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        for r in puts("q", N) {
            bytes.extend_from_slice(format!("{r}\n").as_bytes());
        }
        sending.write_all(&bytes).expect("send the requests");
    });
    wait_until(DEADLINE, "the pipelined puts to start committing", || {
        (counts(&mut other).0 > writes0).then_some(())
    });
    let pong = other.call(&json!({"op": "ping"}));
    assert_eq!(pong["ok"], true, "{pong}");
    let (writes, _) = counts(&mut other);
    assert!(
        writes - writes0 < N as u64,
        "another client was answered only once all {N} pipelined puts were"
    );
    expect_puts(&mut c, "q", N);
    sender.join().expect("the sender thread");
    let (writes, commits) = counts(&mut other);
    assert_eq!(writes - writes0, N as u64);
    let commits = commits - commits0;
    // At most MAX_AHEAD of them in flight: never more in one commit.
    assert!(
        commits >= (N as u64).div_ceil(MAX_AHEAD),
        "{N} puts in {commits} commits: more than {MAX_AHEAD} in flight at once"
    );
    assert!(commits <= N as u64 / 4, "{N} puts took {commits} commits");
}
