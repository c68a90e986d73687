//! Replacing the supervisor process in place (self-update): same pid, so
//! launchd sees no exit; the listening socket, the control socket, the
//! lock, the worker's pipes and the actor's state are handed to the new
//! program image through `execve`. The worker keeps running throughout.
//!
//! No stop or restart signal is lost across the exec: see `crate::signals`
//! (every thread blocks them all the time; the one thread that takes them
//! is paused before the exec, and what it already took is handled here
//! instead of exec'ing).

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{Actor, Phase, Running};

/// The environment variable carrying the [`Handover`] as JSON.
pub const HANDOVER_ENV: &str = "SECOND_BRAIN_HANDOVER";

/// What the old image tells the new one.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    pub listener_fd: RawFd,
    pub control_fd: RawFd,
    pub lock_fd: RawFd,
    pub started_at: String,
    pub started_unix_ms: u64,
    pub spawned: u64,
    pub generation: u64,
    pub last_exit: Option<String>,
    pub good_bin: Option<PathBuf>,
    pub worker: HandedWorker,
    /// The updater's last poll, errors and deployed commit.
    pub update: Option<crate::status::UpdateView>,
}

/// The worker, which keeps running across the exec.
#[derive(Debug, Serialize, Deserialize)]
pub struct HandedWorker {
    pub pid: u32,
    pub binary: PathBuf,
    pub started_at: String,
    pub commit: Option<String>,
    pub parent_fd: RawFd,
    pub stdout_fd: RawFd,
    pub stderr_fd: RawFd,
    /// The readiness pipe, which carries the store's health reports.
    #[serde(default)]
    pub ready_fd: Option<RawFd>,
    /// The store health last reported.
    #[serde(default)]
    pub store: Option<shared::health::StoreHealth>,
}

/// The handed-over fds, owned (and close-on-exec again).
pub struct HandedFds {
    pub lock: OwnedFd,
    pub control: OwnedFd,
    pub worker: WorkerFds,
}

/// What the actor takes over: the listening socket and the running
/// worker's pipes.
pub struct WorkerFds {
    pub listener: OwnedFd,
    pub parent: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The readiness pipe (a supervisor too old to hand it has none).
    pub ready: Option<OwnedFd>,
}

impl Handover {
    /// Takes ownership of every fd the previous image handed over: the
    /// one place where a re-executed supervisor turns fd numbers into
    /// owned fds. Call once, before any thread exists.
    pub fn take_fds(&self) -> HandedFds {
        let take = |fd: RawFd| {
            let _ = set_cloexec(fd, true);
            // SAFETY: the previous image handed this fd to us, the
            // handover names each fd once, and this runs once, so
            // nothing else in this process owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        let w = &self.worker;
        HandedFds {
            lock: take(self.lock_fd),
            control: take(self.control_fd),
            worker: WorkerFds {
                listener: take(self.listener_fd),
                parent: take(w.parent_fd),
                stdout: take(w.stdout_fd),
                stderr: take(w.stderr_fd),
                ready: w.ready_fd.map(take),
            },
        }
    }

    fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![
            self.listener_fd,
            self.control_fd,
            self.lock_fd,
            self.worker.parent_fd,
            self.worker.stdout_fd,
            self.worker.stderr_fd,
        ];
        fds.extend(self.worker.ready_fd);
        fds
    }
}

/// Sets or clears FD_CLOEXEC.
pub fn set_cloexec(fd: RawFd, on: bool) -> nix::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags)).map(|_| ())
}

/// Why a re-exec did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReExecError {
    /// Not possible right now (the worker is not ready, a signal came):
    /// try again once the worker is ready.
    #[error("{0}")]
    NotNow(String),
    /// The exec itself failed: this binary will not do.
    #[error("{0}")]
    Failed(String),
}

/// Takes the handover from the environment, if this process is a re-exec.
/// Call before any thread starts: it edits the environment.
pub fn from_env() -> Option<Result<Handover, String>> {
    let raw = std::env::var_os(HANDOVER_ENV)?;
    std::env::remove_var(HANDOVER_ENV);
    Some(
        serde_json::from_slice(raw.as_bytes())
            .map_err(|e| format!("{HANDOVER_ENV} is not a valid handover: {e}")),
    )
}

fn cstring(bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| "an argument contains a NUL byte".to_string())
}

impl Actor {
    /// Replaces this process with `binary` (same pid, same arguments),
    /// handing everything over. Returns only if that was not possible.
    pub(super) fn re_exec(
        &mut self,
        binary: &Path,
        view: crate::status::UpdateView,
        before_exec: super::BeforeExec,
    ) -> Result<(), ReExecError> {
        let Phase::Ready(run) = &self.phase else {
            return Err(ReExecError::NotNow(format!(
                "the worker is {}, not ready",
                self.phase.name()
            )));
        };
        if run.candidate.is_some() || self.pending.is_some() {
            return Err(ReExecError::NotNow("a swap is in progress".into()));
        }
        let state = Handover {
            listener_fd: std::os::fd::AsRawFd::as_raw_fd(&self.listener),
            control_fd: self.held.control,
            lock_fd: self.held.lock,
            started_at: self.started_at.clone(),
            started_unix_ms: SystemTime::now()
                .checked_sub(self.started.elapsed())
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            spawned: self.spawned,
            generation: self.generation,
            last_exit: self.last_exit.clone(),
            good_bin: self.good_bin.clone(),
            worker: HandedWorker {
                pid: run.pid,
                binary: run.binary.clone(),
                started_at: run.started_at.clone(),
                commit: run.commit.clone(),
                parent_fd: std::os::fd::AsRawFd::as_raw_fd(&run.parent),
                stdout_fd: run.stdout_fd,
                stderr_fd: run.stderr_fd,
                ready_fd: run.ready.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
                store: run.store.clone(),
            },
            update: Some(view),
        };
        let failed = ReExecError::Failed;
        let json = serde_json::to_string(&state).map_err(|e| failed(e.to_string()))?;
        let path = cstring(binary.as_os_str().as_bytes()).map_err(failed)?;
        let mut args = vec![path.clone()];
        for a in std::env::args_os().skip(1) {
            args.push(cstring(a.as_bytes()).map_err(failed)?);
        }
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            if k.as_bytes() != HANDOVER_ENV.as_bytes() {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                env.push(cstring(&kv).map_err(failed)?);
            }
        }
        env.push(cstring(format!("{HANDOVER_ENV}={json}").as_bytes()).map_err(failed)?);

        // From here until the exec no thread takes a signal: one that
        // comes stays pending and the new image takes it.
        let signals = self.signals.as_mut().expect("the actor is running");
        let taken = signals.pause().map_err(ReExecError::NotNow)?;
        if !taken.is_empty() {
            signals.resume();
            let names: Vec<&str> = taken.iter().map(|s| s.as_str()).collect();
            warn!(signals = ?names, "a signal came just before the supervisor replaced itself; handling it first");
            for signal in taken {
                self.on_signal(signal);
            }
            return Err(ReExecError::NotNow(format!(
                "{} came first",
                names.join(" and ")
            )));
        }
        info!(binary = %binary.display(), worker = run.pid, "replacing the supervisor in place");
        before_exec();
        let mut handed = Ok(());
        for fd in state.fds() {
            if let Err(e) = set_cloexec(fd, false) {
                handed = Err(format!("cannot hand over fd {fd}: {e}"));
                break;
            }
        }
        let err = match handed {
            Ok(()) => nix::unistd::execve(&path, &args, &env)
                .expect_err("execve returns only on failure")
                .to_string(),
            Err(e) => e,
        };
        // Still here: undo and go on as before.
        for fd in state.fds() {
            let _ = set_cloexec(fd, true);
        }
        if let Some(signals) = self.signals.as_mut() {
            signals.resume();
        }
        error!(error = %err, binary = %binary.display(), "cannot re-execute the supervisor");
        Err(ReExecError::Failed(format!(
            "exec of {} failed: {err}",
            binary.display()
        )))
    }

    /// Rebuilds the actor in a re-executed supervisor around the worker
    /// that kept running. Takes ownership of the handed fds.
    pub fn resume(
        cfg: std::sync::Arc<crate::RunConfig>,
        state: Handover,
        fds: WorkerFds,
        worker_log: crate::logs::Sink,
    ) -> Actor {
        let WorkerFds {
            listener,
            parent,
            stdout,
            stderr,
            ready,
        } = fds;
        let held = super::HeldFds {
            control: state.control_fd,
            lock: state.lock_fd,
        };
        let mut actor = Actor::new(cfg, listener, held, worker_log);
        let uptime = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|now| now.saturating_sub(Duration::from_millis(state.started_unix_ms)))
            .unwrap_or_default();
        actor.started = Instant::now()
            .checked_sub(uptime)
            .unwrap_or_else(Instant::now);
        actor.started_at = state.started_at;
        actor.spawned = state.spawned;
        actor.generation = state.generation;
        actor.last_exit = state.last_exit;
        actor.good_bin = state.good_bin;
        let w = state.worker;
        let (stdout_fd, stderr_fd) = (w.stdout_fd, w.stderr_fd);
        crate::logs::pump(stdout, actor.worker_log.clone());
        crate::logs::pump(stderr, actor.worker_log.clone());
        super::watch::watch_exit(w.pid, actor.generation, actor.events_tx.clone());
        let ready = ready.and_then(|fd| {
            super::watch::watch_reports(fd, actor.generation, actor.events_tx.clone())
        });
        actor.store_logged = w.store.as_ref().map(|s| s.state);
        let now = Instant::now();
        actor.next_checkpoint = Some(now + actor.cfg.checkpoint_interval);
        info!(
            worker = w.pid,
            "supervisor re-executed; the worker kept serving"
        );
        actor.phase = Phase::Ready(Running {
            generation: actor.generation,
            pid: w.pid,
            binary: w.binary,
            started_at: w.started_at,
            ready_deadline: None,
            ready_at: Some(now),
            commit: w.commit,
            candidate: None,
            probation_until: None,
            timed_out: false,
            parent,
            ready,
            store: w.store,
            stdout_fd,
            stderr_fd,
        });
        actor
    }
}
