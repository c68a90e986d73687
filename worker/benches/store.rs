//! Durable upserts per second, side by side in one run:
//!
//! - (a) our store in-process (`Store::put`: journal + group commit);
//! - (b) SQLite in WAL mode with `synchronous=FULL`, in-process, behind the
//!   same single batching writer as ours (one thread drains every pending
//!   upsert, one transaction, one commit, then answers them all);
//! - (c) the naive design: rewrite the whole `sessions.json` atomically
//!   (temp file, write, fsync, rename, fsync dir) on every write;
//! - (d) ours end to end: the real worker binary, N client connections
//!   doing request/response puts on its Unix socket.
//!
//! Each at 1, 8 and 32 concurrent writers and at 1,000 and 100,000 live
//! sessions of ~1 KB; the keys written are spread uniformly over the live
//! sessions (upserts of existing ids). Then the time to restore the largest
//! store and answer the first request, next to a bare
//! `serde_json::from_slice::<serde_json::Value>` of the same snapshot, and
//! two plain fdatasync loops as the disk's baseline.
//!
//! Then the flush-latency model (`flush.rs`): (d) and (b) again, at the
//! smallest size, with every flush made slower by an injected delay (17 ms
//! is a Mac's `F_FULLFSYNC`), reporting writes per flush and the share of
//! the ideal group commit. Linux-only for delays above 0 (it uses strace).
//!
//! Run: `cargo bench -p worker --bench store`
//!
//! Environment variables (or flags after `--`, which win) shape a run:
//!
//! | env                      | flag                   | default                              |
//! |--------------------------|------------------------|--------------------------------------|
//! | `BENCH_SECONDS`          | `--seconds S`          | 3 (measured seconds per cell)        |
//! | `BENCH_ROUNDS`           | `--rounds N`           | 3 (a cell's time is split into N     |
//! |                          |                        | slices, designs interleaved)         |
//! | `BENCH_WARMUP`           | `--warmup S`           | 0.3 (unmeasured, before each slice)  |
//! | `BENCH_SIZES`            | `--sizes A,B`          | 1000,100000                          |
//! | `BENCH_WRITERS`          | `--writers A,B,C`      | 1,8,32                               |
//! | `BENCH_NAIVE_MAX_WRITES` | `--naive-max-writes N` | 3 per slice, at >= 10,000 sessions   |
//! | `BENCH_RESTORE_REPS`     | `--restore-reps N`     | 3 (the median is reported)           |
//! | `BENCH_TMPDIR`           | `--tmpdir DIR`         | /tmp                                 |
//! | `BENCH_ONLY`             | `--only PART`          | all; `designs` (the table, baselines |
//! |                          |                        | and restore) or `flush` (the model)  |
//! | `BENCH_FLUSH_DELAYS`     | `--flush-delays A,B`   | 17 (ms added to every flush; 0 = the |
//! |                          |                        | real disk alone)                     |
//! | `BENCH_FLUSH_INJECT`     | `--flush-inject HOW`   | hook (each program holds its thread  |
//! |                          |                        | after each sync) or strace           |
//!
//! Every cell's time is split into `rounds` slices and, within a round, all
//! sizes and designs take their turn before the next round starts, so a
//! busy neighbour or a slow stretch of the disk hits every cell alike.
//!
//! After each slice of ours (in-process or through the worker) the bench
//! waits for a checkpoint the slice started to finish and counts that wait
//! in ours' time, so a snapshot written in the background never lands on
//! the next design's clock.
//!
//! e.g. `BENCH_SECONDS=1 BENCH_SIZES=1000 cargo bench -p worker --bench store`,
//! or the flush model alone at three flush times:
//! `BENCH_ONLY=flush BENCH_FLUSH_DELAYS=0,2,17 BENCH_SIZES=1000 cargo bench -p worker --bench store`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::value::RawValue;
use shared::client::Client;
use shared::paths::DataDir;
use shared::protocol::Session;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use worker::store::{snapshot, Store, StoreOptions};

#[path = "store/flush.rs"]
mod flush;

/// Bytes of JSON `data` per session.
const DATA_BYTES: usize = 1000;
/// The most upserts one SQLite commit takes (the same cap as our writer).
const MAX_BATCH: usize = 4096;
/// A journal record for one such session is about this long.
const RECORD_BYTES: usize = 1120;
/// The naive design is time-boxed to a few writes from this size up.
const NAIVE_CAP_FROM: usize = 10_000;

const TARGET_VS_SQLITE: f64 = 1.0;
const TARGET_SCALING: f64 = 0.8;
const TARGET_RESTORE: f64 = 2.0;

// ---------------------------------------------------------------- config

#[derive(Debug, Clone)]
struct Config {
    seconds: f64,
    warmup: f64,
    sizes: Vec<usize>,
    writers: Vec<usize>,
    rounds: usize,
    naive_max_writes: u64,
    restore_reps: usize,
    tmpdir: PathBuf,
    only: Only,
    /// Injected on top of every flush by the flush model (`flush.rs`).
    flush_delays: Vec<Duration>,
    /// How the flush model slows the flushes down.
    flush_inject: Inject,
}

/// How the flush model slows every flush down (`flush.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inject {
    /// The programs hold the syncing thread after each sync themselves
    /// (`shared::sync::bench_pause`).
    Hook,
    /// strace holds it (`delay_exit`), Linux-only.
    Strace,
}

/// Which parts of the bench a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    All,
    /// The designs table, the disk baselines and the restore.
    Designs,
    /// The flush-latency model.
    Flush,
}

const KNOBS: [(&str, &str); 11] = [
    ("seconds", "BENCH_SECONDS"),
    ("warmup", "BENCH_WARMUP"),
    ("rounds", "BENCH_ROUNDS"),
    ("sizes", "BENCH_SIZES"),
    ("writers", "BENCH_WRITERS"),
    ("naive-max-writes", "BENCH_NAIVE_MAX_WRITES"),
    ("restore-reps", "BENCH_RESTORE_REPS"),
    ("tmpdir", "BENCH_TMPDIR"),
    ("only", "BENCH_ONLY"),
    ("flush-delays", "BENCH_FLUSH_DELAYS"),
    ("flush-inject", "BENCH_FLUSH_INJECT"),
];

impl Config {
    /// One of the `rounds` stretches a cell's time is split into.
    fn slice(&self) -> Slice {
        Slice {
            warmup: Duration::from_secs_f64(self.warmup),
            measured: Duration::from_secs_f64(self.seconds / self.rounds as f64),
        }
    }

    fn from_env_and_args() -> Result<Config, String> {
        let mut raw: BTreeMap<&str, (String, String)> = BTreeMap::new();
        for (flag, env) in KNOBS {
            if let Ok(v) = std::env::var(env) {
                raw.insert(flag, (v, env.to_string()));
            }
        }
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            // `cargo bench` passes `--bench` to harness-less benches.
            if arg == "--bench" {
                continue;
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = args
                        .next()
                        .ok_or_else(|| format!("--{name} needs a value"))?;
                    (name.to_string(), v)
                }
            };
            let (flag, _) = KNOBS
                .iter()
                .find(|(f, _)| *f == name)
                .ok_or_else(|| format!("unknown flag --{name}; known: {}", flag_list()))?;
            raw.insert(flag, (value, format!("--{flag}")));
        }
        let seconds = |k: &str, default: f64| -> Result<f64, String> {
            match raw.get(k) {
                None => Ok(default),
                Some((v, src)) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("{src}={v:?} is not a number of seconds")),
            }
        };
        let list = |k: &str, default: &[usize]| -> Result<Vec<usize>, String> {
            match raw.get(k) {
                None => Ok(default.to_vec()),
                Some((v, src)) => v
                    .split(',')
                    .map(|x| {
                        x.trim()
                            .replace('_', "")
                            .parse::<usize>()
                            .ok()
                            .filter(|n| *n > 0)
                    })
                    .collect::<Option<Vec<_>>>()
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| {
                        format!("{src}={v:?} is not a comma-separated list of positive numbers")
                    }),
            }
        };
        let number = |k: &str, default: u64| -> Result<u64, String> {
            match raw.get(k) {
                None => Ok(default),
                Some((v, src)) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{src}={v:?} is not a positive number")),
            }
        };
        let seconds_per_cell = seconds("seconds", 3.0)?;
        if seconds_per_cell <= 0.0 {
            return Err("the measured time per cell must be above 0 seconds".into());
        }
        let only = match raw.get("only") {
            None => Only::All,
            Some((v, src)) => match v.as_str() {
                "all" => Only::All,
                "designs" => Only::Designs,
                "flush" => Only::Flush,
                _ => return Err(format!("{src}={v:?} is not one of all, designs, flush")),
            },
        };
        let flush_inject = match raw.get("flush-inject") {
            None => Inject::Hook,
            Some((v, src)) => match v.as_str() {
                "hook" => Inject::Hook,
                "strace" => Inject::Strace,
                _ => return Err(format!("{src}={v:?} is not one of hook, strace")),
            },
        };
        let flush_delays = match raw.get("flush-delays") {
            None => vec![Duration::from_millis(17)],
            Some((v, src)) => v
                .split(',')
                .map(|x| {
                    x.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|ms| ms.is_finite() && (0.0..=10_000.0).contains(ms))
                        .map(|ms| Duration::from_micros((ms * 1000.0).round() as u64))
                })
                .collect::<Option<Vec<_>>>()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    format!(
                        "{src}={v:?} is not a comma-separated list of milliseconds \
                         (0 to 10000; 0 = the real disk alone)"
                    )
                })
                .map(|mut l| {
                    // Each delay is one worker and one data dir.
                    l.sort();
                    l.dedup();
                    l
                })?,
        };
        Ok(Config {
            only,
            flush_delays,
            flush_inject,
            seconds: seconds_per_cell,
            warmup: seconds("warmup", 0.3)?,
            rounds: number("rounds", 3)? as usize,
            sizes: list("sizes", &[1_000, 100_000])?,
            writers: list("writers", &[1, 8, 32])?,
            naive_max_writes: number("naive-max-writes", 3)?,
            restore_reps: number("restore-reps", 3)? as usize,
            tmpdir: raw
                .get("tmpdir")
                .map_or_else(|| PathBuf::from("/tmp"), |(v, _)| PathBuf::from(v)),
        })
    }
}

fn flag_list() -> String {
    KNOBS
        .iter()
        .map(|(f, _)| format!("--{f}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------- data

fn session_id(k: usize) -> String {
    format!("s-{k:07}")
}

/// About `DATA_BYTES` of JSON that differs per writer and write.
fn payload(writer: usize, seq: u64) -> String {
    const WORDS: &[u8] = b"the quick brown fox jumps over the lazy dog; ";
    let mut s = String::with_capacity(DATA_BYTES + 8);
    s.push_str(&format!(
        r#"{{"writer":{writer},"seq":{seq},"messages":[{{"role":"user","content":""#
    ));
    let fill = DATA_BYTES.saturating_sub(s.len() + 4);
    let shift = seq as usize % WORDS.len();
    s.extend((0..fill).map(|i| WORDS[(i + shift) % WORDS.len()] as char));
    s.push_str(r#""}]}"#);
    s
}

fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("the payload is valid JSON")
}

/// A different key sequence for every writer of every slice.
fn rng_for(writer: usize) -> StdRng {
    static SLICES: AtomicU64 = AtomicU64::new(0);
    let slice = SLICES.fetch_add(1, Ordering::Relaxed);
    StdRng::seed_from_u64((slice << 16) ^ writer as u64)
}

// ---------------------------------------------------------------- measuring

/// One measured stretch: `warmup` unmeasured, then `measured`.
#[derive(Debug, Clone, Copy)]
struct Slice {
    warmup: Duration,
    measured: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    ops: u64,
    secs: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn add(&mut self, other: Measured) {
        self.ops += other.ops;
        self.secs += other.secs;
    }
}

/// Lets writers run `slice.warmup` unmeasured, then counts the writes
/// completed over `slice.measured` of wall-clock time.
fn measure_window(done: &AtomicU64, slice: Slice) -> Measured {
    std::thread::sleep(slice.warmup);
    let (c0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(slice.measured);
    let (c1, t1) = (done.load(Ordering::Relaxed), Instant::now());
    Measured {
        ops: c1 - c0,
        secs: (t1 - t0).as_secs_f64(),
    }
}

/// `writers` tokio tasks, each upserting random existing ids in a loop.
fn async_cell<F, Fut>(
    rt: &Runtime,
    slice: Slice,
    writers: usize,
    sessions: usize,
    put: F,
) -> Measured
where
    F: Fn(String, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (put, stop, done) = (put.clone(), stop.clone(), done.clone());
            rt.spawn(async move {
                let mut rng = rng_for(w);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    put(session_id(rng.gen_range(0..sessions)), payload(w, seq)).await;
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let measured = measure_window(&done, slice);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("a writer task panicked");
        }
    });
    measured
}

/// `writers` OS threads, each with its own `put` (e.g. its own connection).
fn thread_cell<W>(
    slice: Slice,
    writers: usize,
    sessions: usize,
    mut make: impl FnMut(usize) -> W,
) -> Measured
where
    W: FnMut(String, String) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let mut put = make(w);
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut rng = rng_for(w);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    put(session_id(rng.gen_range(0..sessions)), payload(w, seq));
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let measured = measure_window(&done, slice);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a writer thread panicked");
    }
    measured
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

// ---------------------------------------------------------------- (a) ours

/// Puts `n` sessions through the Store API (4,096 in flight), then closes
/// the store, which writes `sessions.json` (nothing left to replay).
fn populate_ours(rt: &Runtime, dir: &DataDir, n: usize) {
    let (store, _) = Store::open(dir, StoreOptions::default()).expect("open a new store");
    rt.block_on(async {
        let mut k = 0;
        while k < n {
            let end = (k + MAX_BATCH).min(n);
            let mut set = tokio::task::JoinSet::new();
            for i in k..end {
                let store = store.clone();
                set.spawn(async move {
                    store
                        .put(session_id(i), raw(payload(0, i as u64)))
                        .await
                        .map(|_| ())
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("a populate task panicked").expect("populate put");
            }
            k = end;
        }
        store.close().await.expect("close after populating");
    });
}

#[derive(Debug, Default, Clone, Copy)]
struct CommitStats {
    writes: u64,
    commits: u64,
    checkpoints: u64,
}

impl CommitStats {
    fn add(self, other: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes + other.writes,
            commits: self.commits + other.commits,
            checkpoints: self.checkpoints + other.checkpoints,
        }
    }

    fn delta(self, before: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes - before.writes,
            commits: self.commits - before.commits,
            checkpoints: self.checkpoints - before.checkpoints,
        }
    }

    fn note(self, commit_word: &str) -> String {
        let per = self.writes as f64 / self.commits.max(1) as f64;
        let mut s = format!(
            "{} writes in {} {commit_word}s = {per:.1}/{commit_word}",
            thousands(self.writes as f64),
            thousands(self.commits as f64)
        );
        if self.checkpoints > 0 {
            s.push_str(&format!(", {} checkpoint(s)", self.checkpoints));
        }
        s
    }
}

fn store_stats(store: &Store) -> CommitStats {
    let s = store.stats();
    CommitStats {
        writes: s.writes,
        commits: s.commits,
        checkpoints: s.checkpoints,
    }
}

// ---------------------------------------------------------------- (b) SQLite

const UPSERT: &str =
    "INSERT INTO sessions (id, data, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
     ON CONFLICT(id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at";

struct SqlPut {
    id: String,
    data: String,
    reply: oneshot::Sender<()>,
}

/// A fresh database in WAL mode with `synchronous=FULL`, holding `n`
/// sessions inserted in one transaction (then the WAL checkpointed away).
fn sqlite_create(path: &Path, n: usize) -> rusqlite::Connection {
    let mut conn = rusqlite::Connection::open(path).expect("open sqlite");
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .expect("synchronous");
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    conn.execute_batch(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, \
         created_at TEXT NOT NULL, updated_at TEXT NOT NULL);",
    )
    .expect("create table");
    let now = shared::time::now_rfc3339();
    let tx = conn.transaction().expect("begin");
    {
        let mut st = tx
            .prepare(
                "INSERT INTO sessions (id, data, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            )
            .expect("prepare insert");
        for k in 0..n {
            st.execute(rusqlite::params![session_id(k), payload(0, k as u64), now])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("wal_checkpoint");
    conn
}

/// The batching writer, shaped like ours: wait for one, drain the rest
/// (up to `MAX_BATCH`), one transaction, one commit, answer them all.
fn sqlite_writer(
    mut conn: rusqlite::Connection,
    mut rx: mpsc::Receiver<SqlPut>,
    stats: Arc<Mutex<CommitStats>>,
) {
    let mut batch = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let now = shared::time::now_rfc3339();
        let tx = conn.transaction().expect("BEGIN");
        {
            let mut st = tx.prepare_cached(UPSERT).expect("prepare upsert");
            for p in &batch {
                st.execute(rusqlite::params![p.id, p.data, now])
                    .expect("upsert");
            }
        }
        tx.commit().expect("COMMIT");
        // The flush model's slower disk, after the commit's sync (flush.rs).
        shared::sync::bench_pause();
        {
            let mut s = stats.lock().expect("stats lock");
            s.commits += 1;
            s.writes += batch.len() as u64;
        }
        for p in batch.drain(..) {
            let _ = p.reply.send(());
        }
    }
}

// ---------------------------------------------------------------- (c) naive

/// Every session in memory; every write rewrites the whole file durably.
struct Naive {
    path: PathBuf,
    map: Mutex<BTreeMap<String, Arc<Session>>>,
}

impl Naive {
    fn new(path: PathBuf, n: usize) -> Naive {
        let now = shared::time::now_rfc3339();
        let map = (0..n)
            .map(|k| {
                let s = Session {
                    id: session_id(k),
                    data: raw(payload(0, k as u64)),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                };
                (s.id.clone(), Arc::new(s))
            })
            .collect();
        Naive {
            path,
            map: Mutex::new(map),
        }
    }

    /// Writes the current state (used once, as the initial file).
    fn save(&self) {
        let map = self.map.lock().expect("naive lock");
        shared::fsutil::atomic_write(&self.path, |w| snapshot::write_to(w, map.values()))
            .expect("naive write");
    }

    /// One upsert, durable when this returns true. Returns false, writing
    /// nothing, when `deadline` passed while it waited for its turn.
    fn put(&self, id: String, data: String, deadline: Instant) -> bool {
        let mut map = self.map.lock().expect("naive lock");
        if Instant::now() >= deadline {
            return false;
        }
        let now = shared::time::now_rfc3339();
        let created_at = map
            .get(&id)
            .map_or_else(|| now.clone(), |s| s.created_at.clone());
        let session = Session {
            id: id.clone(),
            data: raw(data),
            created_at,
            updated_at: now,
        };
        map.insert(id, Arc::new(session));
        shared::fsutil::atomic_write(&self.path, |w| snapshot::write_to(w, map.values()))
            .expect("naive write");
        true
    }
}

/// Writers until `seconds` pass or `max_writes` were started; each write
/// can take long (a whole-file rewrite), so the time is measured from the
/// start until the last write in progress has finished.
fn naive_cell(
    slice: Slice,
    naive: &Naive,
    writers: usize,
    sessions: usize,
    max_writes: u64,
) -> Measured {
    let started = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    let deadline = t0 + slice.measured;
    std::thread::scope(|s| {
        for w in 0..writers {
            let (started, done) = (&started, &done);
            s.spawn(move || {
                let mut rng = rng_for(w);
                let mut seq = 0u64;
                while Instant::now() < deadline
                    && started.fetch_add(1, Ordering::Relaxed) < max_writes
                {
                    let id = session_id(rng.gen_range(0..sessions));
                    if !naive.put(id, payload(w, seq), deadline) {
                        break;
                    }
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Measured {
        ops: done.load(Ordering::Relaxed),
        secs: t0.elapsed().as_secs_f64(),
    }
}

// ---------------------------------------------------------------- (d) socket

fn spawn_worker(dir: &DataDir, log: &Path) -> Child {
    spawn_worker_with(Command::new(env!("CARGO_BIN_EXE_worker")), dir, log)
}

/// Starts `cmd` (the worker binary, or a command that runs it) on `dir`.
fn spawn_worker_with(mut cmd: Command, dir: &DataDir, log: &Path) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the worker log");
    cmd.arg("--data-dir")
        .arg(dir.root())
        .env("RUST_LOG", "info");
    for name in shared::launch::LAUNCH_ENV {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn the worker binary")
}

fn connect(sock: &Path) -> Client {
    Client::connect(sock, Duration::from_secs(120)).expect("connect to the worker")
}

/// One closed-loop client of (d): its own connection, each `put` waiting
/// for its answer.
fn socket_put(sock: &Path) -> impl FnMut(String, String) + Send + 'static {
    let mut client = connect(sock);
    move |id: String, data: String| {
        let line = format!(r#"{{"op":"put","id":"{id}","data":{data}}}"#);
        expect_ok(
            &client.call_line(&line).expect("put over the socket"),
            "put",
        );
    }
}

fn expect_ok(response: &str, what: &str) {
    assert!(
        response.starts_with(r#"{"ok":true"#),
        "{what} answered {response}"
    );
}

/// Spawned a moment ago at `t0`: waits for the socket, then times the first
/// answered `ping` and the first answered `get` of `probe` since `t0`.
fn first_answers(
    child: &mut Child,
    sock: &Path,
    t0: Instant,
    probe: &str,
    log: &Path,
) -> (Client, Duration, Duration) {
    let mut client = loop {
        match Client::connect(sock, Duration::from_secs(120)) {
            Ok(c) => break c,
            Err(_) => {
                if let Some(status) = child.try_wait().expect("poll the worker") {
                    panic!(
                        "the worker exited ({status}) before answering; see {}",
                        log.display()
                    );
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(300),
                    "the worker never answered"
                );
                std::thread::sleep(Duration::from_micros(250));
            }
        }
    };
    expect_ok(&client.call_line(r#"{"op":"ping"}"#).expect("ping"), "ping");
    let ping = t0.elapsed();
    let get = format!(r#"{{"op":"get","id":"{probe}"}}"#);
    expect_ok(&client.call_line(&get).expect("get"), "get");
    (client, ping, t0.elapsed())
}

/// SIGTERM, then wait: the worker writes its final snapshot and exits 0.
fn stop_worker(mut child: Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal the worker");
    let status = child.wait().expect("wait for the worker");
    assert!(status.success(), "the worker stopped with {status}");
}

fn socket_stats(client: &mut Client) -> CommitStats {
    let line = client.call_line(r#"{"op":"stats"}"#).expect("stats");
    let v: serde_json::Value = serde_json::from_str(&line).expect("stats is JSON");
    let n = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("stats without {k}: {line}"))
    };
    CommitStats {
        writes: n("writes"),
        commits: n("commits"),
        checkpoints: n("checkpoints"),
    }
}

// ---------------------------------------------------------------- baselines

fn fsync_loop(cfg: &Config, mut one: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < cfg.warmup.min(0.5) {
        one();
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < cfg.seconds {
        one();
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Plain `write` of one record at the end of a growing file + `fdatasync`.
fn baseline_append(dir: &Path, cfg: &Config) -> f64 {
    let path = dir.join("append.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open append.bin");
    f.sync_all().expect("sync");
    shared::fsutil::fsync_dir(dir).expect("fsync dir");
    let rec = vec![b'x'; RECORD_BYTES];
    let rate = fsync_loop(cfg, || {
        f.write_all(&rec).expect("append");
        f.sync_data().expect("fdatasync");
    });
    let _ = std::fs::remove_file(&path);
    rate
}

/// `pwrite` of one record into a zero-filled, already synced file +
/// `fdatasync` (what our journal does: no size change to flush).
fn baseline_prealloc(dir: &Path, cfg: &Config) -> f64 {
    const SIZE: u64 = 64 << 20;
    let path = dir.join("prealloc.bin");
    let f = File::create(&path).expect("create prealloc.bin");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..SIZE / zeros.len() as u64 {
        f.write_all_at(&zeros, i * zeros.len() as u64)
            .expect("zero fill");
    }
    f.sync_all().expect("sync");
    shared::fsutil::fsync_dir(dir).expect("fsync dir");
    let rec = vec![b'x'; RECORD_BYTES];
    let mut pos = 0u64;
    let rate = fsync_loop(cfg, || {
        if pos + RECORD_BYTES as u64 > SIZE {
            pos = 0;
        }
        f.write_all_at(&rec, pos).expect("pwrite");
        f.sync_data().expect("fdatasync");
        pos += RECORD_BYTES as u64;
    });
    let _ = std::fs::remove_file(&path);
    rate
}

// ---------------------------------------------------------------- report

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Design {
    Ours,
    Sqlite,
    Naive,
    Socket,
}

impl Design {
    const ALL: [Design; 4] = [Design::Ours, Design::Sqlite, Design::Naive, Design::Socket];

    fn label(self) -> &'static str {
        match self {
            Design::Ours => "(a) ours, in-process",
            Design::Sqlite => "(b) SQLite WAL FULL, batched",
            Design::Naive => "(c) naive whole-file rewrite",
            Design::Socket => "(d) ours via socket (worker)",
        }
    }
}

struct Cell {
    measured: Measured,
    note: String,
}

#[derive(Default)]
struct Results {
    cells: BTreeMap<(usize, Design, usize), Cell>,
    lines: Vec<String>,
}

impl Results {
    fn record(
        &mut self,
        sessions: usize,
        design: Design,
        writers: usize,
        measured: Measured,
        note: String,
    ) {
        eprintln!(
            "  {:<30} {:>7} sessions {:>11}: {:>9} ops/s  ({} ops in {:.2} s{}{})",
            design.label(),
            thousands(sessions as f64),
            writers_header(writers),
            thousands(measured.rate()),
            measured.ops,
            measured.secs,
            if note.is_empty() { "" } else { "; " },
            note
        );
        self.cells
            .insert((sessions, design, writers), Cell { measured, note });
    }

    fn rate(&self, sessions: usize, design: Design, writers: usize) -> Option<f64> {
        self.cells
            .get(&(sessions, design, writers))
            .map(|c| c.measured.rate())
    }

    /// A line for the report, echoed to stderr as progress.
    fn line(&mut self, s: String) {
        eprintln!("  {s}");
        self.lines.push(s);
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 && x.fract() != 0.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn writers_header(w: usize) -> String {
    if w == 1 {
        "1 writer".into()
    } else {
        format!("{w} writers")
    }
}

// ---------------------------------------------------------------- main

struct Restore {
    sessions: usize,
    snapshot_bytes: usize,
    read: Duration,
    parse: Duration,
    ping: Duration,
    get: Duration,
    open: Duration,
}

/// True while a checkpoint of ours is in flight: from the moment the
/// writer starts a new journal (two journal files) until the snapshot is
/// renamed into place (a temp file) and the covered journals are deleted.
fn checkpoint_busy(dir: &DataDir) -> bool {
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let journals = names(&dir.journal_dir())
        .iter()
        .filter(|n| n.ends_with(".journal"))
        .count();
    let temps = names(dir.root())
        .iter()
        .any(|n| n.starts_with(shared::fsutil::TEMP_PREFIX));
    journals != 1 || temps
}

/// Waits until no checkpoint of ours is in flight; how long that took
/// (charged to ours: it is the tail of the work its writes caused).
fn wait_checkpoint_idle(dir: &DataDir) -> Duration {
    let t = Instant::now();
    while checkpoint_busy(dir) {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "a checkpoint never finished"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    t.elapsed()
}

/// Flushes everything the setup wrote and lets the disk settle, so that
/// no design pays for another's writeback.
fn settle() {
    nix::unistd::sync();
    std::thread::sleep(Duration::from_millis(1000));
}

/// Every design at one size, set up and ready to measure.
struct Setup {
    sessions: usize,
    ours_dir: DataDir,
    store: Store,
    sqlite_dir: PathBuf,
    sqlite_tx: mpsc::Sender<SqlPut>,
    sqlite_stats: Arc<Mutex<CommitStats>>,
    sqlite_thread: std::thread::JoinHandle<()>,
    naive_dir: PathBuf,
    naive: Naive,
    naive_cap: u64,
    sock_dir: DataDir,
    worker: Child,
    control: Client,
}

impl Setup {
    fn new(
        rt: &Runtime,
        cfg: &Config,
        base: &Path,
        n: usize,
        log: &Path,
        results: &mut Results,
    ) -> Setup {
        let size = thousands(n as f64);

        // (a) ours: populated through the Store API, closed, reopened.
        let ours_dir = DataDir::new(base.join(format!("ours-{n}")));
        let t = Instant::now();
        populate_ours(rt, &ours_dir, n);
        results.line(format!(
            "ours   {size:>7}: populated through Store::put, then closed, in {}",
            ms(t.elapsed())
        ));
        // (d) gets its own copy of that snapshot (the store holds a lock).
        let sock_dir = DataDir::new(base.join(format!("socket-{n}")));
        sock_dir.ensure().expect("socket data dir");
        std::fs::copy(ours_dir.sessions_json(), sock_dir.sessions_json())
            .expect("copy the snapshot");
        File::open(sock_dir.sessions_json())
            .and_then(|f| f.sync_all())
            .and_then(|_| shared::fsutil::fsync_dir(sock_dir.root()))
            .expect("sync the copy");
        let t = Instant::now();
        let (store, report) =
            Store::open(&ours_dir, StoreOptions::default()).expect("reopen the store");
        results.line(format!(
            "ours   {size:>7}: Store::open (sessions.json {:.1} MB) in {}",
            report.snapshot_bytes as f64 / 1e6,
            ms(t.elapsed())
        ));
        assert_eq!(store.len(), n);

        // (b) SQLite, one batching writer thread.
        let sqlite_dir = base.join(format!("sqlite-{n}"));
        std::fs::create_dir_all(&sqlite_dir).expect("sqlite dir");
        let t = Instant::now();
        let conn = sqlite_create(&sqlite_dir.join("sessions.db"), n);
        results.line(format!(
            "sqlite {size:>7}: populated in one transaction in {}",
            ms(t.elapsed())
        ));
        let (sqlite_tx, rx) = mpsc::channel::<SqlPut>(8192);
        let sqlite_stats = Arc::new(Mutex::new(CommitStats::default()));
        let sqlite_thread = {
            let stats = sqlite_stats.clone();
            std::thread::spawn(move || sqlite_writer(conn, rx, stats))
        };

        // (c) naive: the map in memory, the whole file rewritten per write.
        let naive_dir = base.join(format!("naive-{n}"));
        std::fs::create_dir_all(&naive_dir).expect("naive dir");
        let naive = Naive::new(naive_dir.join("sessions.json"), n);
        let t = Instant::now();
        naive.save();
        results.line(format!(
            "naive  {size:>7}: first whole-file write ({:.1} MB) in {}",
            std::fs::metadata(&naive.path).expect("naive file").len() as f64 / 1e6,
            ms(t.elapsed())
        ));
        let naive_cap = if n >= NAIVE_CAP_FROM {
            cfg.naive_max_writes
        } else {
            u64::MAX
        };

        // (d) the worker binary on its own copy.
        let t0 = Instant::now();
        let mut worker = spawn_worker(&sock_dir, log);
        let (control, ping, get) = first_answers(
            &mut worker,
            &sock_dir.worker_sock(),
            t0,
            &session_id(n - 1),
            log,
        );
        results.line(format!(
            "worker {size:>7}: spawn -> first ping answered in {}, first get in {}",
            ms(ping),
            ms(get)
        ));

        Setup {
            sessions: n,
            ours_dir,
            store,
            sqlite_dir,
            sqlite_tx,
            sqlite_stats,
            sqlite_thread,
            naive_dir,
            naive,
            naive_cap,
            sock_dir,
            worker,
            control,
        }
    }

    /// One slice of one design at `w` writers: what it did, and how long
    /// it waited after for a checkpoint of ours to finish.
    fn run(
        &mut self,
        rt: &Runtime,
        slice: Slice,
        d: Design,
        w: usize,
    ) -> (Measured, CommitStats, Duration) {
        let n = self.sessions;
        match d {
            Design::Ours => {
                let before = store_stats(&self.store);
                let s = self.store.clone();
                let m = async_cell(rt, slice, w, n, move |id, data| {
                    let s = s.clone();
                    async move {
                        s.put(id, raw(data)).await.expect("put");
                    }
                });
                let waited = wait_checkpoint_idle(&self.ours_dir);
                (m, store_stats(&self.store).delta(before), waited)
            }
            Design::Sqlite => {
                let before = *self.sqlite_stats.lock().expect("stats lock");
                let tx = self.sqlite_tx.clone();
                let m = async_cell(rt, slice, w, n, move |id, data| {
                    let tx = tx.clone();
                    async move {
                        let (reply, done) = oneshot::channel();
                        tx.send(SqlPut { id, data, reply })
                            .await
                            .expect("the sqlite writer is gone");
                        done.await.expect("the sqlite writer dropped an upsert");
                    }
                });
                let after = *self.sqlite_stats.lock().expect("stats lock");
                (m, after.delta(before), Duration::ZERO)
            }
            Design::Naive => {
                let m = naive_cell(slice, &self.naive, w, n, self.naive_cap);
                let stats = CommitStats {
                    writes: m.ops,
                    commits: m.ops,
                    checkpoints: 0,
                };
                (m, stats, Duration::ZERO)
            }
            Design::Socket => {
                let before = socket_stats(&mut self.control);
                let sock = self.sock_dir.worker_sock();
                let m = thread_cell(slice, w, n, |_| socket_put(&sock));
                let waited = wait_checkpoint_idle(&self.sock_dir);
                (m, socket_stats(&mut self.control).delta(before), waited)
            }
        }
    }

    /// Stops everything (ours and the worker write their final snapshot);
    /// returns the worker's data dir, which then holds only sessions.json.
    fn finish(self, rt: &Runtime) -> DataDir {
        rt.block_on(self.store.close()).expect("close the store");
        drop(self.store);
        drop(self.sqlite_tx);
        self.sqlite_thread
            .join()
            .expect("the sqlite writer panicked");
        drop(self.naive);
        drop(self.control);
        stop_worker(self.worker);
        for d in [
            self.ours_dir.root(),
            self.sqlite_dir.as_path(),
            self.naive_dir.as_path(),
        ] {
            let _ = std::fs::remove_dir_all(d);
        }
        self.sock_dir
    }
}

#[derive(Default)]
struct Acc {
    measured: Measured,
    stats: CommitStats,
    waited: Duration,
    /// Each slice's rate, to show how steady the disk was.
    slices: Vec<f64>,
}

fn main() {
    if let Some(child) = flush::child_request() {
        // A process the flush model started (under strace): not a run.
        flush::child_main(child);
        return;
    }
    let cfg = Config::from_env_and_args().unwrap_or_else(|e| {
        eprintln!("store bench: {e}");
        std::process::exit(2);
    });
    if cfg.only != Only::Designs {
        if let Err(e) = flush::preflight(&cfg) {
            eprintln!("store bench: {e}");
            std::process::exit(2);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    std::fs::create_dir_all(&cfg.tmpdir).expect("create the temp dir root");
    let root = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(&cfg.tmpdir)
        .expect("a temp dir");
    let base = root.path();
    let log = base.join("worker-stderr.log");
    let started = Instant::now();
    let load_at_start = loadavg();
    eprintln!(
        "store bench: {} s per cell in {} interleaved rounds (+{} s warm-up each), sizes {:?}, writers {:?}, in {}",
        cfg.seconds,
        cfg.rounds,
        cfg.warmup,
        cfg.sizes,
        cfg.writers,
        base.display()
    );
    if cfg.only != Only::Flush {
        run_designs(&cfg, &rt, base, &log, &load_at_start);
    }
    if cfg.only != Only::Designs {
        flush::run(&cfg, &rt, base, &log);
    }
    eprintln!(
        "store bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// The designs table, the disk baselines and the restore, then its report.
fn run_designs(cfg: &Config, rt: &Runtime, base: &Path, log: &Path, load_at_start: &str) {
    let mut results = Results::default();
    eprintln!("baselines (1 writer, {RECORD_BYTES}-byte records):");
    let append = baseline_append(base, cfg);
    results.line(format!(
        "plain append + fdatasync (growing file):   {:>9} ops/s",
        thousands(append)
    ));
    let prealloc = baseline_prealloc(base, cfg);
    results.line(format!(
        "pwrite + fdatasync (preallocated file):    {:>9} ops/s",
        thousands(prealloc)
    ));

    let largest = *cfg.sizes.iter().max().expect("at least one size");
    let slice = cfg.slice();
    let mut setups = Vec::new();
    for &n in &cfg.sizes {
        eprintln!("setting up {} sessions:", thousands(n as f64));
        setups.push(Setup::new(rt, cfg, base, n, log, &mut results));
    }
    settle();
    // Every (size, design) pair interleaved within each round, so that a
    // slow stretch of the disk (or a busy neighbour) hits them all alike
    // and the ratios stay fair even when the absolute numbers move.
    let mut acc: BTreeMap<(usize, Design, usize), Acc> = BTreeMap::new();
    for round in 1..=cfg.rounds {
        for &w in &cfg.writers {
            for setup in &mut setups {
                let n = setup.sessions;
                for d in Design::ALL {
                    let (mut m, stats, waited) = setup.run(rt, slice, d, w);
                    m.secs += waited.as_secs_f64();
                    eprintln!(
                        "    round {round}/{}: {:<30} {:>7} sessions {:>11}: {:>9} ops/s{}",
                        cfg.rounds,
                        d.label(),
                        thousands(n as f64),
                        writers_header(w),
                        thousands(m.rate()),
                        if waited > Duration::from_millis(5) {
                            format!(" (incl. {} waiting for a checkpoint)", ms(waited))
                        } else {
                            String::new()
                        }
                    );
                    let a = acc.entry((n, d, w)).or_default();
                    a.measured.add(m);
                    a.stats = a.stats.add(stats);
                    a.waited += waited;
                    a.slices.push(m.rate());
                }
            }
        }
    }
    let naive_caps: BTreeMap<usize, u64> =
        setups.iter().map(|s| (s.sessions, s.naive_cap)).collect();
    for ((n, d, w), a) in acc {
        let mut note = match d {
            Design::Sqlite => a.stats.note("transaction"),
            Design::Naive => {
                let mut s = format!("{} whole-file rewrites", thousands(a.stats.writes as f64));
                if naive_caps[&n] != u64::MAX {
                    s.push_str(&format!(", time-boxed to {} per slice", naive_caps[&n]));
                }
                s
            }
            Design::Ours | Design::Socket => a.stats.note("commit"),
        };
        if a.waited > Duration::from_millis(5) {
            note.push_str(&format!(
                "; {} waiting for checkpoints counted in",
                ms(a.waited)
            ));
        }
        if a.slices.len() > 1 {
            let each: Vec<String> = a.slices.iter().map(|r| thousands(*r)).collect();
            note.push_str(&format!("; slices {}/s", each.join(" / ")));
        }
        results.record(n, d, w, a.measured, note);
    }
    let mut restore = None;
    for setup in setups {
        let n = setup.sessions;
        let sock_dir = setup.finish(rt);
        if n == largest && restore.is_none() {
            settle();
            restore = Some(measure_restore(cfg, &sock_dir, n, log));
        }
        let _ = std::fs::remove_dir_all(sock_dir.root());
    }

    print_report(
        cfg,
        &results,
        restore.as_ref(),
        append,
        prealloc,
        load_at_start,
    );
}

/// The largest store, stopped cleanly (only `sessions.json` left): bare
/// parse of the snapshot vs spawn-to-first-answer vs `Store::open`.
fn measure_restore(cfg: &Config, dir: &DataDir, n: usize, log: &Path) -> Restore {
    eprintln!(
        "restore of {} sessions ({} reps, median):",
        thousands(n as f64),
        cfg.restore_reps
    );
    let path = dir.sessions_json();
    let (mut reads, mut parses) = (Vec::new(), Vec::new());
    let mut snapshot_bytes = 0;
    for _ in 0..cfg.restore_reps {
        let t = Instant::now();
        let bytes = std::fs::read(&path).expect("read sessions.json");
        reads.push(t.elapsed());
        snapshot_bytes = bytes.len();
        let t = Instant::now();
        let v = serde_json::from_slice::<serde_json::Value>(&bytes).expect("the snapshot is JSON");
        parses.push(t.elapsed());
        let count = v["sessions"].as_object().map_or(0, |o| o.len());
        assert_eq!(count, n, "sessions in the snapshot");
        drop(v);
    }
    let (mut pings, mut gets) = (Vec::new(), Vec::new());
    for _ in 0..cfg.restore_reps {
        let t0 = Instant::now();
        let mut child = spawn_worker(dir, log);
        let (client, ping, get) =
            first_answers(&mut child, &dir.worker_sock(), t0, &session_id(n / 2), log);
        pings.push(ping);
        gets.push(get);
        drop(client);
        stop_worker(child);
    }
    let mut opens = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for _ in 0..cfg.restore_reps {
        let t = Instant::now();
        let (store, report) = Store::open(dir, StoreOptions::default()).expect("open the store");
        opens.push(t.elapsed());
        assert_eq!(store.len(), n);
        // A clean stop leaves the snapshot and at most an empty journal.
        assert_eq!(
            report.replayed_records, 0,
            "a restore from the snapshot alone"
        );
        rt.block_on(store.close()).expect("close the store");
    }
    let r = Restore {
        sessions: n,
        snapshot_bytes,
        read: median(reads),
        parse: median(parses),
        ping: median(pings),
        get: median(gets),
        open: median(opens),
    };
    eprintln!(
        "  read {}, parse {}, spawn->ping {}, spawn->get {}, Store::open {}",
        ms(r.read),
        ms(r.parse),
        ms(r.ping),
        ms(r.get),
        ms(r.open)
    );
    r
}

/// The 1, 5 and 15 minute load averages (`getloadavg`: Linux and macOS).
fn loadavg() -> String {
    shared::procs::loadavg_text()
}

fn print_report(
    cfg: &Config,
    r: &Results,
    restore: Option<&Restore>,
    append: f64,
    prealloc: f64,
    load_at_start: &str,
) {
    let mut out = String::new();
    let mut p = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    p(String::new());
    p(format!(
        "Durable upserts per second (~{DATA_BYTES} B of JSON data per session, keys uniform over the live \
         sessions; {} s measured per cell, in {} slices interleaved across designs, each after {} s warm-up)",
        cfg.seconds, cfg.rounds, cfg.warmup
    ));
    p(String::new());
    let mut header = format!("{:<30} {:>9}", "design", "sessions");
    for &w in &cfg.writers {
        header.push_str(&format!(" {:>12}", writers_header(w)));
    }
    p(header.clone());
    p("-".repeat(header.len()));
    for &n in &cfg.sizes {
        for d in Design::ALL {
            let mut row = format!("{:<30} {:>9}", d.label(), thousands(n as f64));
            for &w in &cfg.writers {
                let v = r.rate(n, d, w).map_or_else(|| "-".into(), thousands);
                row.push_str(&format!(" {v:>12}"));
            }
            p(row);
        }
    }
    p(String::new());
    p(format!(
        "baseline, 1 writer, {RECORD_BYTES}-byte records: append+fdatasync {} ops/s; \
         pwrite+fdatasync into a preallocated file {} ops/s",
        thousands(append),
        thousands(prealloc)
    ));
    p(String::new());
    p("Per cell: writes per commit (warm-ups included), checkpoints, each slice's rate:".into());
    for &n in &cfg.sizes {
        for d in Design::ALL {
            for &w in &cfg.writers {
                if let Some(c) = r.cells.get(&(n, d, w)) {
                    p(format!(
                        "  {:<30} {:>7} sessions {:>11}: {}",
                        d.label(),
                        thousands(n as f64),
                        writers_header(w),
                        c.note
                    ));
                }
            }
        }
    }
    p(String::new());
    p("Targets:".into());
    for &n in &cfg.sizes {
        let mut row = format!(
            "  (a) ours >= {TARGET_VS_SQLITE:.1}x (b) SQLite, {:>7} sessions:",
            thousands(n as f64)
        );
        for &w in &cfg.writers {
            if let (Some(a), Some(b)) = (r.rate(n, Design::Ours, w), r.rate(n, Design::Sqlite, w)) {
                row.push_str(&format!(
                    "  {w}w {:.2}x {}",
                    a / b,
                    verdict(a / b >= TARGET_VS_SQLITE)
                ));
            }
        }
        p(row);
    }
    let top = *cfg.writers.iter().max().expect("at least one writer count");
    for &n in &cfg.sizes {
        if let (Some(d), Some(b)) = (
            r.rate(n, Design::Socket, top),
            r.rate(n, Design::Sqlite, top),
        ) {
            p(format!(
                "  (d) socket @{top} >= (b) SQLite @{top}, {:>7} sessions:  {:.2}x {}",
                thousands(n as f64),
                d / b,
                verdict(d / b >= TARGET_VS_SQLITE)
            ));
        }
    }
    let (small, large) = (
        *cfg.sizes.iter().min().expect("a size"),
        *cfg.sizes.iter().max().expect("a size"),
    );
    if small != large {
        for (d, target) in [
            (Design::Ours, Some(TARGET_SCALING)),
            (Design::Socket, Some(TARGET_SCALING)),
            (Design::Sqlite, None),
            (Design::Naive, None),
        ] {
            let mut row = format!(
                "  {:<30} @{} / @{} sessions:",
                d.label(),
                thousands(large as f64),
                thousands(small as f64)
            );
            for &w in &cfg.writers {
                if let (Some(hi), Some(lo)) = (r.rate(large, d, w), r.rate(small, d, w)) {
                    let ratio = hi / lo;
                    match target {
                        Some(t) => {
                            row.push_str(&format!("  {w}w {ratio:.2}x {}", verdict(ratio >= t)))
                        }
                        None => row.push_str(&format!("  {w}w {ratio:.3}x")),
                    }
                }
            }
            row.push_str(match target {
                Some(_) => "  (target >= 0.8x)",
                None => "  (for comparison)",
            });
            p(row);
        }
    }
    if let Some(x) = restore {
        p(String::new());
        p(format!(
            "Restore of {} sessions, sessions.json {:.1} MB (page cache warm; median of {}):",
            thousands(x.sessions as f64),
            x.snapshot_bytes as f64 / 1e6,
            cfg.restore_reps
        ));
        p(format!(
            "  worker spawn -> first answered ping       {:>8}",
            ms(x.ping)
        ));
        p(format!(
            "  worker spawn -> first answered get        {:>8}",
            ms(x.get)
        ));
        p(format!(
            "  Store::open in-process                    {:>8}",
            ms(x.open)
        ));
        p(format!(
            "  bare serde_json::from_slice::<Value>      {:>8}  (+ fs::read {})",
            ms(x.parse),
            ms(x.read)
        ));
        let ratio = x.get.as_secs_f64() / x.parse.as_secs_f64();
        p(format!(
            "  restore (spawn -> first get) / bare parse   {ratio:.2}x {} (target <= {TARGET_RESTORE:.1}x)",
            verdict(ratio <= TARGET_RESTORE)
        ));
    }
    p(String::new());
    p(format!(
        "Load average (1/5/15 min) at start: {load_at_start}; at end: {} ({} CPUs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    if !r.lines.is_empty() {
        p("Setup:".into());
        for l in &r.lines {
            p(format!("  {l}"));
        }
    }
    print!("{out}");
}
