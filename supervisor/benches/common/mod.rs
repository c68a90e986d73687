//! What the supervisor benchmarks share: the binaries, a clean child
//! environment, a deadline wait, and small statistics and formatting.
#![allow(dead_code)] // each bench uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How often a bench polls a condition it waits for (`harness::poll_until`).
pub const POLL: Duration = Duration::from_millis(1);

/// Variables of ours a child must not inherit from the caller, besides
/// those of a launch (`shared::launch::LAUNCH_ENV`).
pub const CHILD_ENV: &[&str] = &[
    "SECOND_BRAIN_DATA_DIR",
    "SECOND_BRAIN_WORKER_BIN",
    "SECOND_BRAIN_REPO",
    "SECOND_BRAIN_BRANCH",
    "SECOND_BRAIN_STAGING_DIR",
    "SECOND_BRAIN_COMMIT",
    "SECOND_BRAIN_HANDOVER",
    "LOG_FILE_PATH",
    "LOG_RETENTION_DAYS",
    "GIT_POLL_INTERVAL_MS",
    "RUST_LOG",
    "GIT_DIR",
    "GIT_WORK_TREE",
];

/// A bench knob: a whole number (`_` allowed as a separator).
pub fn whole(v: &str) -> Result<usize, String> {
    whole_u64(v).map(|n| n as usize)
}

/// A bench knob: a whole number (`_` allowed as a separator).
pub fn whole_u64(v: &str) -> Result<u64, String> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// A bench knob: whole milliseconds.
pub fn millis(v: &str) -> Result<Duration, String> {
    whole_u64(v).map(Duration::from_millis)
}

/// A bench knob that is on unless it is 0.
pub fn nonzero(v: &str) -> Result<bool, String> {
    whole_u64(v).map(|n| n != 0)
}

pub struct Bins {
    pub supervisor: PathBuf,
    pub worker: PathBuf,
    /// The cargo target dir the binaries are in.
    pub target_dir: PathBuf,
}

/// The root of this workspace.
pub fn workspace() -> PathBuf {
    harness::project::workspace()
}

/// The newest modification time of the files under `paths`.
fn newest_mtime(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(t) = meta.modified() {
            newest = newest.max(Some(t));
        }
    }
    newest
}

/// The supervisor Cargo built for this bench, and the worker beside it
/// (built with `cargo build --release -p worker` when it is missing or
/// older than its sources).
pub fn binaries() -> Bins {
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let worker = supervisor.with_file_name("worker");
    let target_dir = supervisor
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in <target dir>/<profile>/")
        .to_path_buf();
    let ws = workspace();
    let sources: Vec<PathBuf> = ["worker/src", "worker/Cargo.toml", "shared/src"]
        .iter()
        .map(|p| ws.join(p))
        .collect();
    let built = std::fs::metadata(&worker).and_then(|m| m.modified()).ok();
    let why = match (built, newest_mtime(&sources)) {
        (None, _) => Some("is missing"),
        (Some(b), Some(src)) if src > b => Some("is older than its sources"),
        _ => None,
    };
    if let Some(why) = why {
        println!(
            "{} {why}: running `cargo build --release -p worker --bin worker --target-dir {}`",
            worker.display(),
            target_dir.display()
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&ws)
            .args(["build", "--release", "-p", "worker", "--bin", "worker"])
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the worker failed");
        assert!(worker.is_file(), "{} still missing", worker.display());
    }
    println!("supervisor: {}", supervisor.display());
    println!("worker:     {}", worker.display());
    Bins {
        supervisor,
        worker,
        target_dir,
    }
}

/// Without our variables, stdin closed.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for name in CHILD_ENV.iter().chain(&shared::launch::LAUNCH_ENV) {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null())
}

/// SIGTERM (a supervisor stops its worker, which writes its sessions),
/// then SIGKILL if it is still there after 15 s.
pub fn stop_child(child: &mut Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `f` every millisecond until it gives a value; panics naming
/// `what` after `timeout` (`harness::poll_until`).
pub fn wait_until<T>(timeout: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    harness::poll_until(Duration::from_millis(1), timeout, what, f)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of unsorted values (0 for none).
pub fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else if v < 10_000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.1} s", v / 1e3)
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// The 1, 5 and 15 minute load averages (`getloadavg`: Linux and macOS).
pub fn loadavg() -> String {
    shared::procs::loadavg_text()
}
