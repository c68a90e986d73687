//! The clients of the swaps and deploys: threads that `put` all along on
//! kept-alive connections (harness `request_line`), each request recorded.

use super::*;

/// One request as the client saw it, in µs since the bench's epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec {
    pub(crate) start_us: u64,
    pub(crate) end_us: u64,
    /// Sent a second time after the connection closed unanswered.
    pub(crate) retried: bool,
}

impl Rec {
    pub(crate) fn ms(&self) -> f64 {
        (self.end_us - self.start_us) as f64 / 1e3
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) ok: u64,
    pub(crate) refused: u64,
    pub(crate) failed: u64,
    pub(crate) retried: u64,
    /// Clients whose last acknowledged write was not read back.
    pub(crate) lost: u64,
}

/// Client threads that `put` all along, one kept-alive connection each.
pub(crate) struct Load {
    sock: PathBuf,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<(u64, Vec<Rec>)>>,
    tag: &'static str,
}

impl Load {
    pub(crate) fn start(sock: &Path, cfg: &Config, epoch: Instant, tag: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let threads = (0..cfg.clients)
            .map(|c| {
                let (stop, tally, sock) = (stop.clone(), tally.clone(), sock.to_path_buf());
                let pace = cfg.pace;
                thread::Builder::new()
                    .name(format!("client-{c}"))
                    .spawn(move || {
                        let mut conn = None;
                        let mut recs = Vec::with_capacity(1 << 16);
                        let (mut n, mut last) = (0u64, 0u64);
                        while !stop.load(Ordering::Relaxed) {
                            n += 1;
                            let line = json!({"op": "put", "id": format!("{tag}-{c}"), "data": n})
                                .to_string();
                            let t = Instant::now();
                            let sent = request_line(&sock, &mut conn, line.as_bytes(), &tally);
                            let end = Instant::now();
                            recs.push(Rec {
                                start_us: (t - epoch).as_micros() as u64,
                                end_us: (end - epoch).as_micros() as u64,
                                retried: sent.retried,
                            });
                            if sent.answer.is_some() {
                                last = n;
                            } else {
                                thread::sleep(Duration::from_millis(1));
                            }
                            if !pace.is_zero() {
                                thread::sleep(pace);
                            }
                        }
                        (last, recs)
                    })
                    .expect("start a client thread")
            })
            .collect();
        Load {
            sock: sock.to_path_buf(),
            stop,
            tally,
            threads,
            tag,
        }
    }

    /// Stops the clients; reads every client's last acknowledged write back.
    pub(crate) fn finish(self) -> (Counts, Vec<Rec>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut recs = Vec::new();
        let mut lost = 0;
        for (c, t) in self.threads.into_iter().enumerate() {
            let (last, r) = t.join().expect("a client thread does not panic");
            recs.extend(r);
            let id = format!("{}-{c}", self.tag);
            let got = Conn::connect(&self.sock).call(&json!({"op": "get", "id": id}));
            if last > 0 && got["session"]["data"] != last {
                println!("  client {c}: last acknowledged write {last}, stored {got}");
                lost += 1;
            }
        }
        recs.sort_by_key(|r| r.start_us);
        let t = &self.tally;
        let refused = t.refused.load(Ordering::Relaxed);
        let counts = Counts {
            ok: t.ok.load(Ordering::Relaxed),
            refused,
            // A refused connect fails its request too.
            failed: t.failed.load(Ordering::Relaxed) + refused,
            retried: t.retried.load(Ordering::Relaxed),
            lost,
        };
        (counts, recs)
    }
}
