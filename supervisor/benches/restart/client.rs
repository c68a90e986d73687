use super::*;

pub(crate) enum Ping {
    Pid(u32),
    /// ECONNREFUSED or ENOENT on connect: nobody listening.
    Refused,
    /// Connected, but the connection ended without an answer (accepted by
    /// a worker that then died or stopped).
    Dropped,
    Other(String),
}

pub(crate) fn ping(sock: &Path) -> Ping {
    let stream = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e) if harness::refused(&e) => return Ping::Refused,
        Err(e) => return Ping::Other(format!("connect: {e}")),
    };
    let mut conn = match Conn::with_timeout(stream, Duration::from_secs(20)) {
        Ok(c) => c,
        Err(e) => return Ping::Other(format!("set timeout: {e}")),
    };
    if conn.send(b"{\"op\":\"ping\"}").is_err() {
        return Ping::Dropped;
    }
    match conn.recv() {
        Ok(None) => Ping::Dropped,
        Ok(Some(line)) => match serde_json::from_str::<Value>(&line) {
            Ok(v) if v["ok"] == true => match v["pid"].as_u64() {
                Some(pid) => Ping::Pid(pid as u32),
                None => Ping::Other(format!("no pid in {line:?}")),
            },
            _ => Ping::Other(format!("unexpected answer {line:?}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ping::Dropped,
        Err(e) => Ping::Other(format!("read: {e}")),
    }
}

#[derive(Default)]
struct ProbeState {
    stop: AtomicBool,
    answered: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    other: AtomicU64,
    /// Longest time one connection took to be answered (or to fail).
    longest_ns: AtomicU64,
    last_other: Mutex<Option<String>>,
    /// The first answer from a pid other than `old_pid`.
    first_new: Mutex<Option<(Instant, u32)>>,
}

/// A client thread pinging `sock` in a tight loop, one connection a ping.
pub(crate) struct Probe {
    state: Arc<ProbeState>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) answered: u64,
    pub(crate) refused: u64,
    pub(crate) dropped: u64,
    pub(crate) other: u64,
    pub(crate) longest: Duration,
}

impl Probe {
    pub(crate) fn start(sock: &Path, old_pid: u32) -> Probe {
        let state = Arc::new(ProbeState::default());
        let (st, sock) = (state.clone(), sock.to_path_buf());
        let thread = thread::Builder::new()
            .name("client".into())
            .spawn(move || {
                while !st.stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let result = ping(&sock);
                    let now = Instant::now();
                    st.longest_ns
                        .fetch_max((now - t).as_nanos() as u64, Ordering::Relaxed);
                    match result {
                        Ping::Pid(pid) => {
                            st.answered.fetch_add(1, Ordering::Relaxed);
                            if pid != old_pid {
                                let mut first = st.first_new.lock().expect("probe lock");
                                if first.is_none() {
                                    *first = Some((now, pid));
                                }
                            }
                        }
                        Ping::Refused => {
                            st.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ping::Dropped => {
                            st.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ping::Other(e) => {
                            st.other.fetch_add(1, Ordering::Relaxed);
                            *st.last_other.lock().expect("probe lock") = Some(e);
                            thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            })
            .expect("start the client thread");
        Probe {
            state,
            thread: Some(thread),
        }
    }

    pub(crate) fn wait_answers(&self, n: u64) {
        let start = self.state.answered.load(Ordering::Relaxed);
        harness::poll_until(
            POLL,
            Duration::from_secs(10),
            "the client's first answers",
            || (self.state.answered.load(Ordering::Relaxed) >= start + n).then_some(()),
        );
    }

    fn wait_new(&self, timeout: Duration) -> (Instant, u32) {
        harness::poll_until(POLL, timeout, "an answer from a new worker", || {
            *self.state.first_new.lock().expect("probe lock")
        })
    }

    pub(crate) fn stop(mut self) -> Counts {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the client thread does not panic");
        }
        let s = &self.state;
        if let Some(e) = s.last_other.lock().expect("probe lock").as_ref() {
            println!("  (client: other errors, the last: {e})");
        }
        Counts {
            answered: s.answered.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            other: s.other.load(Ordering::Relaxed),
            longest: Duration::from_nanos(s.longest_ns.load(Ordering::Relaxed)),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One restart under the client loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// From the kill (or the restart request) to the new worker's first answer.
    pub(crate) latency: Duration,
    pub(crate) counts: Counts,
    pub(crate) new_pid: u32,
}

/// Starts the client loop on `sock`, lets it talk to `old_pid`, then runs
/// `act` (which kills, or asks for a restart) and waits for a new pid.
pub(crate) fn measure(sock: &Path, old_pid: u32, act: impl FnOnce()) -> Sample {
    let probe = Probe::start(sock, old_pid);
    probe.wait_answers(WARM_ANSWERS);
    let t0 = Instant::now();
    act();
    let (at, new_pid) = probe.wait_new(Duration::from_secs(60));
    let counts = probe.stop();
    Sample {
        latency: at - t0,
        counts,
        new_pid,
    }
}

pub(crate) fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL the worker");
}
