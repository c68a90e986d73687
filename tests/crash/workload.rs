//! The recorded workloads: the real worker under strace, on a data dir it
//! creates itself ([`fresh`]), and on an existing one with pipelined
//! clients, compactions, SIGUSR1 checkpoints, deletes, a failed journal
//! sync and two graceful stops ([`busy`]).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::check::DATA;
use super::fs::{Fs, FsOp, ROOT};
use harness::strace::Straced;
use harness::{wait_until, Conn, TestDir, DEADLINE};

/// Small, so that size-triggered snapshots (compactions) happen often.
const COMPACT_MIN_BYTES: &str = "8192";
/// Slows every rename down by 0.1 s.
const SLOW_RENAMES: &str = "?rename,renameat,renameat2:delay_enter=100000";
/// Sessions per connection; each connection writes only its own.
const IDS_PER_CONN: usize = 4;
/// Makes each record a few hundred bytes, so a batch spans sectors.
const PAD: usize = 160;

/// Every call that changes files, syncs them, or talks to clients.
const SYSCALLS: &str = "trace=?open,openat,?creat,read,write,pwrite64,writev,pwritev,pwritev2,\
    lseek,ftruncate,truncate,fallocate,?rename,renameat,renameat2,?unlink,unlinkat,?rmdir,\
    ?mkdir,mkdirat,?link,linkat,fsync,fdatasync,sync,syncfs,close,close_range,dup,?dup2,dup3,\
    fcntl,?accept,accept4,recvfrom,recvmsg,sendto,sendmsg,mmap,copy_file_range,sendfile,splice";

/// One recorded workload: the traced runs, in order, below `root`.
pub struct Scenario {
    pub name: &'static str,
    /// The traced root: it holds only the data dir, `d`.
    pub root: PathBuf,
    /// The root before the first run (all of it durable).
    pub initial: Fs,
    pub traces: Vec<PathBuf>,
    /// What the workload itself saw go wrong (a write refused that should
    /// not be, a fault that did not fire): reported with the crash states.
    pub problems: Vec<String>,
    /// Every put a client saw acknowledged: id and data (to check that
    /// the trace lost none).
    pub acked: Vec<(String, Value)>,
    _dir: TestDir,
}

fn strace_options(trace: &Path, inject: Option<&str>) -> Vec<String> {
    let mut o: Vec<String> = ["-f", "-qq", "-xx", "-y", "-s", "16777216", "-e", SYSCALLS]
        .map(String::from)
        .to_vec();
    o.extend([
        "-o".into(),
        trace.to_str().expect("a UTF-8 temp path").into(),
    ]);
    if let Some(inject) = inject {
        o.extend(["-e".into(), format!("inject={inject}")]);
    }
    o
}

fn start(dir: &TestDir, trace: &Path, inject: Option<&str>) -> Straced {
    let options = strace_options(trace, inject);
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    dir.start_under_strace(&options, &["--compact-min-bytes", COMPACT_MIN_BYTES])
}

/// A test dir whose data dir is `<root>/r/d`; `d` exists if `create_data`.
fn scenario_dir(create_data: bool) -> (TestDir, PathBuf, Fs) {
    let mut dir = TestDir::new();
    std::fs::remove_dir(&dir.data).expect("remove the data dir");
    let root = dir.root().join("r");
    std::fs::create_dir(&root).expect("create the traced root");
    dir.data = root.join(DATA);
    let mut initial = Fs::new();
    if create_data {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir.data)
            .expect("create the data dir");
        initial.apply(&FsOp::Create {
            parent: ROOT,
            name: DATA.into(),
            ino: 1,
            dir: true,
        });
    }
    (dir, root, initial)
}

/// The worker creates its data dir itself: a few writes, a SIGUSR1
/// checkpoint, more writes, SIGTERM.
pub fn fresh() -> Scenario {
    let (dir, root, initial) = scenario_dir(false);
    let traces = vec![dir.root().join("fresh.trace")];
    let (mut problems, mut acked) = (Vec::new(), Vec::new());
    let mut w = start(&dir, &traces[0], None);
    let answers = round(&w, "f", 2, 8);
    expect_all_ok(&mut problems, &answers, "round f");
    checkpoint(&w);
    acked.extend(acked_puts(&answers));
    let answers = round(&w, "g", 2, 8);
    expect_all_ok(&mut problems, &answers, "round g");
    acked.extend(acked_puts(&answers));
    stop(&mut w, &mut problems);
    Scenario {
        name: "fresh data dir",
        root,
        initial,
        traces,
        problems,
        acked,
        _dir: dir,
    }
}

/// An empty data dir that exists: pipelined clients, compactions (the
/// first ones fail), SIGUSR1 (once while writes run, once while a
/// snapshot is being written), deletes, SIGTERM; then a restart in which
/// the third journal sync fails (EIO), so that writes are refused, and
/// SIGTERM again.
pub fn busy() -> Scenario {
    let (dir, root, initial) = scenario_dir(true);
    let traces = vec![dir.root().join("run1.trace"), dir.root().join("run2.trace")];
    // Renames are slowed down, so that a snapshot is in flight for a while.
    let (mut problems, mut acked) = (Vec::new(), Vec::new());
    let mut w = start(&dir, &traces[0], Some(SLOW_RENAMES));
    // A directory where sessions.json goes makes snapshots fail (the
    // rename over it does), so that the first one that works covers, and
    // deletes, several journal generations at once.
    let blocker = dir.data.join("sessions.json");
    std::fs::create_dir(&blocker).expect("block sessions.json");
    let mut signals = 0;
    let answers = round(&w, "a", 12, 20);
    expect_all_ok(&mut problems, &answers, "run 1, round a");
    acked.extend(acked_puts(&answers));
    signal(&w, &mut signals);
    wait_answered(&w, signals);
    if !w.stderr().contains("snapshot failed") && !w.stderr().contains("checkpoint failed") {
        problems.push("run 1: no snapshot failed while sessions.json was blocked".into());
    }
    std::fs::remove_dir(&blocker).expect("unblock sessions.json");
    let answers = std::thread::scope(|s| {
        let traffic = s.spawn(|| round(&w, "b", 12, 20));
        signal(&w, &mut signals); // while writes (and maybe a compaction) run
        traffic.join().expect("round b")
    });
    expect_all_ok(&mut problems, &answers, "run 1, round b");
    acked.extend(acked_puts(&answers));
    wait_answered(&w, signals);
    let answers = round(&w, "c", 12, 20);
    expect_all_ok(&mut problems, &answers, "run 1, round c");
    acked.extend(acked_puts(&answers));
    // A SIGUSR1 while a snapshot is being written and nothing was written
    // since it started: its answer must wait for that snapshot. First no
    // snapshot runs (one journal, no temp file), then a write and a
    // SIGUSR1 start one: the temp file that appears is that one's.
    wait_until(DEADLINE, "no snapshot being written", || {
        (dir.journals().len() == 1 && !snapshot_running(&dir)).then_some(())
    });
    let a = w
        .connect()
        .call(&json!({"op": "put", "id": "z0", "data": 0}));
    expect_all_ok(&mut problems, &[a], "run 1, put z0");
    signal(&w, &mut signals);
    wait_until(DEADLINE, "a snapshot being written", || {
        snapshot_running(&dir).then_some(())
    });
    signal(&w, &mut signals);
    wait_answered(&w, signals);
    let stats = w.connect().call(&json!({"op": "stats"}));
    if stats["checkpoints"].as_u64() < Some(2) {
        problems.push(format!(
            "run 1 should have written several snapshots: {stats}"
        ));
    }
    stop(&mut w, &mut problems);

    let mut w = start(&dir, &traces[1], Some("fdatasync:error=EIO:when=3"));
    // Rounds one after another: a connection's pipelined writes share
    // commits, so one round may take only a sync or two, and the third
    // must come during the writes.
    let answers: Vec<Value> = ["c", "d", "e", "h"]
        .iter()
        .flat_map(|tag| round(&w, tag, 8, 10))
        .collect();
    acked.extend(acked_puts(&answers));
    let refused = answers
        .iter()
        .filter(|a| a["error"]["code"] == "unavailable")
        .count();
    if refused == 0 {
        problems.push("run 2: the injected sync failure (EIO) refused no write".into());
    }
    let odd: Vec<&Value> = answers
        .iter()
        .filter(|a| a["ok"] != true && a["error"]["code"] != "unavailable")
        .collect();
    if let Some(first) = odd.first() {
        problems.push(format!("run 2: {} odd answers, e.g. {first}", odd.len()));
    }
    stop(&mut w, &mut problems);
    Scenario {
        name: "busy",
        root,
        initial,
        traces,
        problems,
        acked,
        _dir: dir,
    }
}

/// Id and data of every put answered `ok`.
fn acked_puts(answers: &[Value]) -> impl Iterator<Item = (String, Value)> + '_ {
    answers.iter().filter(|a| a["ok"] == true).filter_map(|a| {
        let id = a["session"]["id"].as_str()?;
        Some((id.to_string(), a["session"]["data"].clone()))
    })
}

/// Notes a problem if any of `answers` is not `ok`.
fn expect_all_ok(problems: &mut Vec<String>, answers: &[Value], what: &str) {
    let bad: Vec<&Value> = answers.iter().filter(|a| a["ok"] != true).collect();
    if let Some(first) = bad.first() {
        problems.push(format!("{what}: {} writes failed, e.g. {first}", bad.len()));
    }
}

/// `conns` connections at once, each sending `ops` writes to its own ids
/// without waiting, then reading the answers. Ids: `{tag}{conn}-{n}`.
fn round(w: &Straced, tag: &str, conns: usize, ops: usize) -> Vec<Value> {
    let barrier = Barrier::new(conns);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..conns)
            .map(|c| {
                let (barrier, mut conn) = (&barrier, w.connect());
                s.spawn(move || {
                    let requests = requests(tag, c, ops);
                    barrier.wait();
                    for r in &requests {
                        conn.send(r.to_string().as_bytes()).expect("send a request");
                    }
                    let answers: Vec<Value> = requests.iter().map(|_| read(&mut conn)).collect();
                    answers
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a client thread"))
            .collect()
    })
}

fn read(conn: &mut Conn) -> Value {
    let line = conn
        .recv()
        .expect("read an answer")
        .expect("an answer, not EOF");
    serde_json::from_str(&line).expect("answers are JSON")
}

/// Puts with unique data, and now and then a delete of the id just put.
fn requests(tag: &str, c: usize, ops: usize) -> Vec<Value> {
    let id = |n: usize| format!("{tag}{c}-{}", n % IDS_PER_CONN);
    (0..ops)
        .map(|n| {
            if n % 7 == 6 {
                json!({"op": "delete", "id": id(n - 1)})
            } else {
                // The padding sorts last, so reports cut it, not the rest.
                let data = json!({"tag": tag, "c": c, "n": n, "z": "x".repeat(PAD)});
                json!({"op": "put", "id": id(n), "data": data})
            }
        })
        .collect()
}

/// Whether a snapshot's temp file is in the data dir.
fn snapshot_running(dir: &TestDir) -> bool {
    dir.names("").iter().any(|n| n.starts_with(".tmp-sessions"))
}

/// Sends SIGUSR1, counts it, and waits until the worker has taken it: two
/// SIGUSR1s pending at once merge into one, which would leave one of them
/// unanswered.
fn signal(w: &Straced, sent: &mut usize) {
    let pid = w.pid.expect("the worker answered ping");
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).expect("SIGUSR1 the worker");
    *sent += 1;
    wait_until(DEADLINE, "the worker to take the SIGUSR1", || {
        let taken = w.stderr().matches("SIGUSR1 received").count();
        (taken >= *sent).then_some(())
    });
}

/// Waits until the log answers `sent` SIGUSR1s ("checkpoint written" or
/// "checkpoint failed").
fn wait_answered(w: &Straced, sent: usize) {
    wait_until(DEADLINE, "the SIGUSR1 answers in the log", || {
        let log = w.stderr();
        let answered = log
            .lines()
            .filter(|l| l.contains("checkpoint written") || l.contains("checkpoint failed"))
            .count();
        (answered >= sent).then_some(())
    });
}

/// SIGUSR1, then waits for its answer.
fn checkpoint(w: &Straced) {
    let mut sent = 0;
    signal(w, &mut sent);
    wait_answered(w, sent);
}

/// SIGTERM, then waits for the worker and strace to end.
fn stop(w: &mut Straced, problems: &mut Vec<String>) {
    let pid = w.pid.expect("the worker answered ping");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM the worker");
    let status = w.strace.wait_exit(DEADLINE);
    if !status.success() {
        let log = w.stderr();
        let last = log.lines().last().unwrap_or("");
        problems.push(format!(
            "the worker did not stop cleanly ({status}): {last}"
        ));
    }
}
