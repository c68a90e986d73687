//! The real `supervisor` process for the supervisor crate's tests and
//! benches: a guard that runs `supervisor run` (in a test dir, or where a
//! bench says), `status --json`, and requests on its control socket.

use std::ffi::OsString;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::launch::{clean_env, stop_child, STOP_GRACE};
use super::{wait_until, Conn, TestDir, DEADLINE};

/// The `supervisor` binary of this workspace, built if stale.
pub fn supervisor_bin() -> PathBuf {
    super::built_bin("supervisor")
}

/// SIGKILLs the real supervisor (not the strace it runs under) when
/// dropped, unless its pid was taken out.
pub struct KillOnDrop(pub Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// A running `supervisor run`; when dropped, SIGKILLed (and its worker
/// with it) if a test started it, stopped with SIGTERM if a bench did.
pub struct Supervisor {
    child: Child,
    /// The supervisor binary it runs.
    pub bin: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
    on_drop: OnDrop,
}

/// What dropping a [`Supervisor`] that still runs does.
#[derive(Debug, Clone, Copy)]
enum OnDrop {
    Kill,
    /// SIGTERM (its worker writes its sessions), SIGKILL after a grace.
    Stop,
}

/// A `supervisor run` as a bench starts it: its own binary (a release
/// build), directories, flags and environment. Tests use
/// [`Supervisor::start`] and its kin.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The supervisor binary.
    pub bin: PathBuf,
    pub data: PathBuf,
    pub logs: PathBuf,
    /// The file its stderr goes to (its directory must exist).
    pub stderr: PathBuf,
    /// Flags of `run` after `--log-dir`; `--poll-interval-ms 0` unless
    /// they set it.
    pub args: Vec<OsString>,
    /// Set after the environment is cleaned (`launch::clean_env`), e.g.
    /// `RUST_LOG`.
    pub env: Vec<(OsString, OsString)>,
}

pub fn supervisor_cmd(data: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(supervisor_bin());
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SECOND_BRAIN_DATA_DIR");
    cmd
}

impl Supervisor {
    /// `supervisor run` on the test dir with polling off and fast timers.
    pub fn start(dir: &TestDir, args: &[&str]) -> Supervisor {
        Self::spawn(dir, Some(&super::worker_bin()), args)
    }

    pub fn start_with(dir: &TestDir, worker: &Path, args: &[&str]) -> Supervisor {
        Self::spawn(dir, Some(worker), args)
    }

    /// `supervisor run` with its log dir in the test dir, polling off
    /// unless `args` set it, and `--worker-bin` if given.
    pub fn spawn(dir: &TestDir, worker: Option<&Path>, args: &[&str]) -> Supervisor {
        Self::spawn_full(dir, &[], worker, args, |_| {})
    }

    /// Like [`Supervisor::spawn`], with `setup` applied to the command
    /// before it starts (e.g. limits set in `pre_exec`).
    pub fn spawn_with(
        dir: &TestDir,
        worker: Option<&Path>,
        args: &[&str],
        setup: impl FnOnce(&mut Command),
    ) -> Supervisor {
        Self::spawn_full(dir, &[], worker, args, setup)
    }

    /// [`Supervisor::spawn`] as `WRAPPER… supervisor …` (e.g. under
    /// strace to inject a fault): `pid()` is then the wrapper's.
    pub fn spawn_under(
        dir: &TestDir,
        wrapper: &[&str],
        worker: Option<&Path>,
        args: &[&str],
    ) -> Supervisor {
        Self::spawn_full(dir, wrapper, worker, args, |_| {})
    }

    /// Like `spawn`, with `env` set for the supervisor (and so for what it
    /// starts: a fake `cargo` first in `PATH`, for example).
    pub fn spawn_env(
        dir: &TestDir,
        worker: Option<&Path>,
        args: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Supervisor {
        Self::spawn_full(dir, &[], worker, args, |cmd| {
            cmd.envs(env.iter().copied());
        })
    }

    fn spawn_full(
        dir: &TestDir,
        wrapper: &[&str],
        worker: Option<&Path>,
        args: &[&str],
        setup: impl FnOnce(&mut Command),
    ) -> Supervisor {
        let logs = dir.root().join("logs");
        let stderr = dir.root().join(format!(
            "supervisor-{}.stderr",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let bin = supervisor_bin();
        let mut cmd = match wrapper.split_first() {
            None => supervisor_cmd(&dir.data, &["run"]),
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest)
                    .arg(&bin)
                    .arg("--data-dir")
                    .arg(&dir.data)
                    .arg("run")
                    .env_remove("SECOND_BRAIN_DATA_DIR");
                cmd
            }
        };
        cmd.arg("--log-dir").arg(&logs);
        if !args.contains(&"--poll-interval-ms") {
            cmd.args(["--poll-interval-ms", "0"]);
        }
        if let Some(worker) = worker {
            cmd.arg("--worker-bin").arg(worker);
        }
        cmd.args(args);
        setup(&mut cmd);
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn the supervisor");
        Supervisor {
            child,
            bin,
            data: dir.data.clone(),
            logs,
            stderr,
            status: None,
            on_drop: OnDrop::Kill,
        }
    }

    /// Starts `launch` in a clean environment (`launch::clean_env`), its
    /// stdout closed. Dropped, it is stopped with SIGTERM, then SIGKILLed
    /// after `launch::STOP_GRACE`.
    pub fn launch(launch: Launch) -> Supervisor {
        let Launch {
            bin,
            data,
            logs,
            stderr,
            args,
            env,
        } = launch;
        let mut cmd = Command::new(&bin);
        clean_env(&mut cmd)
            .arg("--data-dir")
            .arg(&data)
            .arg("run")
            .arg("--log-dir")
            .arg(&logs);
        if !args.iter().any(|a| a == "--poll-interval-ms") {
            cmd.args(["--poll-interval-ms", "0"]);
        }
        let file = fs::File::create(&stderr)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let child = cmd
            .args(&args)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the supervisor");
        Supervisor {
            child,
            bin,
            data,
            logs,
            stderr,
            status: None,
            on_drop: OnDrop::Stop,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn sock(&self) -> PathBuf {
        self.data.join("worker.sock")
    }

    /// The control socket the `supervisor` CLI talks to.
    pub fn control_sock(&self) -> PathBuf {
        shared::paths::DataDir::new(&self.data).supervisor_sock()
    }

    /// `{"op": OP}` on the control socket: [`control`].
    pub fn control(&self, op: &str, timeout: Duration) -> io::Result<Value> {
        control(&self.control_sock(), op, timeout)
    }

    /// `supervisor --data-dir <data> ARGS…` of this guard's binary, in a
    /// clean environment (`launch::clean_env`): a fresh CLI process.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        clean_env(&mut cmd)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args);
        cmd
    }

    pub fn status(&self) -> (i32, Option<Value>) {
        status_of(&self.data)
    }

    /// Waits for a ready worker satisfying `pred`; returns the status.
    pub fn wait_worker(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let what = format!("{what}; supervisor stderr:\n{}", self.stderr_text());
        let data = self.data.clone();
        wait_until(DEADLINE, &what, || {
            if let Some(s) = self.try_exit() {
                panic!(
                    "the supervisor exited ({s}): {}",
                    fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            let (code, status) = status_of(&data);
            let status = status?;
            (code == 0 && pred(&status)).then_some(status)
        })
    }

    pub fn wait_ready(&mut self) -> Value {
        self.wait_worker("a ready worker", |_| true)
    }

    pub fn stderr_text(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_until(DEADLINE, "the supervisor to exit", || self.try_exit())
    }

    /// Sends `sig`, then reaps the supervisor with `wait4`: its exit status
    /// and the CPU time (user + system) used over its whole life by it and
    /// by the children it reaped. Precise, and the same on Linux and macOS.
    pub fn stop_with_cpu(&mut self, sig: Signal) -> (ExitStatus, Duration) {
        assert!(self.try_exit().is_none(), "the supervisor already exited");
        self.signal(sig);
        let pid = self.pid();
        let (raw, cpu) = wait_until(DEADLINE, "the supervisor to exit", || {
            shared::procs::try_reap(pid).unwrap_or_else(|e| panic!("wait4({pid}): {e}"))
        });
        let status = ExitStatus::from_raw(raw);
        // Reaped here, so `Child` must never wait for it again.
        self.status = Some(status);
        (status, cpu)
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// The text of every log file whose name starts with `prefix`, oldest
    /// file first (by name). A file that retention deletes between the
    /// listing and the read is skipped.
    pub fn log_text(&self, prefix: &str) -> String {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .collect();
        files.sort();
        let mut out = String::new();
        for path in files {
            match fs::read_to_string(&path) {
                Ok(text) => out.push_str(&text),
                Err(err) if err.kind() == ErrorKind::NotFound => {}
                Err(err) => panic!("read {}: {err}", path.display()),
            }
        }
        out
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            match self.on_drop {
                OnDrop::Kill => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
                OnDrop::Stop => stop_child(&mut self.child, STOP_GRACE),
            }
        }
        if std::thread::panicking() {
            eprintln!("---- supervisor stderr ----\n{}", self.stderr_text());
            eprintln!("---- worker log ----\n{}", self.log_text("worker"));
        }
    }
}

/// `supervisor status --json`: (exit code, parsed output if any).
pub fn status_of(data: &Path) -> (i32, Option<Value>) {
    let out = supervisor_cmd(data, &["status", "--json"])
        .output()
        .unwrap();
    let code = out.status.code().expect("status exits normally");
    (code, serde_json::from_slice(&out.stdout).ok())
}

/// One request on a supervisor's control socket as the `supervisor` CLI
/// sends it (`{"op": OP}` and a newline), and the one JSON line back.
pub fn control(sock: &Path, op: &str, timeout: Duration) -> io::Result<Value> {
    let mut conn = Conn::open(sock, timeout)?;
    conn.send(json!({ "op": op }).to_string().as_bytes())?;
    let line = conn
        .recv()?
        .ok_or_else(|| io::Error::new(ErrorKind::UnexpectedEof, "no answer"))?;
    serde_json::from_str(&line).map_err(io::Error::other)
}

/// Whether `pid` runs: it exists and is not a zombie (a zombie has exited;
/// only its parent has not reaped it yet). Panics if `ps` cannot tell.
pub fn alive(pid: u32) -> bool {
    shared::procs::alive(pid).unwrap_or_else(|e| panic!("is pid {pid} alive? {e}"))
}

pub fn worker_pid(status: &Value) -> u32 {
    status["worker"]["pid"].as_u64().expect("worker pid") as u32
}
