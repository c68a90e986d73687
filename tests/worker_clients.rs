//! Careless or hostile clients against the real worker: many connections
//! holding large partial lines stay within the request budget while a
//! small request is still answered at once; a large request waits for the
//! budget and then goes through; a connection gives its large buffer back.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use harness::{fdlimit, wait_until, Conn, TestDir, DEADLINE};
use serde_json::{json, Value};
use worker::limits::{DEFAULT_REQUEST_BUDGET, LARGE_REQUEST};

/// The worker's resident memory in KiB (`ps`, as on macOS).
fn rss_kib(pid: u32) -> u64 {
    shared::procs::ps(pid)
        .expect("run ps")
        .unwrap_or_else(|| panic!("no process {pid}"))
        .rss_kib
}

fn stats(probe: &mut Conn) -> Value {
    let s = probe.call(&json!({"op": "stats"}));
    assert_eq!(s["ok"], true, "{s}");
    s
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

const CLIENTS: usize = 200;
const PARTIAL: usize = 1_000_000;
/// The default budget plus a baseline.
const RSS_LIMIT_KIB: u64 = 96 * 1024;

#[test]
fn two_hundred_clients_holding_1_mb_partial_lines_stay_within_the_budget() {
    fdlimit::raise_own_limit(4 * CLIENTS as u64);
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let pid = worker.pid();
    let mut probe = worker.connect();
    let budget = stats(&mut probe)["request_budget"]
        .as_u64()
        .expect("stats has request_budget");
    assert!(budget <= DEFAULT_REQUEST_BUDGET, "{budget}");
    let baseline = rss_kib(pid);

    // Each client sends 1 MB of a request line and no newline; a write
    // the worker does not take blocks its thread until the socket closes.
    let line = Arc::new(vec![b'x'; PARTIAL]);
    let (done_tx, done_rx) = mpsc::channel();
    let mut sockets = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut s =
            UnixStream::connect(dir.sock()).unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
        sockets.push(s.try_clone().expect("clone a socket"));
        let (line, done) = (line.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let _ = s.write_all(&line);
            let _ = done.send(());
        });
    }
    // Until the worker has taken all it will: the budget is spent (or,
    // without one, every client's megabyte is in).
    let mut peak = baseline;
    let mut finished = 0;
    wait_until(DEADLINE, "the budget spent or every line sent", || {
        peak = peak.max(rss_kib(pid));
        finished += done_rx.try_iter().count();
        let s = stats(&mut probe);
        let spent = s["request_budget_used"] == budget && s["connections"] == CLIENTS + 1;
        (spent || finished == CLIENTS).then_some(())
    });
    // Meanwhile a new client's small request is answered at once.
    for _ in 0..3 {
        let asked = Instant::now();
        let pong = worker.connect().call(&json!({"op": "ping"}));
        let took = asked.elapsed();
        assert_eq!(pong["pid"], pid, "{pong}");
        assert!(took < Duration::from_secs(1), "ping took {took:?}");
        peak = peak.max(rss_kib(pid));
    }
    let put = worker.call(&json!({"op": "put", "id": "small", "data": "while full"}));
    assert_eq!(put["ok"], true, "{put}");
    let held = rss_kib(pid);
    peak = peak.max(held);

    for s in &sockets {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(sockets);
    wait_until(DEADLINE, "the clients gone and the budget back", || {
        let s = stats(&mut probe);
        (s["connections"] == 1 && s["request_budget_used"] == 0).then_some(())
    });
    let after = rss_kib(pid);
    eprintln!(
        "worker RSS: baseline {:.1} MiB, {CLIENTS} x {PARTIAL} B partial lines held {:.1} MiB \
         (peak {:.1} MiB), after they left {:.1} MiB; {finished} clients sent their whole line",
        mib(baseline),
        mib(held),
        mib(peak),
        mib(after)
    );
    assert!(
        peak <= RSS_LIMIT_KIB,
        "the worker reached {:.1} MiB, over {:.0} MiB (budget {budget} bytes)",
        mib(peak),
        mib(RSS_LIMIT_KIB)
    );
    assert!(
        after <= RSS_LIMIT_KIB,
        "{:.1} MiB after they left",
        mib(after)
    );
    // Everything still works: a request of nearly the largest size too.
    let big = "y".repeat(900_000);
    let mut client = worker.connect();
    assert_eq!(
        client.call(&json!({"op": "put", "id": "big", "data": big}))["ok"],
        true
    );
    assert_eq!(
        client.call(&json!({"op": "get", "id": "big"}))["session"]["data"],
        big.as_str()
    );
    assert_eq!(stats(&mut probe)["count"], 2);
}

/// A put line of `len` bytes of data, without its newline.
fn put_line(id: &str, len: usize) -> Vec<u8> {
    json!({"op": "put", "id": id, "data": "z".repeat(len)})
        .to_string()
        .into_bytes()
}

#[test]
fn a_large_request_waits_for_the_budget_while_small_ones_are_answered() {
    let dir = TestDir::new();
    let budget = LARGE_REQUEST.to_string();
    let worker = dir.start(&["--request-budget-bytes", &budget]);
    let mut probe = worker.connect();
    assert_eq!(stats(&mut probe)["request_budget"], LARGE_REQUEST);

    // A takes the only slot with most of a line.
    let a_line = put_line("a", 500_000);
    let (head, tail) = a_line.split_at(a_line.len() - 10);
    let mut a = worker.connect();
    a.stream.write_all(head).expect("send most of a's line");
    wait_until(DEADLINE, "a holding the budget", || {
        (stats(&mut probe)["request_budget_used"] == LARGE_REQUEST).then_some(())
    });
    // B's whole line has to wait for it.
    let (tx, rx) = mpsc::channel();
    let mut b = worker.connect();
    std::thread::spawn(move || {
        let answer = b.call_raw(&put_line("b", 500_000));
        let _ = tx.send(answer);
    });
    // Small requests go on meanwhile.
    let mut c = worker.connect();
    assert_eq!(c.call(&json!({"op": "ping"}))["ok"], true);
    let put = c.call(&json!({"op": "put", "id": "c", "data": 1}));
    assert_eq!(put["ok"], true, "{put}");

    // A finishes; then B gets the slot.
    a.stream.write_all(tail).expect("send the rest of a's line");
    a.stream.write_all(b"\n").expect("end a's line");
    let answer = a.recv().expect("a's answer").expect("not EOF");
    assert!(answer.contains(r#""ok":true"#), "{answer}");
    let answer = rx.recv_timeout(DEADLINE).expect("b answered once a was");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        c.call(&json!({"op": "get", "id": "b"}))["session"]["data"]
            .as_str()
            .map(str::len),
        Some(500_000)
    );
    wait_until(DEADLINE, "the budget back", || {
        (stats(&mut probe)["request_budget_used"] == 0).then_some(())
    });
}

#[test]
fn a_connection_gives_its_large_buffer_back_after_a_large_request() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    for round in 0..3 {
        let id = format!("large-{round}");
        let put = conn.call_raw(&put_line(&id, 900_000));
        assert_eq!(put["ok"], true, "{put}");
        // Asked on the same connection, which is still open: the buffer
        // that held the large line has shrunk and its slot is back.
        let s = stats(&mut conn);
        assert_eq!(s["request_budget_used"], 0, "round {round}: {s}");
        assert_eq!(s["connections"], 1, "{s}");
    }
    // A small request on it still works, and so does the next large one.
    assert_eq!(conn.call(&json!({"op": "ping"}))["ok"], true);
    assert_eq!(conn.call_raw(&put_line("again", 900_000))["ok"], true);
}
