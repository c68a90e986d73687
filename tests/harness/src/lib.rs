//! The test harness every integration test uses: a temp data directory,
//! the real `worker` and `supervisor` binaries (killed when their guards
//! drop), a line client for the socket and one generic `wait_until`.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

pub mod fdlimit;
pub mod heal;
pub mod project;
pub mod service;
pub mod strace;
pub mod supervisor;

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
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
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
        cmd.args(args).env_remove("SECOND_BRAIN_DATA_DIR");
        for name in shared::launch::LAUNCH_ENV {
            cmd.env_remove(name);
        }
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create the log file"));
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

/// Runs `cmd` (from `TestDir::command`) to its exit: (status, stderr).
pub fn run_to_exit(cmd: Command, log: PathBuf, sock: PathBuf) -> (ExitStatus, String) {
    let mut w = Worker::spawn(cmd, log, sock);
    let status = w.wait_exit(DEADLINE);
    (status, w.stderr())
}

/// A running worker; SIGKILLed when dropped (its log printed if panicking).
pub struct Worker {
    child: Child,
    log: PathBuf,
    pub sock: PathBuf,
    status: Option<ExitStatus>,
}

impl Worker {
    pub fn spawn(mut cmd: Command, log: PathBuf, sock: PathBuf) -> Worker {
        assert_socket_fits(&sock);
        let child = cmd.spawn().expect("spawn the worker binary");
        Worker {
            child,
            log,
            sock,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, signal: Signal) {
        assert!(self.status.is_none(), "the worker already exited");
        kill(Pid::from_raw(self.pid() as i32), signal).expect("signal the worker");
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        let status = self.wait_exit(DEADLINE);
        assert_eq!(
            status.signal(),
            Some(Signal::SIGKILL as i32),
            "killed by SIGKILL"
        );
    }

    /// The exit status if the worker has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait for the worker");
        }
        self.status
    }

    /// Waits for the worker to exit, at most `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let what = format!("worker {} to exit", self.pid());
        wait_until(deadline, &what, || self.try_exit())
    }

    /// Waits until `ping` answers with this worker's pid.
    pub fn wait_ready(&mut self) {
        let pid = self.pid();
        wait_until(DEADLINE, "the worker to answer ping", || {
            if let Some(status) = self.try_exit() {
                panic!(
                    "the worker exited ({status}) before it was ready:\n{}",
                    self.stderr()
                );
            }
            let answer = Conn::try_connect(&self.sock)?.try_call(&json!({"op": "ping"}))?;
            (answer["pid"] == pid).then_some(())
        });
    }

    pub fn connect(&self) -> Conn {
        Conn::connect(&self.sock)
    }

    /// One request on a new connection.
    pub fn call(&self, request: &Value) -> Value {
        self.connect().call(request)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log of worker {} ----\n{}", self.pid(), self.stderr());
        }
    }
}

/// One connection to a worker socket: lines in, lines out.
pub struct Conn {
    reader: BufReader<UnixStream>,
    pub stream: UnixStream,
}

impl Conn {
    pub fn connect(sock: &Path) -> Conn {
        Conn::try_connect(sock).unwrap_or_else(|| panic!("connect to {}", sock.display()))
    }

    pub fn try_connect(sock: &Path) -> Option<Conn> {
        Some(Conn::from_stream(UnixStream::connect(sock).ok()?))
    }

    /// Wraps a connected stream (read and write time out after `DEADLINE`).
    pub fn from_stream(stream: UnixStream) -> Conn {
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("set a read timeout");
        stream
            .set_write_timeout(Some(DEADLINE))
            .expect("set a write timeout");
        Conn {
            reader: BufReader::new(stream.try_clone().expect("clone a socket")),
            stream,
        }
    }

    /// Sends `line` plus a newline.
    pub fn send(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.stream.write_all(&buf)
    }

    /// The next response line (without newline); `Ok(None)` at EOF.
    pub fn recv(&mut self) -> std::io::Result<Option<String>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line.pop() != Some('\n') {
            let what = format!("the connection ended inside a response line: {line:?}");
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what));
        }
        Ok(Some(line))
    }

    /// Sends one raw line and parses the one answer.
    pub fn call_raw(&mut self, line: &[u8]) -> Value {
        self.send(line).expect("send a request");
        let answer = self
            .recv()
            .expect("read an answer")
            .expect("an answer, not EOF");
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {answer}"))
    }

    pub fn call(&mut self, request: &Value) -> Value {
        self.call_raw(request.to_string().as_bytes())
    }

    /// Like `call`, but `None` on any I/O failure or EOF.
    pub fn try_call(&mut self, request: &Value) -> Option<Value> {
        self.send(request.to_string().as_bytes()).ok()?;
        serde_json::from_str(&self.recv().ok()??).ok()
    }
}

/// Puts the small session `{"id": ID}` under `id`; the answer.
pub fn put_id(conn: &mut Conn, id: &str) -> Value {
    conn.call(&json!({"op": "put", "id": id, "data": {"id": id}}))
}

/// The ids a worker serves, sorted (`list`).
pub fn ids(conn: &mut Conn) -> Vec<String> {
    let list = conn.call(&json!({"op": "list"}));
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .collect()
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

/// The `worker` binary of this workspace, built if stale.
pub fn worker_bin() -> PathBuf {
    built_bin("worker")
}

/// A binary of this workspace (`worker`, `supervisor`), built for the
/// profile the tests run in. Cargo names binaries only to the tests of
/// their own package, and builds none for a library like this one, so
/// this builds it (`cargo build -p NAME --bin NAME`) once per test binary
/// and name: a no-op of well under a second when it is fresh, and what
/// makes `cargo test -p supervisor` alone run a current worker.
pub fn built_bin(name: &str) -> PathBuf {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", name, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
        built.insert(name.to_string());
    }
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {name}`",
        bin.display()
    );
    bin
}

/// The first line of `worker --version`.
pub fn version_line() -> String {
    let out = Command::new(worker_bin())
        .arg("--version")
        .output()
        .expect("run worker --version");
    assert!(out.status.success(), "worker --version failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("--version is UTF-8")
        .lines()
        .next()
        .expect("--version prints a line")
        .to_string()
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
