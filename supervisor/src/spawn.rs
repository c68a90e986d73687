//! Starting a worker: the listening socket as fd 3 (`LISTEN_FDS=1`), the
//! write end of a readiness pipe as fd 4, the read end of a parent pipe as
//! fd 5 (its EOF tells the worker the supervisor is gone), stdout and
//! stderr piped into the log.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{fcntl, FcntlArg};

/// A started worker and the supervisor's ends of its pipes. It is waited
/// for by pid (`waitpid`), so that a re-executed supervisor, which has the
/// pid but no `Child` object, can go on watching it.
pub struct Spawned {
    pub pid: u32,
    /// Read ends of the worker's stdout and stderr.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Read end of the readiness pipe: `ready <pid> <commit>\n`.
    pub ready: OwnedFd,
    /// Write end of the parent pipe; keep it open while the worker runs.
    pub parent: OwnedFd,
}

/// A CLOEXEC duplicate at fd 10 or above, so that placing fds 3-5 in the
/// child can never overwrite another source fd.
fn dup_high(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let raw = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: fcntl just returned this new fd and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

/// Starts `bin` serving `data_dir` on `listener`.
pub fn spawn_worker(
    bin: &Path,
    data_dir: &Path,
    listener: BorrowedFd<'_>,
    log_filter: &str,
) -> io::Result<Spawned> {
    // Close-on-exec from the start, so no other child inherits them; see
    // `shared::fd` for why the non-atomic variant on Apple is safe here.
    let (ready_r, ready_w) = shared::fd::pipe()?;
    let (parent_r, parent_w) = shared::fd::pipe()?;
    let sources = [
        dup_high(listener)?,
        dup_high(ready_w.as_fd())?,
        dup_high(parent_r.as_fd())?,
    ];
    let raw: [i32; 3] = [
        sources[0].as_raw_fd(),
        sources[1].as_raw_fd(),
        sources[2].as_raw_fd(),
    ];
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env("SECOND_BRAIN_READY_FD", "4")
        .env("SECOND_BRAIN_PARENT_FD", "5")
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C at the terminal reaches the
        // supervisor only, which then stops the worker in order.
        .process_group(0);
    // SAFETY: only dup2 and pthread_sigmask run between fork and exec; they
    // are async-signal-safe, and errors are returned, never panicked on.
    unsafe {
        cmd.pre_exec(move || {
            for (target, source) in [3, 4, 5].into_iter().zip(raw) {
                nix::unistd::dup2(source, target).map_err(io::Error::from)?;
            }
            // Every supervisor thread blocks SIGTERM (crate::signals); the
            // worker must not inherit that.
            crate::signals::unblock_in_child()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", bin.display())))?;
    let pid = child.id();
    let stdout = OwnedFd::from(child.stdout.take().expect("stdout is piped"));
    let stderr = OwnedFd::from(child.stderr.take().expect("stderr is piped"));
    // Dropping a std Child neither kills nor reaps it: `waitpid` does.
    drop(child);
    drop(sources);
    drop(ready_w);
    drop(parent_r);
    Ok(Spawned {
        pid,
        stdout,
        stderr,
        ready: ready_r,
        parent: parent_w,
    })
}
