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

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
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

struct Conn {
    reader: BufReader<UnixStream>,
    stream: UnixStream,
}

impl Conn {
    fn new(stream: UnixStream) -> std::io::Result<Conn> {
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            stream,
        })
    }

    /// Sends one line; the answer, or None when the connection closed (or
    /// failed) before one came.
    fn call(&mut self, line: &[u8]) -> Option<Value> {
        self.stream.write_all(line).ok()?;
        let mut answer = String::new();
        match self.reader.read_line(&mut answer) {
            Ok(n) if n > 0 && answer.ends_with('\n') => serde_json::from_str(&answer).ok(),
            _ => None,
        }
    }
}

/// One request on the kept-alive `conn`, reconnecting and resending once
/// when the connection closes before an answer: (answered ok, retried).
fn request(sock: &Path, conn: &mut Option<Conn>, line: &[u8], tally: &Tally) -> (bool, bool) {
    let mut retried = false;
    for attempt in 0..2 {
        if conn.is_none() {
            match UnixStream::connect(sock) {
                Ok(stream) => match Conn::new(stream) {
                    Ok(c) => *conn = Some(c),
                    Err(_) => break,
                },
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) =>
                {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(_) => break,
            }
        }
        let answer = conn.as_mut().and_then(|c| c.call(line));
        match answer {
            Some(v) if v["ok"] == true => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                return (true, retried);
            }
            Some(v) => {
                eprintln!("error answer: {v}");
                break;
            }
            None => {
                *conn = None;
                if attempt == 0 {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                    retried = true;
                }
            }
        }
    }
    tally.failed.fetch_add(1, Ordering::Relaxed);
    (false, retried)
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
                            let mut line =
                                json!({"op": "put", "id": format!("{tag}-{c}"), "data": n})
                                    .to_string()
                                    .into_bytes();
                            line.push(b'\n');
                            let t = Instant::now();
                            let (ok, retried) = request(&sock, &mut conn, &line, &tally);
                            let end = Instant::now();
                            recs.push(Rec {
                                start_us: (t - epoch).as_micros() as u64,
                                end_us: (end - epoch).as_micros() as u64,
                                retried,
                            });
                            if ok {
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
            let mut conn =
                Conn::new(UnixStream::connect(&self.sock).expect("connect")).expect("a connection");
            let mut line = json!({"op": "get", "id": id}).to_string().into_bytes();
            line.push(b'\n');
            let got = conn.call(&line).expect("an answer to get");
            if last > 0 && got["session"]["data"] != last {
                println!("  client {c}: last acknowledged write {last}, stored {got}");
                lost += 1;
            }
        }
        recs.sort_by_key(|r| r.start_us);
        let t = &self.tally;
        let counts = Counts {
            ok: t.ok.load(Ordering::Relaxed),
            refused: t.refused.load(Ordering::Relaxed),
            failed: t.failed.load(Ordering::Relaxed),
            retried: t.retried.load(Ordering::Relaxed),
            lost,
        };
        (counts, recs)
    }
}

/// Writes CSV rows to `dir/name` (kept with `BENCH_KEEP=1`).
pub(crate) fn dump(dir: &Path, name: &str, header: &str, rows: impl Iterator<Item = Vec<u64>>) {
    let mut text = format!("{header}\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(u64::to_string).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    fs::write(dir.join(name), text).expect("write a dump file");
}

/// Prints the few longest stalls of the swap phase (requests overlapping a
/// longer one are the same stall) and where each began: in a swap window,
/// in a steady window, or elsewhere, and how far from the nearest swap.
pub(crate) fn longest_stalls(recs: &[Rec], windows: &[(u64, u64)], steady: &[(u64, u64)]) {
    let mut by_len: Vec<&Rec> = recs.iter().collect();
    by_len.sort_by_key(|r| std::cmp::Reverse(r.end_us - r.start_us));
    let mut shown: Vec<&Rec> = Vec::new();
    for r in by_len {
        if shown.len() == 5 {
            break;
        }
        if shown
            .iter()
            .any(|s| r.start_us < s.end_us && r.end_us > s.start_us)
        {
            continue;
        }
        let with = recs
            .iter()
            .filter(|o| o.start_us < r.end_us && o.end_us > r.start_us && o.ms() > r.ms() / 2.0)
            .count();
        let place = match (window_of(r, windows), window_of(r, steady)) {
            (Some(i), _) => format!("sent in swap window {}", i + 1),
            (_, Some(i)) => format!("sent in steady window {}", i + 1),
            _ => "sent outside the windows".into(),
        };
        let nearest = windows
            .iter()
            .map(|&(s, _)| r.start_us as i64 - s as i64)
            .min_by_key(|d| d.abs())
            .unwrap_or(0);
        println!(
            "  stall: {} ({} requests at once), {place}, {:+.0} ms from the nearest swap start{}",
            fmt_ms(r.ms()),
            with,
            nearest as f64 / 1e3,
            if r.retried { ", retried" } else { "" }
        );
        shown.push(r);
    }
}

/// The window (index) a request was sent in, if any. A request belongs to
/// the window it started in: one already waiting when a swap began had
/// been sent to, and was answered by, the old worker (a retried one is
/// sent again after the close, inside the window).
fn window_of(r: &Rec, windows: &[(u64, u64)]) -> Option<usize> {
    windows
        .iter()
        .position(|&(s, e)| r.start_us >= s && r.start_us <= e)
}

/// Latencies (ms) of the requests sent in any of `windows` (µs).
pub(crate) fn latencies_in(recs: &[Rec], windows: &[(u64, u64)]) -> Vec<f64> {
    recs.iter()
        .filter(|r| window_of(r, windows).is_some())
        .map(Rec::ms)
        .collect()
}
