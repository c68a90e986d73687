//! How the actor starts and signals workers: real processes in the
//! service ([`Processes`]), a fake in the actor's unit tests. Everything
//! the actor learns about a worker it started comes back as an [`Event`]
//! on the channel it passes in: its readiness and store health, and its
//! exit.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::{watch, Event};
use crate::logs::{self, Sink};
use crate::spawn;

/// A worker that was started, and what the actor keeps of it.
pub(crate) struct Launched {
    pub pid: u32,
    /// Our end of the parent pipe: dropping it tells the worker to stop.
    pub parent: OwnedFd,
    /// The ready pipe, kept so that a re-exec can hand it over.
    pub ready: Option<OwnedFd>,
    /// The worker's output pipes (read on threads), for a re-exec.
    pub stdout_fd: RawFd,
    pub stderr_fd: RawFd,
}

/// Starts and signals workers for the actor.
pub(crate) trait Launcher: Send {
    /// Starts `bin` serving on `listener`. Its readiness, store health and
    /// exit arrive later on `events`, tagged with `generation`.
    fn start(
        &mut self,
        bin: &Path,
        listener: BorrowedFd<'_>,
        generation: u64,
        events: &mpsc::UnboundedSender<Event>,
    ) -> io::Result<Launched>;

    /// Sends `signal` to the worker `pid` (one this launcher started, or
    /// one handed over by a self-update).
    fn signal(&mut self, pid: u32, signal: Signal);
}

/// Real worker processes (`spawn.rs`), watched by threads (`watch.rs`),
/// their output pumped into the log.
pub(crate) struct Processes {
    pub data_dir: std::path::PathBuf,
    pub log_filter: String,
    pub worker_log: Sink,
}

impl Launcher for Processes {
    fn start(
        &mut self,
        bin: &Path,
        listener: BorrowedFd<'_>,
        generation: u64,
        events: &mpsc::UnboundedSender<Event>,
    ) -> io::Result<Launched> {
        let spawn::Spawned {
            pid,
            stdout,
            stderr,
            ready,
            parent,
        } = spawn::spawn_worker(bin, &self.data_dir, listener, &self.log_filter)?;
        let (stdout_fd, stderr_fd) = (stdout.as_raw_fd(), stderr.as_raw_fd());
        logs::pump(stdout, self.worker_log.clone());
        logs::pump(stderr, self.worker_log.clone());
        watch::watch_exit(pid, generation, events.clone());
        let ready = watch::watch_reports(ready, generation, events.clone());
        Ok(Launched {
            pid,
            parent,
            ready,
            stdout_fd,
            stderr_fd,
        })
    }

    fn signal(&mut self, pid: u32, signal: Signal) {
        let _ = kill(Pid::from_raw(pid as i32), signal);
    }
}
