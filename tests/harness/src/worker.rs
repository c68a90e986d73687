//! A worker process a test or bench starts, and its guard.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{assert_socket_fits, wait_until, Conn, DEADLINE};

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

    /// SIGTERM (the worker writes its final snapshot), then waits at most
    /// `deadline` for it to exit; panics unless it exits 0.
    pub fn stop(&mut self, deadline: Duration) {
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(deadline);
        assert!(status.success(), "the worker stopped with {status}");
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
