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
use crate::support::strace::Straced;
use crate::support::{wait_until, Conn, TestDir, DEADLINE};

/// Small, so that size-triggered snapshots (compactions) happen often.
const COMPACT_MIN_BYTES: &str = "8192";
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
    let mut w = start(&dir, &traces[0], None);
    expect_all_ok(&round(&w, "f", 2, 8), "fresh, round f");
    checkpoint(&w);
    expect_all_ok(&round(&w, "g", 2, 8), "fresh, round g");
    stop(&mut w);
    Scenario {
        name: "fresh data dir",
        root,
        initial,
        traces,
        _dir: dir,
    }
}

/// An empty data dir that exists: pipelined clients, compactions,
/// SIGUSR1 (once while writes run), deletes, SIGTERM; then a restart in
/// which the third journal sync fails (EIO), so that writes are refused,
/// and SIGTERM again.
pub fn busy() -> Scenario {
    let (dir, root, initial) = scenario_dir(true);
    let traces = vec![dir.root().join("run1.trace"), dir.root().join("run2.trace")];
    let mut w = start(&dir, &traces[0], None);
    let answers = round(&w, "a", 12, 20);
    expect_all_ok(&answers, "run 1, round a");
    checkpoint(&w);
    let pid = w.pid.expect("the worker answered ping");
    let answers = std::thread::scope(|s| {
        let traffic = s.spawn(|| round(&w, "b", 12, 20));
        // Best effort: a SIGUSR1 while writes (and maybe a compaction) run.
        kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).expect("SIGUSR1 the worker");
        traffic.join().expect("round b")
    });
    expect_all_ok(&answers, "run 1, round b");
    let answers = round(&w, "c", 12, 20);
    expect_all_ok(&answers, "run 1, round c");
    let stats = w.connect().call(&json!({"op": "stats"}));
    assert!(
        stats["checkpoints"].as_u64() >= Some(4),
        "the workload should have compacted and checkpointed several times: {stats}"
    );
    stop(&mut w);

    let mut w = start(&dir, &traces[1], Some("fdatasync:error=EIO:when=3"));
    let answers = round(&w, "c", 8, 10);
    let refused = answers
        .iter()
        .filter(|a| a["error"]["code"] == "unavailable")
        .count();
    assert!(
        refused > 0,
        "the injected sync failure refused no write: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| a["ok"] == true || a["error"]["code"] == "unavailable"),
        "run 2: {answers:?}"
    );
    stop(&mut w);
    Scenario {
        name: "busy",
        root,
        initial,
        traces,
        _dir: dir,
    }
}

fn expect_all_ok(answers: &[Value], what: &str) {
    let bad: Vec<&Value> = answers.iter().filter(|a| a["ok"] != true).collect();
    assert!(
        bad.is_empty(),
        "{what}: {} writes failed: {bad:?}",
        bad.len()
    );
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
                let data = json!({"tag": tag, "c": c, "n": n, "pad": "x".repeat(PAD)});
                json!({"op": "put", "id": id(n), "data": data})
            }
        })
        .collect()
}

/// SIGUSR1, then waits until the checkpoint count goes up.
fn checkpoint(w: &Straced) {
    let count = || w.connect().call(&json!({"op": "stats"}))["checkpoints"].as_u64();
    let before = count();
    let pid = w.pid.expect("the worker answered ping");
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).expect("SIGUSR1 the worker");
    wait_until(DEADLINE, "the SIGUSR1 checkpoint", || {
        (count() > before).then_some(())
    });
}

/// SIGTERM, then waits for the worker and strace to end.
fn stop(w: &mut Straced) {
    let pid = w.pid.expect("the worker answered ping");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM the worker");
    let status = w.strace.wait_exit(DEADLINE);
    assert!(
        status.success(),
        "the worker did not stop cleanly ({status}):\n{}",
        w.stderr()
    );
}
