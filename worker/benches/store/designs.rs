//! The four designs: (a) ours in-process, (b) SQLite, (c) the naive rewrite, (d) the worker through its socket.

use super::*;

/// Puts `n` sessions through the Store API (4,096 in flight), then closes
/// the store, which writes `sessions.json` (nothing left to replay).
pub(crate) fn populate_ours(rt: &Runtime, dir: &DataDir, n: usize) {
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
pub(crate) struct CommitStats {
    pub(crate) writes: u64,
    pub(crate) commits: u64,
    pub(crate) checkpoints: u64,
}

impl CommitStats {
    pub(crate) fn add(self, other: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes + other.writes,
            commits: self.commits + other.commits,
            checkpoints: self.checkpoints + other.checkpoints,
        }
    }

    pub(crate) fn delta(self, before: CommitStats) -> CommitStats {
        CommitStats {
            writes: self.writes - before.writes,
            commits: self.commits - before.commits,
            checkpoints: self.checkpoints - before.checkpoints,
        }
    }

    pub(crate) fn note(self, commit_word: &str) -> String {
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

pub(crate) fn store_stats(store: &Store) -> CommitStats {
    let s = store.stats();
    CommitStats {
        writes: s.writes,
        commits: s.commits,
        checkpoints: s.checkpoints,
    }
}

pub(crate) const UPSERT: &str =
    "INSERT INTO sessions (id, data, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
     ON CONFLICT(id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at";

pub(crate) struct SqlPut {
    pub(crate) id: String,
    pub(crate) data: String,
    pub(crate) reply: oneshot::Sender<()>,
}

/// A fresh database in WAL mode with `synchronous=FULL`, holding `n`
/// sessions inserted in one transaction (then the WAL checkpointed away).
pub(crate) fn sqlite_create(path: &Path, n: usize) -> rusqlite::Connection {
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
pub(crate) fn sqlite_writer(
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

/// Every session in memory; every write rewrites the whole file durably.
pub(crate) struct Naive {
    pub(crate) path: PathBuf,
    pub(crate) map: Mutex<BTreeMap<String, Arc<Session>>>,
}

impl Naive {
    pub(crate) fn new(path: PathBuf, n: usize) -> Naive {
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
    pub(crate) fn save(&self) {
        let map = self.map.lock().expect("naive lock");
        shared::fsutil::atomic_write(&self.path, |w| snapshot::write_to(w, map.values()))
            .expect("naive write");
    }

    /// One upsert, durable when this returns true. Returns false, writing
    /// nothing, when `deadline` passed while it waited for its turn.
    pub(crate) fn put(&self, id: String, data: String, deadline: Instant) -> bool {
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
pub(crate) fn naive_cell(
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

/// How long the bench waits for a worker to answer or to stop.
pub(crate) const WORKER_DEADLINE: Duration = Duration::from_secs(300);

pub(crate) fn spawn_worker(dir: &DataDir, log: &Path) -> Worker {
    spawn_worker_with(Command::new(env!("CARGO_BIN_EXE_worker")), dir, log)
}

/// Starts `cmd` (the worker binary, or a command that runs it) on `dir`,
/// in the harness's worker environment, its stderr appended to `log`.
pub(crate) fn spawn_worker_with(mut cmd: Command, dir: &DataDir, log: &Path) -> Worker {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open the worker log");
    cmd.arg("--data-dir").arg(dir.root());
    harness::launch::worker_env(&mut cmd, file);
    Worker::spawn(cmd, log.to_path_buf(), dir.worker_sock())
}

pub(crate) fn connect(sock: &Path) -> Client {
    Client::connect(sock, Duration::from_secs(120)).expect("connect to the worker")
}

/// One closed-loop client of (d): its own connection, each `put` waiting
/// for its answer.
pub(crate) fn socket_put(sock: &Path) -> impl FnMut(String, String) + Send + 'static {
    let mut client = connect(sock);
    move |id: String, data: String| {
        let line = format!(r#"{{"op":"put","id":"{id}","data":{data}}}"#);
        expect_ok(
            &client.call_line(&line).expect("put over the socket"),
            "put",
        );
    }
}

pub(crate) fn expect_ok(response: &str, what: &str) {
    assert!(
        response.starts_with(r#"{"ok":true"#),
        "{what} answered {response}"
    );
}

/// Spawned a moment ago at `t0`: waits for the socket, then times the first
/// answered `ping` and the first answered `get` of `probe` since `t0`.
pub(crate) fn first_answers(
    worker: &mut Worker,
    t0: Instant,
    probe: &str,
    log: &Path,
) -> (Client, Duration, Duration) {
    let sock = worker.sock.clone();
    let mut client = harness::poll_until(
        Duration::from_micros(250),
        WORKER_DEADLINE,
        "the worker to answer",
        || match Client::connect(&sock, Duration::from_secs(120)) {
            Ok(c) => Some(c),
            Err(_) => {
                if let Some(status) = worker.try_exit() {
                    panic!(
                        "the worker exited ({status}) before answering; see {}",
                        log.display()
                    );
                }
                None
            }
        },
    );
    expect_ok(&client.call_line(r#"{"op":"ping"}"#).expect("ping"), "ping");
    let ping = t0.elapsed();
    let get = format!(r#"{{"op":"get","id":"{probe}"}}"#);
    expect_ok(&client.call_line(&get).expect("get"), "get");
    (client, ping, t0.elapsed())
}

pub(crate) fn socket_stats(client: &mut Client) -> CommitStats {
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
