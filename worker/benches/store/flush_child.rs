//! The flush model's child process: (b) and the bare loop, in a process
//! of their own so that the flush delay can be injected into it.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::super::{
    async_cell, sqlite_create, sqlite_writer, CommitStats, Measured, Slice, SqlPut, RECORD_BYTES,
};
use super::floor::{self, Floor};
use super::{BARE_FILE, CHILD_ENV};

/// What a child process was started for.
pub struct ChildRequest {
    sessions: usize,
    dir: PathBuf,
}

/// `Some` in a process the flush model started.
pub fn child_request() -> Option<ChildRequest> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let (n, dir) = v
        .split_once(':')
        .unwrap_or_else(|| panic!("{CHILD_ENV}={v:?} is not SESSIONS:DIR"));
    Some(ChildRequest {
        sessions: n
            .parse()
            .unwrap_or_else(|_| panic!("{CHILD_ENV}={v:?}: {n:?} is not a count")),
        dir: PathBuf::from(dir),
    })
}

/// (b) and the bare loop in a process of their own, so that the flush
/// delay can be injected into it. Answers one line per request read on
/// stdin until it closes:
/// - `sqlite W WARMUP MEASURED` -> `OPS SECS WRITES COMMITS`;
/// - `bare WARMUP MEASURED` -> `OPS SECS`;
/// - `floor echo|sync PATH` -> `1` once a floor server listens on PATH
///   (`flush_floor.rs`).
pub fn child_main(req: ChildRequest) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let conn = sqlite_create(&req.dir.join("sessions.db"), req.sessions);
    let (tx, rx) = mpsc::channel::<SqlPut>(8192);
    let stats = Arc::new(Mutex::new(CommitStats::default()));
    let writer = {
        let stats = stats.clone();
        std::thread::spawn(move || sqlite_writer(conn, rx, stats))
    };
    let bare = Arc::new(bare_file(&req.dir.join("bare.bin")));
    let floor_file = Arc::new(bare_file(&req.dir.join("floor.bin")));
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("answer the bench");
    out.flush().expect("answer the bench");
    for line in std::io::stdin().lines() {
        let line = line.expect("read a request from the bench");
        let words: Vec<&str> = line.split_whitespace().collect();
        let secs = |i: usize| -> Duration {
            Duration::from_secs_f64(words[i].parse().expect("seconds from the bench"))
        };
        let answer = match words[0] {
            "sqlite" => {
                let w: usize = words[1].parse().expect("writers from the bench");
                let slice = Slice {
                    warmup: secs(2),
                    measured: secs(3),
                };
                let before = *stats.lock().expect("stats lock");
                let tx = tx.clone();
                let m = async_cell(&rt, slice, w, req.sessions, move |id, data| {
                    let tx = tx.clone();
                    async move {
                        let (reply, done) = oneshot::channel();
                        tx.send(SqlPut { id, data, reply })
                            .await
                            .expect("the sqlite writer is gone");
                        done.await.expect("the sqlite writer dropped an upsert");
                    }
                });
                let s = stats.lock().expect("stats lock").delta(before);
                format!("{} {} {} {}", m.ops, m.secs, s.writes, s.commits)
            }
            "bare" => {
                let m = bare_loop(&bare, secs(1), secs(2));
                format!("{} {}", m.ops, m.secs)
            }
            "floor" => {
                let how = Floor::from_word(words[1]);
                floor::listen(how, PathBuf::from(words[2]), floor_file.clone());
                "1".to_string()
            }
            other => panic!("unknown request {other:?} from the bench"),
        };
        writeln!(out, "{answer}").expect("answer the bench");
        out.flush().expect("answer the bench");
    }
    drop(tx);
    writer.join().expect("the sqlite writer panicked");
    let _ = std::fs::remove_file(req.dir.join("bare.bin"));
    let _ = std::fs::remove_file(req.dir.join("floor.bin"));
}

/// A zero-filled, synced file: overwriting it changes no size to flush.
fn bare_file(path: &Path) -> std::fs::File {
    let f = std::fs::File::create(path).expect("create the bare loop's file");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..BARE_FILE / zeros.len() as u64 {
        f.write_all_at(&zeros, i * zeros.len() as u64)
            .expect("zero fill");
    }
    f.sync_all().expect("sync the bare loop's file");
    f
}

/// `pwrite` of one record + `fdatasync`, as often as it goes.
fn bare_loop(f: &std::fs::File, warmup: Duration, measured: Duration) -> Measured {
    let rec = vec![b'x'; RECORD_BYTES];
    let mut pos = 0u64;
    let mut one = || {
        if pos + RECORD_BYTES as u64 > BARE_FILE {
            pos = 0;
        }
        f.write_all_at(&rec, pos).expect("pwrite");
        // The worker's own data sync, slowed as the worker's is.
        shared::sync::data_sync(f).expect("fdatasync");
        pos += RECORD_BYTES as u64;
    };
    let t = Instant::now();
    while t.elapsed() < warmup {
        one();
    }
    let (t0, mut ops) = (Instant::now(), 0u64);
    while t0.elapsed() < measured {
        one();
        ops += 1;
    }
    Measured {
        ops,
        secs: t0.elapsed().as_secs_f64(),
    }
}
