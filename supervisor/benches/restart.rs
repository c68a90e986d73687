//! Restarts, memory and status, side by side in one run:
//!
//! - (a) crash path: the time from SIGKILL of the worker to the first
//!   answer from the NEW worker, and the connections refused meanwhile
//!   (ECONNREFUSED/ENOENT on connect), for
//!   1. our supervisor (`supervisor run --poll-interval-ms 0 --worker-bin
//!      <worker>`: the listening socket stays bound in the supervisor), and
//!   2. the baseline: a naive process manager that starts `worker
//!      --data-dir <dir>` (which binds its own `worker.sock`), notices its
//!      death with `waitpid` and starts it again at once.
//!
//!   A client thread connects in a tight loop, one `{"op":"ping"}` per
//!   connection; the sample ends at the first answer carrying a new pid.
//!
//!   The supervisor's backoff restarts at once only after a worker that was
//!   ready for 10 s (then 100 ms, 200 ms, 400 ms…). So that every crash
//!   sample measures the restart mechanism and not the backoff, the crash
//!   samples go round-robin over a pool of supervisors, and each one's
//!   worker is killed only once it has been ready for more than 10 s.
//!   The backoff itself is reported on its own row: a few kills in a row on
//!   one supervisor, each as soon as the previous restart is ready.
//!
//!   Then graceful restarts: the wall time of `supervisor restart` and the
//!   refused connections under the same client loop, next to the naive
//!   SIGTERM, `waitpid`, start-again of the baseline.
//! - (b) the supervisor's RSS when idle and after `BENCH_RESTARTS`
//!   worker restarts (graceful, sent on the control socket exactly as
//!   `supervisor restart` sends them, with the client loop still running).
//!   RSS comes from `ps` (Linux and macOS); its split into anonymous and
//!   file-backed pages comes from `/proc` and is Linux-only.
//! - (c) the wall time of `supervisor status --json` and `supervisor status`,
//!   each run a fresh process.
//!
//! Run: `cargo bench -p supervisor --bench restart`
//!
//! | env                 | default | what                                        |
//! |---------------------|---------|---------------------------------------------|
//! | `BENCH_SAMPLES`     | 30      | crash samples, ours and baseline each       |
//! | `BENCH_POOL`        | 10      | supervisors the crash samples go round over |
//! | `BENCH_RAPID`       | 6       | kills in a row for the backoff row          |
//! | `BENCH_GRACEFUL`    | 30      | `supervisor restart` samples                |
//! | `BENCH_RESTARTS`    | 1000    | restarts before the second RSS reading      |
//! | `BENCH_STATUS_RUNS` | 200     | runs of each status command                 |
//! | `BENCH_TMPDIR`      | /tmp    | where the data directories go               |
//! | `BENCH_KEEP`        | 0       | 1 keeps them, with the supervisors' logs    |
//!
//! With the defaults the run takes two to three minutes (after the build).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The supervisor's `stable_after` (fixed in `main.rs`): a worker ready
/// this long resets the backoff, so its next crash restarts at once.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Waited on top of it; our "ready" is seen after the supervisor's.
const STABLE_MARGIN: Duration = Duration::from_millis(300);
/// Answers from the old worker before a kill (the loop is warm).
const WARM_ANSWERS: u64 = 20;

const TARGET_CRASH_MS: f64 = 10.0;
const TARGET_RSS_KIB: u64 = 4 * 1024;
const TARGET_STATUS_MS: f64 = 6.0;
/// RSS rising by at most this much between the first quarter of the
/// restarts and the end counts as no growth (allocator noise).
const GROWTH_TOLERANCE_KIB: u64 = 64;

// ---------------------------------------------------------------- config

struct Config {
    samples: usize,
    pool: usize,
    rapid: usize,
    graceful: usize,
    restarts: usize,
    status_runs: usize,
    tmpdir: PathBuf,
    /// Keep the data and log directories (`BENCH_KEEP=1`).
    keep: bool,
}

impl Config {
    fn from_env() -> Config {
        Config {
            samples: env_usize("BENCH_SAMPLES", 30).max(1),
            pool: env_usize("BENCH_POOL", 10).max(1),
            rapid: env_usize("BENCH_RAPID", 6).max(1),
            graceful: env_usize("BENCH_GRACEFUL", 30).max(1),
            restarts: env_usize("BENCH_RESTARTS", 1000).max(4),
            status_runs: env_usize("BENCH_STATUS_RUNS", 200).max(1),
            tmpdir: bench_tmpdir(),
            keep: env_usize("BENCH_KEEP", 0) != 0,
        }
    }
}

// ---------------------------------------------------------------- binaries

// ---------------------------------------------------------------- stats

fn summary(values: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        fmt_ms(pct(values, 50.0)),
        fmt_ms(pct(values, 90.0)),
        fmt_ms(pct(values, 100.0))
    )
}

fn fmt_kib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// Resident memory (RSS) of a process, from `ps` on Linux and macOS; on
/// Linux also the part of it that is anonymous memory (heap, stacks)
/// rather than pages of mapped files (code of the binary and libc).
#[derive(Debug, Clone, Copy)]
struct Rss {
    total_kib: u64,
    /// Linux only.
    anon_kib: Option<u64>,
}

impl Rss {
    fn of(pid: u32) -> Rss {
        let ps = shared::procs::ps(pid)
            .unwrap_or_else(|e| panic!("ps about pid {pid}: {e}"))
            .unwrap_or_else(|| panic!("pid {pid} is not running"));
        Rss {
            total_kib: ps.rss_kib,
            anon_kib: anon_kib(pid),
        }
    }
}

/// `RssAnon` from `/proc/<pid>/status`: Linux only.
#[cfg(target_os = "linux")]
fn anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    Some(kib.unwrap_or_else(|| panic!("RssAnon in /proc/{pid}/status")))
}

#[cfg(not(target_os = "linux"))]
fn anon_kib(_pid: u32) -> Option<u64> {
    None
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.anon_kib {
            Some(anon) => write!(
                f,
                "{} (anon {anon} KiB + file {} KiB)",
                fmt_kib(self.total_kib),
                self.total_kib.saturating_sub(anon)
            ),
            None => write!(
                f,
                "{} (the anon/file split is Linux-only)",
                fmt_kib(self.total_kib)
            ),
        }
    }
}

// ---------------------------------------------------------------- client

enum Ping {
    Pid(u32),
    /// ECONNREFUSED or ENOENT on connect: nobody listening.
    Refused,
    /// Connected, but the connection ended without an answer (accepted by
    /// a worker that then died or stopped).
    Dropped,
    Other(String),
}

fn ping(sock: &Path) -> Ping {
    let mut stream = match UnixStream::connect(sock) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            return Ping::Refused
        }
        Err(e) => return Ping::Other(format!("connect: {e}")),
    };
    if let Err(e) = stream.set_read_timeout(Some(Duration::from_secs(20))) {
        return Ping::Other(format!("set timeout: {e}"));
    }
    if stream.write_all(b"{\"op\":\"ping\"}\n").is_err() {
        return Ping::Dropped;
    }
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(0) => Ping::Dropped,
        Ok(_) => match serde_json::from_str::<Value>(&line) {
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
struct Probe {
    state: Arc<ProbeState>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    answered: u64,
    refused: u64,
    dropped: u64,
    other: u64,
    longest: Duration,
}

impl Probe {
    fn start(sock: &Path, old_pid: u32) -> Probe {
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

    fn wait_answers(&self, n: u64) {
        let start = self.state.answered.load(Ordering::Relaxed);
        wait_until(
            Duration::from_secs(10),
            "the client's first answers",
            || (self.state.answered.load(Ordering::Relaxed) >= start + n).then_some(()),
        );
    }

    fn wait_new(&self, timeout: Duration) -> (Instant, u32) {
        wait_until(timeout, "an answer from a new worker", || {
            *self.state.first_new.lock().expect("probe lock")
        })
    }

    fn stop(mut self) -> Counts {
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
struct Sample {
    /// From the kill (or the restart request) to the new worker's first answer.
    latency: Duration,
    counts: Counts,
    new_pid: u32,
}

/// Starts the client loop on `sock`, lets it talk to `old_pid`, then runs
/// `act` (which kills, or asks for a restart) and waits for a new pid.
fn measure(sock: &Path, old_pid: u32, act: impl FnOnce()) -> Sample {
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

/// One request on the control socket, as the `supervisor` CLI sends it:
/// `{"op":OP}` and a newline, one JSON line back.
fn control(sock: &Path, op: &str, timeout: Duration) -> std::io::Result<Value> {
    let mut stream = UnixStream::connect(sock)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(format!("{{\"op\":\"{op}\"}}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL the worker");
}

// ---------------------------------------------------------------- supervisor

struct Supervisor {
    child: Child,
    data: PathBuf,
    ctl: PathBuf,
    sock: PathBuf,
    bin: PathBuf,
    /// The worker serving now, and when we saw it ready.
    worker: u32,
    ready_seen: Instant,
}

impl Supervisor {
    fn spawn(bins: &Bins, root: &Path) -> Supervisor {
        let data = root.join("data");
        let logs = root.join("logs");
        std::fs::create_dir_all(root).expect("create the supervisor's dir");
        let stderr = std::fs::File::create(root.join("supervisor.stderr")).expect("stderr file");
        let child = clean_env(&mut Command::new(&bins.supervisor))
            .arg("run")
            .arg("--data-dir")
            .arg(&data)
            .arg("--log-dir")
            .arg(&logs)
            .args(["--poll-interval-ms", "0", "--worker-bin"])
            .arg(&bins.worker)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the supervisor");
        Supervisor {
            child,
            ctl: data.join("supervisor.sock"),
            sock: data.join("worker.sock"),
            data,
            bin: bins.supervisor.clone(),
            worker: 0,
            ready_seen: Instant::now(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status(&self) -> Option<Value> {
        control(&self.ctl, "status", Duration::from_secs(5)).ok()
    }

    /// Waits until the supervisor reports a ready worker other than the
    /// one we knew, and records it.
    fn wait_ready(&mut self) -> u32 {
        let old = self.worker;
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(s) = self.status() {
                let pid = s["worker"]["pid"].as_u64().unwrap_or(0) as u32;
                if s["worker"]["state"] == "ready" && pid != old && pid != 0 {
                    break pid;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr = std::fs::read_to_string(self.data.with_file_name("supervisor.stderr"))
                    .unwrap_or_default();
                panic!("the supervisor exited ({status}):\n{stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "no ready worker from the supervisor in {}; last status: {:?}",
                self.data.display(),
                self.status()
            );
            thread::sleep(Duration::from_millis(1));
        };
        self.worker = pid;
        self.ready_seen = Instant::now();
        pid
    }

    /// The `restart_in_ms` of every "worker died" line in the supervisor's
    /// log: the backoff it chose after each crash.
    fn backoff_delays(&self) -> Vec<u64> {
        let logs = self.data.with_file_name("logs");
        let mut delays = Vec::new();
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("supervisor")
            {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            delays.extend(
                text.lines()
                    .filter(|l| l.contains("worker died"))
                    .filter_map(|l| l.split("restart_in_ms=").nth(1))
                    .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok()),
            );
        }
        delays
    }

    fn rss(&self) -> Rss {
        Rss::of(self.pid())
    }

    /// A fresh `supervisor ARGS…` process against this data dir.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        clean_env(&mut Command::new(&self.bin))
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("run the supervisor CLI")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}

// ---------------------------------------------------------------- baseline

/// A worker that binds its own socket, restarted by us like a naive
/// process manager would.
struct Naive {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    child: Option<Child>,
}

impl Naive {
    fn new(bins: &Bins, root: &Path) -> Naive {
        let data = root.join("data");
        let mut n = Naive {
            bin: bins.worker.clone(),
            sock: data.join("worker.sock"),
            data,
            child: None,
        };
        n.spawn();
        n.wait_serving();
        n
    }

    fn spawn(&mut self) {
        let child = clean_env(&mut Command::new(&self.bin))
            .arg("--data-dir")
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the worker");
        self.child = Some(child);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("a worker runs").id()
    }

    fn wait_serving(&self) {
        let pid = self.pid();
        wait_until(Duration::from_secs(30), "the naive worker", || {
            matches!(ping(&self.sock), Ping::Pid(p) if p == pid).then_some(())
        });
    }

    /// Signal, `waitpid`, start again at once.
    fn cycle(&mut self, signal: Signal) {
        let mut child = self.child.take().expect("a worker runs");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal the worker");
        let status = child.wait().expect("wait for the worker");
        if signal == Signal::SIGTERM {
            assert!(status.success(), "the worker stopped with {status}");
        }
        self.spawn();
    }
}

impl Drop for Naive {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- phases

struct Results {
    idle_rss: Vec<Rss>,
    crash_ours: Vec<Sample>,
    /// The backoff the supervisors logged for the crash samples.
    crash_delays: Vec<u64>,
    crash_naive: Vec<Sample>,
    rapid: Vec<Sample>,
    graceful_wall: Vec<f64>,
    graceful_ours: Vec<Sample>,
    graceful_naive: Vec<Sample>,
    restart_rss: Vec<(usize, Rss)>,
    restart_request_ms: Vec<f64>,
    restart_counts: Counts,
    restarts_took: Duration,
    status_json_ms: Vec<f64>,
    status_text_ms: Vec<f64>,
    /// The load average at the start and the end (other work on the machine).
    load: (String, String),
}

fn print_samples(what: &str, samples: &[Sample]) {
    let lat: Vec<f64> = samples.iter().map(|s| ms(s.latency)).collect();
    let refused: u64 = samples.iter().map(|s| s.counts.refused).sum();
    let dropped: u64 = samples.iter().map(|s| s.counts.dropped).sum();
    let other: u64 = samples.iter().map(|s| s.counts.other).sum();
    println!(
        "  {what}: n={} median/p90/max {}; refused {refused}, dropped {dropped}, other {other}",
        samples.len(),
        summary(&lat)
    );
}

fn baseline(bins: &Bins, root: &Path, cfg: &Config, r: &mut Results) {
    println!("baseline: naive kill-and-respawn of a self-binding worker");
    let mut naive = Naive::new(bins, &root.join("naive"));
    for _ in 0..cfg.samples {
        let old = naive.pid();
        let s = measure(&naive.sock.clone(), old, || naive.cycle(Signal::SIGKILL));
        assert_eq!(s.new_pid, naive.pid());
        r.crash_naive.push(s);
        naive.wait_serving();
    }
    print_samples("SIGKILL, waitpid, spawn", &r.crash_naive);
    for _ in 0..cfg.graceful {
        let old = naive.pid();
        let s = measure(&naive.sock.clone(), old, || naive.cycle(Signal::SIGTERM));
        assert_eq!(s.new_pid, naive.pid());
        r.graceful_naive.push(s);
        naive.wait_serving();
    }
    print_samples("SIGTERM, waitpid, spawn", &r.graceful_naive);
}

fn status_timing(sup: &Supervisor, cfg: &Config, r: &mut Results) {
    println!("status: {} fresh processes of each form", cfg.status_runs);
    for (args, out) in [
        (&["status", "--json"][..], &mut r.status_json_ms),
        (&["status"][..], &mut r.status_text_ms),
    ] {
        for _ in 0..cfg.status_runs {
            let t = Instant::now();
            let o = sup.cli(args);
            out.push(ms(t.elapsed()));
            assert!(
                o.status.success(),
                "supervisor {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        println!(
            "  supervisor {}: median/p90/max {}",
            args.join(" "),
            summary(out)
        );
    }
}

/// Crash samples, round-robin over the pool, each on a worker that has
/// been ready for longer than the backoff's `stable_after`.
fn crash_ours(pool: &mut [Supervisor], cfg: &Config, r: &mut Results) {
    println!(
        "ours: SIGKILL of a worker ready > {} s, round-robin over {} supervisors",
        STABLE_AFTER.as_secs(),
        pool.len()
    );
    let n = pool.len();
    for i in 0..cfg.samples {
        let sup = &mut pool[i % n];
        let eligible = sup.ready_seen + STABLE_AFTER + STABLE_MARGIN;
        if let Some(wait) = eligible.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let old = sup.worker;
        let s = measure(&sup.sock, old, || sigkill(old));
        let pid = sup.wait_ready();
        assert_eq!(
            s.new_pid, pid,
            "the client saw a worker the supervisor did not report"
        );
        r.crash_ours.push(s);
    }
    print_samples("SIGKILL, supervisor restarts", &r.crash_ours);
    let each: Vec<String> = r
        .crash_ours
        .iter()
        .map(|s| format!("{:.1}", ms(s.latency)))
        .collect();
    println!("  each (ms): {}", each.join(" "));
    r.crash_delays = pool.iter().flat_map(Supervisor::backoff_delays).collect();
    println!(
        "  restart delays the supervisors logged (restart_in_ms): {:?}",
        r.crash_delays
    );
}

/// Kills in a row on one supervisor, each as soon as the restart is ready:
/// shows the backoff policy.
fn rapid(sup: &mut Supervisor, cfg: &Config, r: &mut Results) {
    println!(
        "ours: {} SIGKILLs in a row, each once the previous restart is ready",
        cfg.rapid
    );
    let eligible = sup.ready_seen + STABLE_AFTER + STABLE_MARGIN;
    if let Some(wait) = eligible.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    for _ in 0..cfg.rapid {
        let old = sup.worker;
        let s = measure(&sup.sock, old, || sigkill(old));
        sup.wait_ready();
        r.rapid.push(s);
    }
    let list: Vec<String> = r.rapid.iter().map(|s| fmt_ms(ms(s.latency))).collect();
    let refused: u64 = r.rapid.iter().map(|s| s.counts.refused).sum();
    println!(
        "  kill 1..{}: {}; refused {refused}",
        cfg.rapid,
        list.join(", ")
    );
}

fn graceful(sup: &mut Supervisor, cfg: &Config, r: &mut Results) {
    println!(
        "ours: `supervisor restart` x{} under the client loop",
        cfg.graceful
    );
    for _ in 0..cfg.graceful {
        let old = sup.worker;
        let mut wall = Duration::ZERO;
        let s = measure(&sup.sock.clone(), old, || {
            let t = Instant::now();
            let o = sup.cli(&["restart"]);
            wall = t.elapsed();
            assert!(
                o.status.success(),
                "supervisor restart failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        });
        let pid = sup.wait_ready();
        assert_eq!(s.new_pid, pid);
        r.graceful_wall.push(ms(wall));
        r.graceful_ours.push(s);
    }
    println!(
        "  command wall time median/p90/max {}",
        summary(&r.graceful_wall)
    );
    print_samples(
        "restart request to new worker's first answer",
        &r.graceful_ours,
    );
    let longest: Vec<f64> = r
        .graceful_ours
        .iter()
        .map(|s| ms(s.counts.longest))
        .collect();
    println!(
        "  longest wait for one answer median/p90/max {}",
        summary(&longest)
    );
}

fn many_restarts(sup: &mut Supervisor, cfg: &Config, r: &mut Results) {
    println!(
        "ours: {} restarts (control socket `restart`, as the CLI sends it) under the client loop",
        cfg.restarts
    );
    let probe = Probe::start(&sup.sock, 0);
    probe.wait_answers(WARM_ANSWERS);
    r.restart_rss.push((0, sup.rss()));
    let quarter = cfg.restarts.div_ceil(4);
    let started = Instant::now();
    let mut last = sup.worker;
    for i in 1..=cfg.restarts {
        let t = Instant::now();
        let a = control(&sup.ctl, "restart", Duration::from_secs(60)).expect("restart request");
        r.restart_request_ms.push(ms(t.elapsed()));
        assert_eq!(a["ok"], true, "restart failed: {a}");
        let pid = a["worker"]["pid"].as_u64().expect("pid") as u32;
        assert_ne!(pid, last, "restart {i} kept the old worker");
        last = pid;
        if i % quarter == 0 || i == cfg.restarts {
            r.restart_rss.push((i, sup.rss()));
        }
    }
    r.restarts_took = started.elapsed();
    r.restart_counts = probe.stop();
    sup.wait_ready();
    let rss: Vec<String> = r
        .restart_rss
        .iter()
        .map(|(i, rss)| format!("\n    after {i:>5}: {rss}"))
        .collect();
    let c = &r.restart_counts;
    println!(
        "  took {:.1} s (request median {}); client: answered {}, refused {}, dropped {}, other {}; supervisor RSS:{}",
        r.restarts_took.as_secs_f64(),
        fmt_ms(pct(&r.restart_request_ms, 50.0)),
        c.answered,
        c.refused,
        c.dropped,
        c.other,
        rss.join("")
    );
}

// ---------------------------------------------------------------- table

fn table(cfg: &Config, r: &Results) {
    let lat = |v: &[Sample]| -> Vec<f64> { v.iter().map(|s| ms(s.latency)).collect() };
    let total =
        |v: &[Sample], f: fn(&Counts) -> u64| -> u64 { v.iter().map(|s| f(&s.counts)).sum() };
    let crash = lat(&r.crash_ours);
    let crash_naive = lat(&r.crash_naive);
    let crash_refused = total(&r.crash_ours, |c| c.refused);
    let crash_med = pct(&crash, 50.0);
    let grace_refused = total(&r.graceful_ours, |c| c.refused);
    let idle = r.idle_rss[0];
    let idle_max = r
        .idle_rss
        .iter()
        .map(|x| x.total_kib)
        .max()
        .expect("a pool");
    let idle_restart = r.restart_rss[0].1;
    let (warm_n, warm) = r.restart_rss[1];
    let (last_n, last) = *r.restart_rss.last().expect("readings");
    let growth = last.total_kib as i64 - warm.total_kib as i64;
    let anon_growth = match (last.anon_kib, warm.anon_kib) {
        (Some(l), Some(w)) => format!("{:+} KiB", l as i64 - w as i64),
        _ => "Linux-only".into(),
    };
    let json_med = pct(&r.status_json_ms, 50.0);
    let text_med = pct(&r.status_text_ms, 50.0);
    let rapid: Vec<String> = r.rapid.iter().map(|s| fmt_ms(ms(s.latency))).collect();

    let rows: Vec<[String; 6]> = vec![
        [
            format!(
                "crash: SIGKILL -> first answer from the new worker, worker up > 10 s \
                 (median / p90 / max, n={}; backoff logged: {})",
                cfg.samples,
                if r.crash_delays.iter().all(|d| *d == 0) {
                    format!("{} x 0 ms", r.crash_delays.len())
                } else {
                    format!("{:?} ms", r.crash_delays)
                }
            ),
            summary(&crash),
            summary(&crash_naive),
            "PM2 7.0.4: 6 ms; supervisord 4.3.0: ~1,000 ms".into(),
            format!("median <= {TARGET_CRASH_MS} ms"),
            verdict(crash_med <= TARGET_CRASH_MS).into(),
        ],
        [
            "crash: refused connections (ECONNREFUSED/ENOENT), total".into(),
            crash_refused.to_string(),
            total(&r.crash_naive, |c| c.refused).to_string(),
            "PM2: refuses meanwhile".into(),
            "0".into(),
            verdict(crash_refused == 0).into(),
        ],
        [
            "crash: connections dropped unanswered (accepted by the killed worker), total".into(),
            total(&r.crash_ours, |c| c.dropped).to_string(),
            total(&r.crash_naive, |c| c.dropped).to_string(),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            format!(
                "crash: kills in a row, each as soon as the restart is ready (kill 1..{})",
                cfg.rapid
            ),
            rapid.join(", "),
            "no backoff: as the row above".into(),
            String::new(),
            "-".into(),
            "info (backoff)".into(),
        ],
        [
            format!(
                "graceful: `supervisor restart` wall time (median / p90 / max, n={})",
                cfg.graceful
            ),
            summary(&r.graceful_wall),
            "-".into(),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            "graceful: restart request -> first answer from the new worker (median / p90 / max)"
                .into(),
            summary(&lat(&r.graceful_ours)),
            format!(
                "{} (SIGTERM, waitpid, spawn)",
                summary(&lat(&r.graceful_naive))
            ),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            "graceful: refused / dropped connections, total".into(),
            format!(
                "{grace_refused} / {}",
                total(&r.graceful_ours, |c| c.dropped)
            ),
            format!(
                "{} / {}",
                total(&r.graceful_naive, |c| c.refused),
                total(&r.graceful_naive, |c| c.dropped)
            ),
            String::new(),
            "0 refused".into(),
            verdict(grace_refused == 0).into(),
        ],
        [
            format!("restarts x{last_n}: refused / dropped connections, total",),
            format!(
                "{} / {}",
                r.restart_counts.refused, r.restart_counts.dropped
            ),
            "-".into(),
            String::new(),
            "0 refused".into(),
            verdict(r.restart_counts.refused == 0).into(),
        ],
        [
            format!(
                "supervisor RSS idle (pool of {}: max {})",
                r.idle_rss.len(),
                fmt_kib(idle_max)
            ),
            idle.to_string(),
            "-".into(),
            "supervisord 19.5 MB; PM2 daemon 60 MB".into(),
            "<= 4 MiB".into(),
            verdict(idle_max <= TARGET_RSS_KIB).into(),
        ],
        [
            format!("supervisor RSS after {last_n} restarts"),
            last.to_string(),
            "-".into(),
            String::new(),
            "<= 4 MiB".into(),
            verdict(last.total_kib <= TARGET_RSS_KIB).into(),
        ],
        [
            format!(
                "supervisor RSS growth from restart {warm_n} to {last_n} (total / anon; \
                 restart 0 to {warm_n}: {:+} KiB)",
                warm.total_kib as i64 - idle_restart.total_kib as i64
            ),
            format!("{growth:+} KiB / {anon_growth}"),
            "-".into(),
            String::new(),
            format!("<= {GROWTH_TOLERANCE_KIB} KiB"),
            verdict(growth <= GROWTH_TOLERANCE_KIB as i64).into(),
        ],
        [
            format!(
                "`supervisor status --json` wall time (median / p90 / max, n={})",
                cfg.status_runs
            ),
            summary(&r.status_json_ms),
            "-".into(),
            "`pm2 jlist` 120 ms".into(),
            format!("median <= {TARGET_STATUS_MS} ms"),
            verdict(json_med <= TARGET_STATUS_MS).into(),
        ],
        [
            format!(
                "`supervisor status` wall time (median / p90 / max, n={})",
                cfg.status_runs
            ),
            summary(&r.status_text_ms),
            "-".into(),
            "`supervisorctl status` 122 ms".into(),
            format!("median <= {TARGET_STATUS_MS} ms"),
            verdict(text_med <= TARGET_STATUS_MS).into(),
        ],
    ];
    println!();
    println!(
        "| measure | ours (supervisor) | baseline (naive respawn) | peers (dev machine) | target | result |"
    );
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!(
        "Peers are figures measured on the development machine, not in this run. \
         Crash rows: the first restart after a worker that was ready for 10 s is immediate; \
         within 10 s the supervisor waits 100 ms, 200 ms, 400 ms... (the kills-in-a-row row). \
         Load average at the start {}, at the end {}.",
        r.load.0, r.load.1
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let cfg = Config::from_env();
    let bins = binaries();
    let mut tmp = tempfile::Builder::new()
        .prefix("supervisor-bench-")
        .tempdir_in(&cfg.tmpdir)
        .expect("create a temp dir");
    if cfg.keep {
        tmp.disable_cleanup(true);
    }
    println!(
        "{} CPUs, load average {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "samples {}, pool {}, rapid {}, graceful {}, restarts {}, status runs {}, in {}",
        cfg.samples,
        cfg.pool,
        cfg.rapid,
        cfg.graceful,
        cfg.restarts,
        cfg.status_runs,
        tmp.path().display()
    );
    let mut r = Results {
        idle_rss: Vec::new(),
        crash_ours: Vec::new(),
        crash_delays: Vec::new(),
        crash_naive: Vec::new(),
        rapid: Vec::new(),
        graceful_wall: Vec::new(),
        graceful_ours: Vec::new(),
        graceful_naive: Vec::new(),
        restart_rss: Vec::new(),
        restart_request_ms: Vec::new(),
        restart_counts: Counts::default(),
        restarts_took: Duration::ZERO,
        status_json_ms: Vec::new(),
        status_text_ms: Vec::new(),
        load: (loadavg(), String::new()),
    };

    // The pool for the crash samples, plus one supervisor for the kills in
    // a row. All start now so that they are stable by the time they are used.
    let mut pool: Vec<Supervisor> = (0..cfg.pool)
        .map(|i| Supervisor::spawn(&bins, &tmp.path().join(format!("sup{i}"))))
        .collect();
    let mut rapid_sup = Supervisor::spawn(&bins, &tmp.path().join("rapid"));
    for sup in pool.iter_mut().chain(std::iter::once(&mut rapid_sup)) {
        sup.wait_ready();
    }
    thread::sleep(Duration::from_millis(500));
    r.idle_rss = pool.iter().map(Supervisor::rss).collect();
    println!("idle supervisor RSS: {}", r.idle_rss[0]);

    // While the pool's workers become stable: the baseline, then status.
    baseline(&bins, tmp.path(), &cfg, &mut r);
    status_timing(&pool[0], &cfg, &mut r);

    crash_ours(&mut pool, &cfg, &mut r);
    rapid(&mut rapid_sup, &cfg, &mut r);
    drop(rapid_sup);
    graceful(&mut pool[0], &cfg, &mut r);
    many_restarts(&mut pool[0], &cfg, &mut r);

    drop(pool);
    r.load.1 = loadavg();
    table(&cfg, &r);
}
