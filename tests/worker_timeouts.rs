//! Clients that stall, against the real worker: an idle connection is
//! closed after the idle timeout, one that never reads its answers after
//! the write timeout, and a `list` is written page by page and a session
//! from the store's copy, so stalled readers pin no whole answer. Also
//! the benchmarks' slow-disk knob, which holds every sync a while longer.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::{fdlimit, wait_until, Conn, TestDir, Worker, DEADLINE};
use serde_json::{json, Value};

fn stats(probe: &mut Conn) -> Value {
    let s = probe.call(&json!({"op": "stats"}));
    assert_eq!(s["ok"], true, "{s}");
    s
}

fn wait_connections(probe: &mut Conn, n: u64) {
    wait_until(DEADLINE, &format!("{n} open connection(s)"), || {
        (stats(probe)["connections"] == n).then_some(())
    });
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = TestDir::new();
    // Long enough that a busy machine does not stall the busy client past it.
    let worker = dir.start(&["--idle-timeout-ms", "1000"]);

    // A client that keeps asking is never idle, however long it goes on.
    let mut busy = worker.connect();
    let started = Instant::now();
    let mut asked = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.call(&json!({"op": "ping"}))["ok"], true, "{asked}");
        asked += 1;
    }

    // Silent after an answer: closed without a word.
    let mut idle = worker.connect();
    assert_eq!(idle.call(&json!({"op": "ping"}))["ok"], true);
    assert_eq!(idle.recv().expect("EOF, not a read timeout"), None);

    // Silent inside a request line: told why, then closed.
    let mut partial = worker.connect();
    partial
        .stream
        .write_all(b"{\"op\":\"pi")
        .expect("send half a line");
    let answer: Value =
        serde_json::from_str(&partial.recv().expect("an answer").expect("not EOF")).unwrap();
    assert_eq!(answer["error"]["code"], "bad_request", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not end within 1000 ms"), "{message}");
    assert_eq!(partial.recv().expect("EOF after the answer"), None);

    // Then the busy client has been silent too long as well; new clients
    // are served.
    assert_eq!(busy.recv().expect("EOF, not a read timeout"), None);
    assert_eq!(worker.call(&json!({"op": "ping"}))["ok"], true);
}

/// Sends `line` on `stream` until a write fails; the number of lines sent
/// and the error, through the channel.
fn send_until_cut(
    mut stream: UnixStream,
    line: Vec<u8>,
) -> mpsc::Receiver<(usize, std::io::Error)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let batch = line.repeat(100);
        let mut sent = 0;
        loop {
            if let Err(e) = stream.write_all(&batch) {
                let _ = tx.send((sent, e));
                return;
            }
            sent += 100;
        }
    });
    rx
}

#[test]
fn a_client_that_never_reads_its_answers_is_cut_after_the_write_timeout() {
    let dir = TestDir::new();
    let worker = dir.start(&["--write-timeout-ms", "300"]);
    let mut probe = worker.connect();

    let stream = UnixStream::connect(dir.sock()).expect("connect");
    let cut = send_until_cut(stream, b"{\"op\":\"ping\"}\n".to_vec());
    let (sent, error) = cut
        .recv_timeout(DEADLINE)
        .expect("the worker cut the connection of a client that reads nothing");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "after {sent} pings: {error}"
    );
    eprintln!("cut after {sent} unread pings");
    wait_connections(&mut probe, 1);
    assert_eq!(probe.call(&json!({"op": "ping"}))["ok"], true);
}

/// Writes `sessions.json` with `n` sessions `<prefix><i, 6 digits>` and
/// starts a worker on it with `args`.
fn worker_with_sessions(dir: &TestDir, prefix: &str, n: usize, args: &[&str]) -> Worker {
    let at = "2026-11-24T06:00:00.123Z";
    let sessions: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            let id = format!("{prefix}{i:06}");
            let s = json!({"id": id, "data": i, "created_at": at, "updated_at": at});
            (id, s)
        })
        .collect();
    let doc = json!({"version": 1, "sessions": sessions});
    std::fs::write(dir.sessions_json(), doc.to_string()).expect("write sessions.json");
    let worker = dir.start(args);
    assert_eq!(stats(&mut worker.connect())["count"], n);
    worker
}

fn ids(answer: &Value) -> Vec<String> {
    answer["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions: {answer}"))
        .iter()
        .map(|h| h["id"].as_str().expect("an id").to_string())
        .collect()
}

#[test]
fn list_answers_every_session_across_pages_with_prefix_and_limit() {
    let dir = TestDir::new();
    let worker = worker_with_sessions(&dir, "s-", 1000, &[]);
    let mut c = worker.connect();
    let all: Vec<String> = (0..1000).map(|i| format!("s-{i:06}")).collect();
    assert_eq!(ids(&c.call(&json!({"op": "list"}))), all);
    for limit in [0, 1, 255, 256, 257, 513, 999, 1000, 5000] {
        let answer = c.call(&json!({"op": "list", "limit": limit}));
        assert_eq!(ids(&answer), all[..limit.min(1000)], "limit {limit}");
    }
    let answer = c.call(&json!({"op": "list", "prefix": "s-0003", "limit": 50}));
    assert_eq!(ids(&answer), all[300..350]);
    let answer = c.call(&json!({"op": "list", "prefix": "s-0009"}));
    assert_eq!(ids(&answer), all[900..1000]);
    assert_eq!(
        ids(&c.call(&json!({"op": "list", "prefix": "t"}))),
        Vec::<String>::new()
    );
}

/// `readers` connections each send `request` and read nothing, until the
/// write timeout cuts them all. How much the worker's RSS grew meanwhile,
/// at most, in MiB.
fn stalled_readers_growth(dir: &TestDir, worker: &Worker, request: &Value, readers: usize) -> f64 {
    fdlimit::raise_own_limit(4 * readers as u64);
    let pid = worker.pid();
    let rss = || {
        shared::procs::ps(pid)
            .expect("ps")
            .expect("the worker runs")
            .rss_kib
    };
    let mut probe = worker.connect();
    // The caller's own connections, and this probe.
    let others = stats(&mut probe)["connections"].as_u64().expect("a count") as usize;
    let baseline = rss();
    let line = format!("{request}\n");
    let stalled: Vec<UnixStream> = (0..readers)
        .map(|_| {
            let mut s = UnixStream::connect(dir.sock()).expect("connect");
            s.write_all(line.as_bytes()).expect("send the request");
            s
        })
        .collect();
    let mut peak = baseline;
    wait_until(DEADLINE, "the stalled readers connected", || {
        peak = peak.max(rss());
        (stats(&mut probe)["connections"] == others + readers).then_some(())
    });
    wait_until(DEADLINE, "the stalled readers cut", || {
        peak = peak.max(rss());
        (stats(&mut probe)["connections"] == others).then_some(())
    });
    drop(stalled);
    let grew = peak.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!("{readers} stalled readers of {request}: RSS grew {grew:.1} MiB over {baseline} KiB");
    grew
}

#[test]
fn stalled_readers_of_a_large_list_pin_no_whole_answer_and_are_cut() {
    const SESSIONS: usize = 20_000;
    let dir = TestDir::new();
    // Long ids: the whole list answer is about 5.6 MB.
    let prefix = "p".repeat(240);
    let worker = worker_with_sessions(&dir, &prefix, SESSIONS, &["--write-timeout-ms", "1500"]);
    let mut probe = worker.connect();
    assert_eq!(ids(&probe.call(&json!({"op": "list"}))).len(), SESSIONS);
    // Whole answers would be 40 x 5.6 MB, over 200 MiB.
    let grew = stalled_readers_growth(&dir, &worker, &json!({"op": "list"}), 40);
    assert!(grew < 24.0, "RSS grew {grew:.1} MiB");
    assert_eq!(ids(&probe.call(&json!({"op": "list"}))).len(), SESSIONS);
}

#[test]
fn stalled_readers_of_a_large_session_share_the_stored_copy() {
    let dir = TestDir::new();
    let worker = dir.start(&["--write-timeout-ms", "1500"]);
    let data = "d".repeat(1_000_000);
    let mut probe = worker.connect();
    let put = probe.call(&json!({"op": "put", "id": "big", "data": data}));
    assert_eq!(put["ok"], true, "{put}");
    assert_eq!(
        probe.call(&json!({"op": "get", "id": "big"}))["session"]["data"],
        data.as_str()
    );
    // A copy each would be 60 MiB.
    let grew = stalled_readers_growth(&dir, &worker, &json!({"op": "get", "id": "big"}), 60);
    assert!(grew < 24.0, "RSS grew {grew:.1} MiB");
    assert_eq!(
        probe.call(&json!({"op": "get", "id": "big"}))["session"]["data"],
        data.as_str()
    );
}

#[test]
fn invalid_limits_exit_2_naming_the_flag() {
    let dir = TestDir::new();
    for (flag, value) in [
        ("--idle-timeout-ms", "0"),
        ("--write-timeout-ms", "soon"),
        ("--request-budget-bytes", "1024"),
    ] {
        let (status, stderr) = dir.run_to_exit(&[flag, value]);
        assert_eq!(status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(value), "{stderr}");
    }
}

/// `SECOND_BRAIN_BENCH_SYNC_DELAY_US` (the store benchmark's flush model):
/// every acknowledged write waits for its sync and then the delay, and
/// the worker says at start that it is set; without it, it says nothing.
#[test]
fn the_bench_sync_delay_holds_every_acknowledged_write_and_is_announced() {
    let delay = Duration::from_millis(150);
    let dir = TestDir::new();
    let (mut cmd, log) = dir.command(&[]);
    cmd.env(
        "SECOND_BRAIN_BENCH_SYNC_DELAY_US",
        delay.as_micros().to_string(),
    );
    let mut slow = Worker::spawn(cmd, log, dir.sock());
    slow.wait_ready();
    let said = "SECOND_BRAIN_BENCH_SYNC_DELAY_US is set";
    assert!(slow.stderr().contains(said), "{}", slow.stderr());
    let mut conn = slow.connect();
    for i in 0..3 {
        let started = Instant::now();
        let answer = conn.call(&json!({"op": "put", "id": format!("s{i}"), "data": {"n": i}}));
        assert_eq!(answer["ok"], true, "{answer}");
        let took = started.elapsed();
        assert!(
            took >= delay,
            "put {i} answered after {took:?}, before the delay"
        );
    }
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["count"], 3, "{stats}");
    // Slow flushes, but one client: the writer never holds a flush back.
    assert_eq!(stats["group_waits"], 0, "{stats}");
    assert_eq!(stats["group_wait_timeouts"], 0, "{stats}");

    let plain = TestDir::new();
    let fast = plain.start(&[]);
    assert!(!fast.stderr().contains(said), "{}", fast.stderr());
}
