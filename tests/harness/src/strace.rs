//! The real worker under strace, which makes its system calls fail for
//! real (`-e inject=SYSCALL:error=EIO`). Linux only, like strace.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;

use super::{wait_until, worker_bin, Conn, TestDir, Worker, DEADLINE};

impl TestDir {
    /// Starts `strace OPTIONS… worker --data-dir <data> ARGS…` and waits
    /// until the worker answers `ping`. strace makes system calls fail in
    /// the real worker (`-e inject=SYSCALL:error=EIO`); its own messages
    /// and the worker's go to the same log.
    pub fn start_under_strace(&self, options: &[&str], args: &[&str]) -> Straced {
        require_strace();
        let mut cmd = Command::new("strace");
        cmd.args(options).arg(worker_bin());
        let (mut cmd, log) = self.logged(cmd, &[]);
        cmd.arg("--data-dir").arg(&self.data).args(args);
        // Its own group, so that strace and the worker die together.
        cmd.process_group(0);
        let mut traced = Straced {
            strace: Worker::spawn(cmd, log, self.sock()),
            pid: None,
        };
        traced.wait_ready();
        traced
    }
}

/// Fails the test, saying what to install, when strace cannot run: the
/// fault tests need it to make system calls fail for real (`.ci/run`
/// installs it).
pub fn require_strace() {
    match Command::new("strace").arg("-V").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`strace -V` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run strace ({e}): the fault-injection tests need it to make \
             system calls fail in the real worker. Install it (`apt-get install \
             strace`); .ci/run does."
        ),
    }
}

/// A worker running under strace. `strace` is the child process; `pid`
/// is the worker's own (from its `ping`). Dropping it SIGKILLs both.
pub struct Straced {
    pub strace: Worker,
    pub pid: Option<u32>,
}

impl Straced {
    /// Waits until the worker answers `ping`; notes its pid.
    fn wait_ready(&mut self) {
        let pid = wait_until(DEADLINE, "the traced worker to answer ping", || {
            if let Some(status) = self.strace.try_exit() {
                panic!(
                    "strace or the worker exited ({status}) before it was ready:\n{}",
                    self.strace.stderr()
                );
            }
            let answer = Conn::try_connect(&self.strace.sock)?.try_call(&json!({"op": "ping"}))?;
            answer["pid"].as_u64()
        });
        self.pid = Some(pid as u32);
    }

    pub fn connect(&self) -> Conn {
        self.strace.connect()
    }

    /// SIGKILLs the worker (not strace) and waits for strace to end too.
    pub fn kill_worker(&mut self) {
        let pid = self.pid.expect("the worker answered ping");
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("SIGKILL the traced worker");
        self.strace.wait_exit(DEADLINE);
    }

    /// strace's and the worker's stderr.
    pub fn stderr(&self) -> String {
        self.strace.stderr()
    }
}

impl Drop for Straced {
    fn drop(&mut self) {
        if self.strace.try_exit().is_none() {
            // strace is the group leader; a killed strace would leave the
            // worker running.
            let _ = killpg(Pid::from_raw(self.strace.pid() as i32), Signal::SIGKILL);
        }
    }
}
