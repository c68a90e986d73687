//! The harness every integration test and every bench uses: a temp data
//! directory, the real `worker` and `supervisor` binaries (stopped when
//! their guards drop), a line client for the socket, a tally of what a
//! client loop saw, and the waits (`wait_until` for tests, `poll_until`
//! for benches).

use std::fs::{self, File};
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

mod bins;
mod conn;
pub mod fdlimit;
pub mod heal;
pub mod launch;
pub mod project;
pub mod service;
pub mod strace;
pub mod supervisor;
mod tally;
mod worker;

pub use bins::{built_bin, version_line, worker_bin, Bins};
pub use conn::{ids, put_id, refused, Conn};
pub use tally::{request, request_line, Outcome, Tally};
pub use worker::{run_to_exit, Worker};

/// Generous: the machine running the tests may be slow and busy.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Calls `probe` until it returns `Some`, pausing briefly between calls;
/// panics naming `what` once `deadline` has passed.
pub fn wait_until<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Calls `probe` every `every` until it returns `Some`; panics naming
/// `what` once `deadline` has passed. For benchmarks, where the end of a
/// wait is measured and must not lag behind by a back-off.
pub fn poll_until<T>(
    every: Duration,
    deadline: Duration,
    what: &str,
    probe: impl FnMut() -> Option<T>,
) -> T {
    poll_for(every, deadline, probe)
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// Like [`poll_until`], but `None` once `deadline` has passed: for a wait
/// whose end has a fallback (a process that does not stop is killed).
pub fn poll_for<T>(
    every: Duration,
    deadline: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Where test temp dirs go: short, so that socket paths in them stay far
/// below macOS's limit (its `$TMPDIR`, `/var/folders/xx/…/T/`, is ~50 bytes).
pub const TEMP_BASE: &str = "/tmp";

/// The longest socket path a test may use: macOS's limit (103 bytes), on
/// every platform, so a Linux run catches a path a Mac would refuse.
pub const MAX_TEST_SOCKET: usize = 103;

/// A fresh temp dir under [`TEMP_BASE`], removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sb-")
        .tempdir_in(TEMP_BASE)
        .unwrap_or_else(|e| panic!("create a temp dir in {TEMP_BASE}: {e}"))
}

/// Panics unless `sock` fits a Unix socket path on macOS too.
pub fn assert_socket_fits(sock: &Path) {
    let len = sock.as_os_str().len();
    assert!(
        len <= MAX_TEST_SOCKET,
        "the test socket path {} is {len} bytes, over macOS's {MAX_TEST_SOCKET}",
        sock.display()
    );
}

/// A temp directory holding the data directory `data` and the workers' logs.
pub struct TestDir {
    tmp: tempfile::TempDir,
    pub data: PathBuf,
    logs: std::cell::Cell<u32>,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    /// A fresh temp dir with an empty data directory (0700) in it.
    pub fn new() -> TestDir {
        let tmp = temp_dir();
        let data = tmp.path().join("data");
        assert_socket_fits(&shared::paths::DataDir::new(&data).supervisor_sock());
        fs::create_dir(&data).expect("create the data dir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod the data dir");
        TestDir {
            tmp,
            data,
            logs: std::cell::Cell::new(0),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn sock(&self) -> PathBuf {
        self.data.join("worker.sock")
    }

    pub fn sessions_json(&self) -> PathBuf {
        self.data.join("sessions.json")
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.data.join("journal")
    }

    /// The file names in `dir` (relative to the data dir), sorted; none if missing.
    pub fn names(&self, dir: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.data.join(dir)) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| {
                e.expect("read a dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// The journal files (`<16 hex>.journal`) in `journal/`.
    pub fn journals(&self) -> Vec<String> {
        self.names("journal")
            .into_iter()
            .filter(|n| n.len() == 24 && n.ends_with(".journal"))
            .collect()
    }

    /// `sessions.json` parsed: id -> session.
    pub fn snapshot(&self) -> serde_json::Map<String, Value> {
        let bytes = fs::read(self.sessions_json()).expect("read sessions.json");
        let doc: Value = serde_json::from_slice(&bytes).expect("sessions.json is JSON");
        assert_eq!(doc["version"], 1, "sessions.json version");
        doc["sessions"]
            .as_object()
            .expect("sessions is an object")
            .clone()
    }

    /// `worker --data-dir <data> ARGS…` with stderr going to a new log file.
    pub fn command(&self, args: &[&str]) -> (Command, PathBuf) {
        let (mut cmd, log) = self.bare_command(&[]);
        cmd.arg("--data-dir").arg(&self.data).args(args);
        (cmd, log)
    }

    /// `worker ARGS…` (no `--data-dir`) with stderr going to a new log file
    /// and none of the worker's variables inherited.
    pub fn bare_command(&self, args: &[&str]) -> (Command, PathBuf) {
        self.logged(Command::new(worker_bin()), args)
    }

    /// `cmd ARGS…` with the worker's environment and a new log file.
    fn logged(&self, mut cmd: Command, args: &[&str]) -> (Command, PathBuf) {
        let n = self.logs.get() + 1;
        self.logs.set(n);
        let log = self.tmp.path().join(format!("worker-{n}.stderr"));
        cmd.args(args);
        launch::worker_env(&mut cmd, File::create(&log).expect("create the log file"));
        (cmd, log)
    }

    /// Starts a worker and waits until it answers `ping`.
    pub fn start(&self, args: &[&str]) -> Worker {
        let mut w = self.spawn(args);
        w.wait_ready();
        w
    }

    /// Starts a worker without waiting for it.
    pub fn spawn(&self, args: &[&str]) -> Worker {
        let (cmd, log) = self.command(args);
        Worker::spawn(cmd, log, self.sock())
    }

    /// Runs a worker that is expected to exit by itself: (status, stderr).
    pub fn run_to_exit(&self, args: &[&str]) -> (ExitStatus, String) {
        let (cmd, log) = self.command(args);
        run_to_exit(cmd, log, self.sock())
    }
}

/// Makes `fds` (parent fd, child fd) appear at the child fd numbers in the
/// spawned process, without FD_CLOEXEC. Async-signal-safe: no allocation.
pub fn pass_fds(cmd: &mut Command, fds: &[(RawFd, RawFd)]) {
    use nix::fcntl::{fcntl, FcntlArg};
    const MAX: usize = 8;
    assert!(fds.len() <= MAX);
    let mut pairs = [(-1, -1); MAX];
    pairs[..fds.len()].copy_from_slice(fds);
    let n = fds.len();
    // SAFETY: the closure only makes fcntl/dup2 system calls.
    unsafe {
        cmd.pre_exec(move || {
            // First move every source out of the way of every target
            // (the copies are close-on-exec), then place them.
            let mut moved = [-1; MAX];
            for i in 0..n {
                moved[i] = fcntl(pairs[i].0, FcntlArg::F_DUPFD_CLOEXEC(100))?;
            }
            for i in 0..n {
                nix::unistd::dup2(moved[i], pairs[i].1)?;
            }
            Ok(())
        });
    }
}

/// Whether `s` holds `n` as a whole number (not part of a longer one).
pub fn names_number(s: &str, n: u64) -> bool {
    s.split(|c: char| !c.is_ascii_digit())
        .any(|w| w == n.to_string())
}

/// Runs `git ARGS…` in `dir` (never prompting, with a test identity) and
/// returns its trimmed output; panics with git's stderr if it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
