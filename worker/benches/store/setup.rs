//! One size's stores, worker and files, and the cells measured on them.

use super::*;

/// Every design at one size, set up and ready to measure.
pub(crate) struct Setup {
    pub(crate) sessions: usize,
    pub(crate) ours_dir: DataDir,
    pub(crate) store: Store,
    pub(crate) sqlite_dir: PathBuf,
    pub(crate) sqlite_tx: mpsc::Sender<SqlPut>,
    pub(crate) sqlite_stats: Arc<Mutex<CommitStats>>,
    pub(crate) sqlite_thread: std::thread::JoinHandle<()>,
    pub(crate) naive_dir: PathBuf,
    pub(crate) naive: Naive,
    pub(crate) naive_cap: u64,
    pub(crate) sock_dir: DataDir,
    pub(crate) worker: Worker,
    pub(crate) control: Client,
}

impl Setup {
    pub(crate) fn new(
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
        let (control, ping, get) = first_answers(&mut worker, t0, &session_id(n - 1), log);
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
    pub(crate) fn run(
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
    pub(crate) fn finish(self, rt: &Runtime) -> DataDir {
        rt.block_on(self.store.close()).expect("close the store");
        drop(self.store);
        drop(self.sqlite_tx);
        self.sqlite_thread
            .join()
            .expect("the sqlite writer panicked");
        drop(self.naive);
        drop(self.control);
        let mut worker = self.worker;
        worker.stop(WORKER_DEADLINE);
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
pub(crate) struct Acc {
    pub(crate) measured: Measured,
    pub(crate) stats: CommitStats,
    pub(crate) waited: Duration,
    /// Each slice's rate, to show how steady the disk was.
    pub(crate) slices: Vec<f64>,
}
