//! The worker actor: one task owns the worker's state and reacts to the
//! worker ending, its readiness, signals, timers and control requests.
//! Everything else sends it messages and awaits a reply.

mod deploy;
mod events;
mod handle;
pub mod handover;
mod launcher;
mod lifecycle;
mod report;
mod watch;

use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::time::Instant;

use nix::sys::wait::WaitStatus;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info};

use crate::backoff::Backoff;
use crate::logs::Sink;
use crate::signals::Signals;
use crate::sleep::sleep_until;
use crate::{binary, spawn, RunConfig};
pub use deploy::DeployError;
use handle::Control;
pub use handle::{channel, ActorHandle, BeforeExec, Gone, Inbox, RestartDone};
use launcher::{Launched, Launcher, Processes};
pub use watch::describe_exit;

pub(crate) enum Event {
    Exited {
        generation: u64,
        status: Result<WaitStatus, nix::Error>,
    },
    Ready {
        generation: u64,
        commit: Option<String>,
        /// The store's health, when the worker sent it with the ready line.
        store: Option<shared::health::StoreHealth>,
    },
    /// The worker's store health now (pushed at ready and on each change).
    Store {
        generation: u64,
        health: shared::health::StoreHealth,
    },
}

/// What follows a graceful stop of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Restart,
    Exit,
}

pub(crate) struct Running {
    generation: u64,
    pid: u32,
    binary: PathBuf,
    started_at: String,
    ready_deadline: Option<Instant>,
    ready_at: Option<Instant>,
    commit: Option<String>,
    /// A deploy being tried: its commit, until the probation ends.
    candidate: Option<String>,
    probation_until: Option<Instant>,
    timed_out: bool,
    /// Our end of the parent pipe: dropping it tells the worker to stop.
    parent: OwnedFd,
    /// The read end of the readiness pipe (a thread reads a duplicate),
    /// held so that a re-exec can hand it over; null from a handover of
    /// an older supervisor.
    ready: Option<OwnedFd>,
    /// The store health the worker last reported, if any yet.
    store: Option<shared::health::StoreHealth>,
    /// The worker's output pipes (read on threads), for a re-exec.
    stdout_fd: RawFd,
    stderr_fd: RawFd,
}

enum Phase {
    Starting(Running),
    Ready(Running),
    Backoff {
        until: Instant,
    },
    Stopping {
        run: Running,
        kill_at: Option<Instant>,
        then: Then,
    },
    Stopped,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Starting(_) => "starting",
            Phase::Ready(_) => "ready",
            Phase::Backoff { .. } => "backoff",
            Phase::Stopping { .. } => "stopping",
            Phase::Stopped => "stopped",
        }
    }

    fn running(&self) -> Option<&Running> {
        match self {
            Phase::Starting(r) | Phase::Ready(r) | Phase::Stopping { run: r, .. } => Some(r),
            _ => None,
        }
    }

    fn running_mut(&mut self) -> Option<&mut Running> {
        match self {
            Phase::Starting(r) | Phase::Ready(r) | Phase::Stopping { run: r, .. } => Some(r),
            _ => None,
        }
    }
}

/// The fds a re-exec hands over besides the worker's.
#[derive(Debug, Clone, Copy)]
pub struct HeldFds {
    pub control: RawFd,
    pub lock: RawFd,
}

pub struct Actor {
    cfg: Arc<RunConfig>,
    listener: OwnedFd,
    held: HeldFds,
    /// Starts and signals workers (real processes but in unit tests).
    launcher: Box<dyn Launcher>,
    phase: Phase,
    generation: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    backoff: Backoff,
    spawned: u64,
    last_exit: Option<String>,
    waiters: Vec<oneshot::Sender<Result<RestartDone, String>>>,
    /// A deploy waiting for the current worker to stop.
    pending: Option<(String, PathBuf)>,
    deploy_reply: Option<oneshot::Sender<Result<(), DeployError>>>,
    /// A rolled-back deploy, answered when the previous worker is back.
    rollback: Option<(oneshot::Sender<Result<(), DeployError>>, DeployError)>,
    /// The binary of the last worker that served well; used for restarts.
    good_bin: Option<PathBuf>,
    next_checkpoint: Option<Instant>,
    /// The store state last logged, so that each change is logged once.
    store_logged: Option<shared::health::StoreState>,
    worker_log: Sink,
    started_at: String,
    started: Instant,
    /// The stop and restart signals (set by `run`; a re-exec pauses them).
    signals: Option<Signals>,
    /// Whether a self-update could hand over now (see [`Actor::settled`]).
    settled: tokio::sync::watch::Sender<bool>,
}

impl Actor {
    pub fn new(cfg: Arc<RunConfig>, listener: OwnedFd, held: HeldFds, worker_log: Sink) -> Actor {
        let launcher = Box::new(Processes {
            data_dir: cfg.data_dir.root().to_path_buf(),
            log_filter: cfg.log_filter.clone(),
            worker_log: worker_log.clone(),
        });
        Actor::with_launcher(cfg, listener, held, worker_log, launcher)
    }

    /// An actor whose workers `launcher` starts.
    pub(crate) fn with_launcher(
        cfg: Arc<RunConfig>,
        listener: OwnedFd,
        held: HeldFds,
        worker_log: Sink,
        launcher: Box<dyn Launcher>,
    ) -> Actor {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max, cfg.stable_after);
        Actor {
            cfg,
            listener,
            held,
            launcher,
            phase: Phase::Stopped,
            generation: 0,
            events_tx,
            events_rx,
            backoff,
            spawned: 0,
            last_exit: None,
            waiters: Vec::new(),
            pending: None,
            deploy_reply: None,
            rollback: None,
            good_bin: None,
            next_checkpoint: None,
            store_logged: None,
            worker_log,
            started_at: shared::time::now_rfc3339(),
            started: Instant::now(),
            signals: None,
            settled: tokio::sync::watch::channel(false).0,
        }
    }

    /// Becomes `true` whenever the worker is ready and no swap is in
    /// progress: when a self-update that had to wait can try again.
    pub fn watch_settled(&self) -> tokio::sync::watch::Receiver<bool> {
        self.settled.subscribe()
    }

    fn settled(&self) -> bool {
        matches!(&self.phase, Phase::Ready(run) if run.candidate.is_none())
            && self.pending.is_none()
    }

    /// Runs until a stop signal has stopped the worker. `signals` are the
    /// stop and restart signals (see `crate::signals`; none in unit tests).
    pub async fn run(
        mut self,
        Inbox(mut control): Inbox,
        signals: Option<Signals>,
    ) -> std::io::Result<()> {
        self.signals = signals;
        if matches!(self.phase, Phase::Stopped) {
            self.start_worker();
        }
        while !matches!(self.phase, Phase::Stopped) {
            let settled = self.settled();
            self.settled
                .send_if_modified(|s| std::mem::replace(s, settled) != settled);
            let deadline = self.next_deadline();
            let signal = async {
                match self.signals.as_mut() {
                    Some(signals) => signals.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(event) = self.events_rx.recv() => self.on_event(event),
                Some(request) = control.recv() => self.on_control(request),
                Some(signal) = signal => self.on_signal(signal),
                _ = sleep_until(deadline), if deadline.is_some() => self.on_deadline(),
            }
        }
        self.fail_waiters("the supervisor stopped");
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Starting(r) => r.ready_deadline,
            Phase::Ready(r) => match (r.probation_until, self.next_checkpoint) {
                (Some(p), Some(c)) => Some(p.min(c)),
                (p, c) => p.or(c),
            },
            Phase::Backoff { until } => Some(*until),
            Phase::Stopping { kill_at, .. } => *kill_at,
            Phase::Stopped => None,
        }
    }

    /// Starts a worker: the pending deploy's binary, else the last good
    /// one, else whatever `binary::resolve` finds now.
    fn start_worker(&mut self) {
        if self.spawned > 0 {
            info!("starting a new worker");
        }
        self.spawned += 1;
        self.generation += 1;
        let generation = self.generation;
        let (candidate, bin) = match self.pending.take() {
            Some((commit, bin)) => (Some(commit), Some(bin)),
            None => (
                None,
                self.good_bin.clone().or_else(|| {
                    binary::resolve(self.cfg.worker_bin.as_deref(), &self.cfg.data_dir)
                }),
            ),
        };
        let Some(bin) = bin else {
            self.failed_to_start("no worker binary found".into());
            return;
        };
        let launched =
            self.launcher
                .start(&bin, self.listener.as_fd(), generation, &self.events_tx);
        let Launched {
            pid,
            parent,
            ready,
            stdout_fd,
            stderr_fd,
        } = match launched {
            Ok(l) => l,
            Err(e) => {
                if candidate.is_some() {
                    // Out of fds, memory or disk: the machine's state, not
                    // the commit's fault.
                    let why = format!("cannot start it: {e}");
                    self.deploy_failed(if spawn::is_exhaustion(&e) {
                        DeployError::Interrupted(why)
                    } else {
                        DeployError::Failed(why)
                    });
                    return self.start_worker();
                }
                self.failed_to_start(e.to_string());
                return;
            }
        };
        match &candidate {
            Some(commit) => {
                info!(pid, binary = %bin.display(), commit = %commit, "worker started to try a new commit")
            }
            None => info!(pid, binary = %bin.display(), "worker started"),
        }
        self.phase = Phase::Starting(Running {
            generation,
            pid,
            binary: bin,
            started_at: shared::time::now_rfc3339(),
            ready_deadline: Some(Instant::now() + self.cfg.ready_timeout),
            ready_at: None,
            commit: None,
            candidate,
            probation_until: None,
            timed_out: false,
            parent,
            ready,
            store: None,
            stdout_fd,
            stderr_fd,
        });
    }

    fn failed_to_start(&mut self, why: String) {
        error!(error = %why, "cannot start the worker");
        self.last_exit = Some(format!("could not start: {why}"));
        let delay = self.backoff.next_delay(None).max(self.cfg.backoff_base);
        self.fail_waiters(&format!("the new worker could not start: {why}"));
        self.finish_rollback();
        self.phase = Phase::Backoff {
            until: Instant::now() + delay,
        };
    }

    fn fail_waiters(&mut self, why: &str) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(why.to_string()));
        }
    }

    fn on_control(&mut self, request: Control) {
        match request {
            Control::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Control::Restart(reply) => self.restart(Some(reply)),
            Control::Deploy {
                commit,
                binary,
                reply,
            } => self.deploy(commit, binary, reply),
            Control::ReExec {
                binary,
                view,
                before_exec,
                reply,
            } => {
                let result = self.re_exec(&binary, *view, before_exec);
                let _ = reply.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests;
