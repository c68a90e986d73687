//! The environment a test or bench starts our processes in, and how a
//! bench stops them.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Variables of ours a child must not inherit from whoever runs the
/// harness, besides those of a launch (`shared::launch::LAUNCH_ENV`).
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

/// `cmd` without any of our variables ([`CHILD_ENV`] and a launch's), stdin
/// closed: what a bench runs the supervisor, its CLI and git with.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for name in CHILD_ENV.iter().chain(&shared::launch::LAUNCH_ENV) {
        cmd.env_remove(name);
    }
    cmd.stdin(Stdio::null())
}

/// `cmd` set up as a worker's launch: none of the worker's variables
/// inherited (its data dir, a supervisor's launch fds), `RUST_LOG=info`,
/// stdin and stdout closed, stderr to `stderr`.
pub fn worker_env(cmd: &mut Command, stderr: File) -> &mut Command {
    cmd.env_remove("SECOND_BRAIN_DATA_DIR");
    for name in shared::launch::LAUNCH_ENV {
        cmd.env_remove(name);
    }
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
}

/// How long [`stop_child`] lets a process stop by itself.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// SIGTERM (a supervisor stops its worker, which writes its sessions),
/// then SIGKILL if `child` is still there after `grace`; reaped either way.
pub fn stop_child(child: &mut Child, grace: Duration) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let exited = super::poll_for(Duration::from_millis(5), grace, || {
        child.try_wait().ok().flatten()
    });
    if exited.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
