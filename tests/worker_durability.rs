//! Durability (README, "How writes are kept"): what the worker acknowledged is there
//! after SIGKILL, SIGTERM, SIGINT, SIGUSR1 and compaction, and a worker
//! started the supervisor's way (inherited socket, ready and parent pipes)
//! behaves the same.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use harness::{wait_until, Conn, TestDir, Worker, DEADLINE};
use nix::sys::signal::Signal;
use rand::Rng;
use serde_json::{json, Value};
use shared::launch;

fn put(conn: &mut Conn, id: &str, data: Value) -> Value {
    let answer = conn.call(&json!({"op": "put", "id": id, "data": data}));
    assert_eq!(answer["ok"], true, "put {id}: {answer}");
    answer["session"].clone()
}

fn stats(worker: &Worker) -> Value {
    let s = worker.call(&json!({"op": "stats"}));
    assert_eq!(s["ok"], true, "{s}");
    s
}

/// Every session the worker holds, by id, read through the API.
fn all_sessions(worker: &Worker) -> BTreeMap<String, Value> {
    let mut c = worker.connect();
    let list = c.call(&json!({"op": "list"}));
    let mut out = BTreeMap::new();
    for item in list["sessions"].as_array().expect("sessions is an array") {
        let id = item["id"].as_str().expect("id is a string");
        let got = c.call(&json!({"op": "get", "id": id}));
        assert_eq!(got["ok"], true, "{got}");
        out.insert(id.to_string(), got["session"].clone());
    }
    out
}

/// A few puts, replaces and deletes; returns what must be stored, exactly.
fn write_known_state(worker: &Worker) -> BTreeMap<String, Value> {
    let mut c = worker.connect();
    let mut expected = BTreeMap::new();
    for (id, data) in [
        ("a", json!(1)),
        ("b", json!({"text": "two", "list": [1, 2, 3]})),
        ("a", json!("replaced")),
        ("gone", json!(null)),
        ("c:d@e", json!([true, null, 1.25])),
    ] {
        expected.insert(id.to_string(), put(&mut c, id, data));
    }
    assert_eq!(
        c.call(&json!({"op": "delete", "id": "gone"})),
        json!({"ok": true})
    );
    expected.remove("gone");
    expected
}

/// What one key of a write stream went through: every counter up to `sent`
/// was sent, every counter up to `acked` was acknowledged.
#[derive(Debug, Clone)]
struct KeyLog {
    id: String,
    acked: u64,
    sent: u64,
}

impl KeyLog {
    /// The stored counter (0 = absent) must be one that was sent, and not
    /// older than the last acknowledged one.
    fn check(&self, stored: Option<&Value>) {
        let n = match stored {
            None => 0,
            Some(s) => s["data"]["n"]
                .as_u64()
                .unwrap_or_else(|| panic!("no counter in {s}")),
        };
        assert!(
            self.acked <= n && n <= self.sent,
            "{}: stored counter {n}, but {} was acknowledged and {} the last sent",
            self.id,
            self.acked,
            self.sent
        );
    }
}

/// Clients writing increasing counters to their own keys, one connection
/// each, until the worker goes away.
struct WriteStream {
    threads: Vec<std::thread::JoinHandle<Vec<KeyLog>>>,
    /// Fires once `trigger` puts in total have been acknowledged.
    triggered: mpsc::Receiver<()>,
    acked: Arc<AtomicUsize>,
}

impl WriteStream {
    fn start(sock: &Path, keys: Vec<Vec<KeyLog>>, trigger: usize) -> WriteStream {
        let (tx, triggered) = mpsc::channel();
        let acked = Arc::new(AtomicUsize::new(0));
        let threads = keys
            .into_iter()
            .map(|mut keys| {
                let (sock, tx, acked) = (sock.to_path_buf(), tx.clone(), acked.clone());
                std::thread::spawn(move || {
                    write_until_gone(&sock, &mut keys, &tx, &acked, trigger);
                    keys
                })
            })
            .collect();
        WriteStream {
            threads,
            triggered,
            acked,
        }
    }

    fn wait_for_trigger(&self) {
        self.triggered
            .recv_timeout(DEADLINE)
            .expect("the writers reached the trigger");
    }

    /// Joins the writers: every key's log, and how many puts were acknowledged.
    fn finish(self) -> (Vec<KeyLog>, usize) {
        let logs = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("a writer thread panicked"))
            .collect();
        (logs, self.acked.load(Ordering::SeqCst))
    }
}

fn write_until_gone(
    sock: &Path,
    keys: &mut [KeyLog],
    trigger_tx: &mpsc::Sender<()>,
    acked: &AtomicUsize,
    trigger: usize,
) {
    let mut rng = rand::thread_rng();
    let Some(mut conn) = Conn::try_connect(sock) else {
        return;
    };
    for i in 0.. {
        let key = &mut keys[i % keys.len()];
        let n = key.sent + 1;
        key.sent = n;
        let pad = "p".repeat(rng.gen_range(0..1500));
        let line = json!({"op": "put", "id": key.id, "data": {"n": n, "pad": pad}}).to_string();
        if conn.send(line.as_bytes()).is_err() {
            return;
        }
        let answer: Value = match conn.recv() {
            Ok(Some(line)) => serde_json::from_str(&line).expect("the answer is JSON"),
            Ok(None) | Err(_) => return,
        };
        if answer["ok"] != true {
            // A stopping worker may refuse; anything else is a bug.
            assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
            return;
        }
        assert_eq!(answer["session"]["data"]["n"], n, "{answer}");
        key.acked = n;
        if acked.fetch_add(1, Ordering::SeqCst) + 1 == trigger {
            let _ = trigger_tx.send(());
        }
    }
}

/// `threads` groups of `per_thread` fresh keys named `<prefix>-<t>-<k>`.
fn fresh_keys(prefix: &str, threads: usize, per_thread: usize) -> Vec<Vec<KeyLog>> {
    (0..threads)
        .map(|t| {
            (0..per_thread)
                .map(|k| KeyLog {
                    id: format!("{prefix}-{t}-{k}"),
                    acked: 0,
                    sent: 0,
                })
                .collect()
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_sigkill_exactly() {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    let expected = write_known_state(&worker);
    worker.kill();
    assert!(
        !dir.journals().is_empty(),
        "SIGKILL left the journal in place"
    );
    let worker = dir.start(&[]);
    assert_eq!(all_sessions(&worker), expected);
}

/// SIGTERM or SIGINT in the middle of a write stream: exit 0, and
/// `sessions.json` alone holds every acknowledged write.
fn graceful_stop_keeps_every_acknowledged_write(signal: Signal) {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    let expected = write_known_state(&worker);

    let trigger = rand::thread_rng().gen_range(1..=60);
    let stream = WriteStream::start(&dir.sock(), fresh_keys("stream", 4, 2), trigger);
    stream.wait_for_trigger();
    let journals_before = dir.journals();
    assert!(!journals_before.is_empty());
    let mut idle = worker.connect();
    assert_eq!(idle.call(&json!({"op": "ping"}))["ok"], true);
    worker.signal(signal);
    let status = worker.wait_exit(DEADLINE);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after {signal}:\n{}",
        worker.stderr()
    );
    let (logs, acked) = stream.finish();
    assert!(acked >= trigger);
    assert!(
        matches!(idle.recv(), Ok(None)),
        "an idle connection is closed cleanly"
    );

    let snapshot = dir.snapshot();
    for (id, session) in &expected {
        assert_eq!(snapshot.get(id), Some(session), "{id} in sessions.json");
    }
    assert!(
        !snapshot.contains_key("gone"),
        "a deleted session stays deleted"
    );
    for log in &logs {
        log.check(snapshot.get(&log.id));
    }
    assert_eq!(
        snapshot.len(),
        expected.len() + logs.iter().filter(|l| snapshot.contains_key(&l.id)).count()
    );
    for name in &journals_before {
        assert!(
            !dir.journal_dir().join(name).exists(),
            "{name}, covered by sessions.json, is gone"
        );
    }
    for name in dir.journals() {
        let bytes = std::fs::read(dir.journal_dir().join(&name)).unwrap();
        assert!(
            bytes.iter().skip(24).all(|b| *b == 0),
            "{name} left behind holds records"
        );
    }
    assert!(
        !dir.sock().exists(),
        "the worker removed the socket it bound"
    );

    // And it is what the next start serves.
    let worker = dir.start(&[]);
    let served = all_sessions(&worker);
    for (id, session) in &expected {
        assert_eq!(
            served.get(id),
            Some(session),
            "{id} served after the restart"
        );
    }
    assert_eq!(served.len(), snapshot.len());
}

#[test]
fn sigterm_writes_every_acknowledged_write_to_sessions_json() {
    graceful_stop_keeps_every_acknowledged_write(Signal::SIGTERM);
}

#[test]
fn sigint_writes_every_acknowledged_write_to_sessions_json() {
    graceful_stop_keeps_every_acknowledged_write(Signal::SIGINT);
}

#[test]
fn sigusr1_writes_sessions_json_while_serving() {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    let expected = write_known_state(&worker);
    assert!(
        !dir.sessions_json().exists(),
        "no snapshot before the signal"
    );
    let before = stats(&worker);
    assert_eq!(before["checkpoints"], 0, "{before}");

    worker.signal(Signal::SIGUSR1);
    let after = wait_until(DEADLINE, "stats.checkpoints to increase", || {
        let s = stats(&worker);
        (s["checkpoints"].as_u64()? > 0).then_some(s)
    });
    let at = after["last_checkpoint_at"]
        .as_str()
        .expect("last_checkpoint_at is set");
    assert!(at.ends_with('Z'), "{after}");
    let snapshot = dir.snapshot();
    assert_eq!(snapshot.len(), expected.len(), "{snapshot:?}");
    for (id, session) in &expected {
        assert_eq!(snapshot.get(id), Some(session), "{id} in sessions.json");
    }

    // Still serving: a write after the checkpoint, then another checkpoint.
    assert_eq!(worker.try_exit(), None, "the worker keeps running");
    let mut c = worker.connect();
    let late = put(&mut c, "late", json!("after the checkpoint"));
    assert_eq!(c.call(&json!({"op": "get", "id": "late"}))["session"], late);
    worker.signal(Signal::SIGUSR1);
    wait_until(DEADLINE, "a second checkpoint", || {
        (stats(&worker)["checkpoints"].as_u64()? > 1).then_some(())
    });
    assert_eq!(dir.snapshot().get("late"), Some(&late));

    // Snapshot plus journal after a crash: nothing lost.
    let newest = put(&mut c, "newest", json!(3));
    worker.kill();
    let worker = dir.start(&[]);
    let mut all = expected.clone();
    all.insert("late".into(), late);
    all.insert("newest".into(), newest);
    assert_eq!(all_sessions(&worker), all);
}

#[test]
fn compaction_replaces_journals_with_sessions_json_and_keeps_every_write() {
    let dir = TestDir::new();
    let mut worker = dir.start(&["--compact-min-bytes", "4096"]);
    let first_journals = dir.journals();
    assert_eq!(
        first_journals.len(),
        1,
        "one journal to start with: {first_journals:?}"
    );
    let mut c = worker.connect();
    let mut expected = BTreeMap::new();
    for i in 0..200 {
        let id = format!("key-{}", i % 10);
        let session = put(&mut c, &id, json!({"i": i, "pad": "x".repeat(200)}));
        expected.insert(id, session);
    }
    wait_until(DEADLINE, "a compaction", || {
        (stats(&worker)["checkpoints"].as_u64()? > 0).then_some(())
    });
    assert!(
        !dir.journal_dir().join(&first_journals[0]).exists(),
        "the first journal was deleted once sessions.json covered it"
    );
    wait_until(DEADLINE, "the covered journals to be deleted", || {
        (dir.journals().len() == 1).then_some(())
    });
    assert_ne!(dir.journals(), first_journals);
    let snapshot = dir.snapshot();
    assert!(
        !snapshot.is_empty(),
        "sessions.json holds the compacted state"
    );

    worker.kill();
    let worker = dir.start(&[]);
    assert_eq!(all_sessions(&worker), expected);
}

#[test]
fn sigkill_during_concurrent_puts_loses_no_acknowledged_write() {
    const ITERATIONS: usize = 50;
    let started = Instant::now();
    let dir = TestDir::new();
    let mut rng = rand::thread_rng();
    let mut keys = fresh_keys("k", 4, 3);
    let mut total_acked = 0;
    // Every other worker compacts often, so kills also land in checkpoints.
    let args = |i: usize| -> Vec<&'static str> {
        if i.is_multiple_of(2) {
            vec!["--compact-min-bytes", "32768"]
        } else {
            vec![]
        }
    };
    let mut worker = dir.start(&args(0));
    for i in 0..ITERATIONS {
        let trigger = rng.gen_range(1..=120);
        let stream = WriteStream::start(&dir.sock(), keys, trigger);
        stream.wait_for_trigger();
        worker.kill();
        let (logs, acked) = stream.finish();
        assert!(
            acked >= trigger,
            "iteration {i}: {acked} acknowledged, trigger {trigger}"
        );
        total_acked += acked;

        worker = dir.start(&args(i + 1));
        let mut c = worker.connect();
        for log in &logs {
            let got = c.call(&json!({"op": "get", "id": log.id}));
            let stored = (got["ok"] == true).then(|| got["session"].clone());
            if stored.is_none() {
                assert_eq!(got["error"]["code"], "not_found", "{got}");
            }
            log.check(stored.as_ref());
        }
        // The next round continues each key's counter past anything sent.
        keys = logs.chunks(3).map(|c| c.to_vec()).collect();
    }
    assert!(total_acked > 0);
    assert!(
        dir.sessions_json().exists(),
        "compactions ran between the kills"
    );
    eprintln!(
        "{ITERATIONS} SIGKILLs, {total_acked} acknowledged puts, {} torn tails set aside, {:?}",
        dir.names("damaged").len(),
        started.elapsed()
    );
}

/// Reads the worker's first two lines from the readiness pipe, with a
/// deadline: `ready …` and the store's health (the pipe stays open and
/// carries the health's changes).
fn read_ready_lines(pipe: std::os::fd::OwnedFd) -> (String, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut pipe = std::io::BufReader::new(std::fs::File::from(pipe));
        let (mut ready, mut store) = (String::new(), String::new());
        let _ = pipe.read_line(&mut ready);
        let _ = pipe.read_line(&mut store);
        let _ = tx.send((ready, store));
    });
    rx.recv_timeout(DEADLINE)
        .expect("the ready pipe was written")
}

#[test]
fn inherited_socket_ready_pipe_and_parent_pipe() {
    let dir = TestDir::new();
    let listener = UnixListener::bind(dir.sock()).expect("bind the socket as the supervisor would");
    let inode = std::fs::metadata(dir.sock()).unwrap().ino();
    let (ready_r, ready_w) = shared::fd::pipe().unwrap();
    let (parent_r, parent_w) = shared::fd::pipe().unwrap();

    let (mut cmd, log) = dir.command(&[]);
    cmd.env(launch::LISTEN_FDS_ENV, "1")
        .env(launch::READY_FD_ENV, launch::READY_FD.to_string())
        .env(launch::PARENT_FD_ENV, launch::PARENT_FD.to_string());
    harness::pass_fds(
        &mut cmd,
        &[
            (listener.as_raw_fd(), launch::LISTEN_FD),
            (ready_w.as_raw_fd(), launch::READY_FD),
            (parent_r.as_raw_fd(), launch::PARENT_FD),
        ],
    );
    let mut worker = Worker::spawn(cmd, log, dir.sock());
    drop((ready_w, parent_r));

    let (line, store) = read_ready_lines(ready_r);
    let Some(launch::Report::Store(health)) = launch::Report::parse(store.as_bytes()) else {
        panic!("not a health line: {store:?}");
    };
    assert_eq!(health.state, shared::health::StoreState::Ok, "{store}");
    let version = harness::version_line();
    let commit = version.rsplit('(').next().unwrap().trim_end_matches(')');
    assert_eq!(
        line,
        format!("ready {} {commit}\n", worker.pid()),
        "the ready line"
    );

    let mut c = worker.connect();
    assert_eq!(c.call(&json!({"op": "ping"}))["pid"], worker.pid());
    let session = put(&mut c, "inherited", json!({"via": "fd 3"}));
    assert_eq!(
        c.call(&json!({"op": "get", "id": "inherited"}))["session"],
        session
    );
    drop(c);

    // The supervisor goes away: the worker stops cleanly.
    drop(parent_w);
    let status = worker.wait_exit(DEADLINE);
    assert_eq!(status.code(), Some(0), "{}", worker.stderr());
    assert_eq!(dir.snapshot().get("inherited"), Some(&session));

    // The socket is the supervisor's: still there, still listening.
    let meta = std::fs::symlink_metadata(dir.sock()).expect("the socket path is still there");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.ino(),
        inode,
        "the worker neither unlinked nor re-bound it"
    );
    let _client = UnixStream::connect(dir.sock()).expect("the listener still takes connections");
    listener.set_nonblocking(true).unwrap();
    wait_until(DEADLINE, "the test's listener to accept", || {
        listener.accept().ok()
    });
}
