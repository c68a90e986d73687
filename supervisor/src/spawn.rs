//! Starting a worker as `shared::launch` lays out: the listening socket,
//! the write end of the ready pipe and the read end of the parent pipe at
//! their fd numbers, stdout and stderr piped into the log.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::fcntl::{fcntl, FcntlArg};
use shared::launch::{
    LISTEN_FD, LISTEN_FDNAMES_ENV, LISTEN_FDS_ENV, LISTEN_PID_ENV, PARENT_FD, PARENT_FD_ENV,
    READY_FD, READY_FD_ENV,
};

/// A started worker and the supervisor's ends of its pipes. It is waited
/// for by pid (`waitpid`), so that a re-executed supervisor, which has the
/// pid but no `Child` object, can go on watching it.
pub struct Spawned {
    pub pid: u32,
    /// Read ends of the worker's stdout and stderr.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Read end of the ready pipe (`shared::launch::Report` lines).
    pub ready: OwnedFd,
    /// Write end of the parent pipe; keep it open while the worker runs.
    pub parent: OwnedFd,
}

/// Tries of [`retry_busy`].
const BUSY_TRIES: u32 = 10;

/// Calls `spawn` again while it fails with ETXTBSY ("text file busy").
/// An executable is busy while any process holds it open for writing,
/// and a fork made by another thread while the file was being written
/// (a release installed, a script created) holds a copy of the writing
/// descriptor until its child execs, a moment later: the descriptor is
/// close-on-exec. Waits 1, 2, 4, ... ms (at most 50) between tries, about
/// 0.2 s in all, then returns the last error.
pub fn retry_busy<T>(mut spawn: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 1..BUSY_TRIES {
        match spawn() {
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
    spawn()
}

/// A worker binary that could not be started. The message names it; the
/// spawn's own error stays reachable, so that [`is_exhaustion`] sees its
/// errno (EMFILE, ENOMEM, EAGAIN ...) through the wrapping.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {}: {source}", bin.display())]
pub struct CannotStart {
    pub bin: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

/// Whether an io error is the machine running out of something (disk,
/// file descriptors, memory, processes) rather than a defect of what was
/// being started: worth trying again later.
/// Looks through a [`CannotStart`] to the error of the spawn itself.
pub fn is_exhaustion(e: &io::Error) -> bool {
    let errno = e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<CannotStart>())
            .and_then(|c| c.source.raw_os_error())
    });
    matches!(
        errno,
        Some(
            nix::libc::ENOSPC
                | nix::libc::EMFILE
                | nix::libc::ENFILE
                | nix::libc::ENOMEM
                | nix::libc::EAGAIN
                | nix::libc::EDQUOT
        )
    )
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
        .env(LISTEN_FDS_ENV, "1")
        .env_remove(LISTEN_PID_ENV)
        .env_remove(LISTEN_FDNAMES_ENV)
        .env(READY_FD_ENV, READY_FD.to_string())
        .env(PARENT_FD_ENV, PARENT_FD.to_string())
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
            for (target, source) in [LISTEN_FD, READY_FD, PARENT_FD].into_iter().zip(raw) {
                nix::unistd::dup2(source, target).map_err(io::Error::from)?;
            }
            // Every supervisor thread blocks SIGTERM (crate::signals); the
            // worker must not inherit that.
            crate::signals::unblock_in_child()
        });
    }
    let mut child = retry_busy(|| cmd.spawn()).map_err(|source| {
        let kind = source.kind();
        io::Error::new(
            kind,
            CannotStart {
                bin: bin.to_path_buf(),
                source,
            },
        )
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_names_the_binary_and_keeps_its_errno_for_is_exhaustion() {
        let wrap = |errno| {
            let source = io::Error::from_raw_os_error(errno);
            io::Error::new(
                source.kind(),
                CannotStart {
                    bin: "/x/worker".into(),
                    source,
                },
            )
        };
        let out_of_fds = wrap(nix::libc::EMFILE);
        assert!(out_of_fds
            .to_string()
            .starts_with("cannot start /x/worker: "));
        assert!(is_exhaustion(&out_of_fds), "EMFILE behind the wrapping");
        assert!(!is_exhaustion(&wrap(nix::libc::ENOENT)));
        // The real spawn of a missing binary: named, and not exhaustion.
        let (listener, _) = shared::fd::pipe().unwrap();
        let missing = std::path::Path::new("/nonexistent/worker");
        let e = match spawn_worker(
            missing,
            std::path::Path::new("/tmp"),
            listener.as_fd(),
            "info",
        ) {
            Ok(_) => panic!("a missing binary started"),
            Err(e) => e,
        };
        assert!(
            e.to_string().contains("cannot start /nonexistent/worker"),
            "{e}"
        );
        assert!(!is_exhaustion(&e));
    }

    #[test]
    fn a_busy_executable_is_tried_again_and_other_errors_are_not() {
        let busy = || io::Error::from_raw_os_error(nix::libc::ETXTBSY);
        let mut calls = 0;
        let got = retry_busy(|| {
            calls += 1;
            if calls < 3 {
                Err(busy())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.unwrap(), 3, "busy twice, then started");
        let mut calls = 0;
        let got: io::Result<()> = retry_busy(|| {
            calls += 1;
            Err(busy())
        });
        assert_eq!(got.unwrap_err().raw_os_error(), Some(nix::libc::ETXTBSY));
        assert_eq!(calls, BUSY_TRIES, "gives up after its tries");
        let mut calls = 0;
        let got: io::Result<()> = retry_busy(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(nix::libc::ENOENT))
        });
        assert!(got.is_err());
        assert_eq!(calls, 1, "any other error is final");
    }
}
