//! The worker actor: one task owns the worker's state and reacts to the
//! child exiting, its readiness, signals, timers and control requests.
//! Everything else sends it messages and awaits a reply.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::backoff::Backoff;
use crate::logs::{self, Sink};
use crate::status::{PathsStatus, Status, SupervisorStatus, UpdateStatus, WorkerStatus};
use crate::{binary, spawn, RunConfig};

/// What a control client asks the actor.
pub enum Control {
    /// The current state (sessions filled in by the caller).
    Status(oneshot::Sender<Status>),
    /// Replace the worker; answered once the new one is ready.
    Restart(oneshot::Sender<Result<RestartDone, String>>),
}

/// The worker that a restart brought up.
#[derive(Debug, Clone)]
pub struct RestartDone {
    pub pid: u32,
    pub commit: Option<String>,
}

enum Event {
    Exited {
        generation: u64,
        status: Result<WaitStatus, nix::Error>,
    },
    Ready {
        generation: u64,
        commit: Option<String>,
    },
}

/// What follows a graceful stop of the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Restart,
    Exit,
}

struct Running {
    generation: u64,
    pid: u32,
    binary: PathBuf,
    started_at: String,
    ready_deadline: Option<Instant>,
    ready_at: Option<Instant>,
    commit: Option<String>,
    /// Our end of the parent pipe: dropping it tells the worker to stop.
    _parent: OwnedFd,
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
}

pub struct Actor {
    cfg: Arc<RunConfig>,
    listener: OwnedFd,
    phase: Phase,
    generation: u64,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    backoff: Backoff,
    spawned: u64,
    last_exit: Option<String>,
    waiters: Vec<oneshot::Sender<Result<RestartDone, String>>>,
    next_checkpoint: Option<Instant>,
    worker_log: Sink,
    started_at: String,
    started: Instant,
}

fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => format!("signal {sig} ({})", s.as_str()),
        Err(_) => format!("signal {sig}"),
    }
}

/// `exit code 3`, `signal 9 (SIGKILL)`.
pub fn describe_exit(status: &Result<WaitStatus, nix::Error>) -> String {
    match status {
        Ok(WaitStatus::Exited(_, code)) => format!("exit code {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => signal_name(*sig as i32),
        Ok(other) => format!("unknown ({other:?})"),
        Err(e) => format!("unknown (wait failed: {e})"),
    }
}

/// Waits for the worker `pid` on a thread and reports its end. Works for
/// any child of this process, including one started before a re-exec.
fn watch_exit(pid: u32, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("worker-wait".into())
        .spawn(move || {
            let status = loop {
                match waitpid(Pid::from_raw(pid as i32), None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break Ok(s),
                    // Stopped or continued: it has not ended.
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            let _ = events.send(Event::Exited { generation, status });
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start a thread to wait for the worker");
    }
}

impl Actor {
    pub fn new(cfg: Arc<RunConfig>, listener: OwnedFd, worker_log: Sink) -> Actor {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max, cfg.stable_after);
        Actor {
            cfg,
            listener,
            phase: Phase::Stopped,
            generation: 0,
            events_tx,
            events_rx,
            backoff,
            spawned: 0,
            last_exit: None,
            waiters: Vec::new(),
            next_checkpoint: None,
            worker_log,
            started_at: shared::time::now_rfc3339(),
            started: Instant::now(),
        }
    }

    /// Runs until a stop signal has stopped the worker.
    pub async fn run(mut self, mut control: mpsc::Receiver<Control>) -> std::io::Result<()> {
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sighup = signal(SignalKind::hangup())?;
        self.start_worker();
        while !matches!(self.phase, Phase::Stopped) {
            let deadline = self.next_deadline();
            tokio::select! {
                Some(event) = self.events_rx.recv() => self.on_event(event),
                Some(request) = control.recv() => self.on_control(request),
                _ = sigterm.recv() => self.stop("SIGTERM"),
                _ = sigint.recv() => self.stop("SIGINT"),
                _ = sighup.recv() => self.restart(None),
                _ = sleep_until(deadline), if deadline.is_some() => self.on_deadline(),
            }
        }
        for w in self.waiters.drain(..) {
            let _ = w.send(Err("the supervisor stopped".into()));
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Starting(r) => r.ready_deadline,
            Phase::Ready(_) => self.next_checkpoint,
            Phase::Backoff { until } => Some(*until),
            Phase::Stopping { kill_at, .. } => *kill_at,
            Phase::Stopped => None,
        }
    }

    fn start_worker(&mut self) {
        if self.spawned > 0 {
            info!("starting a new worker");
        }
        self.spawned += 1;
        self.generation += 1;
        let generation = self.generation;
        let bin = match binary::resolve(self.cfg.worker_bin.as_deref(), &self.cfg.data_dir) {
            Some(b) => b,
            None => {
                self.failed_to_start("no worker binary found".into());
                return;
            }
        };
        let spawned = match spawn::spawn_worker(
            &bin,
            self.cfg.data_dir.root(),
            self.listener.as_fd(),
            &self.cfg.log_filter,
        ) {
            Ok(s) => s,
            Err(e) => {
                self.failed_to_start(e.to_string());
                return;
            }
        };
        let spawn::Spawned {
            pid,
            stdout,
            stderr,
            ready,
            parent,
        } = spawned;
        info!(pid, binary = %bin.display(), "worker started");
        logs::pump(stdout, self.worker_log.clone());
        logs::pump(stderr, self.worker_log.clone());
        watch_exit(pid, generation, self.events_tx.clone());
        watch_ready(ready, generation, self.events_tx.clone());
        self.phase = Phase::Starting(Running {
            generation,
            pid,
            binary: bin,
            started_at: shared::time::now_rfc3339(),
            ready_deadline: Some(Instant::now() + self.cfg.ready_timeout),
            ready_at: None,
            commit: None,
            _parent: parent,
        });
    }

    fn failed_to_start(&mut self, why: String) {
        error!(error = %why, "cannot start the worker");
        self.last_exit = Some(format!("could not start: {why}"));
        let delay = self.backoff.next_delay(None).max(self.cfg.backoff_base);
        self.fail_waiters(&format!("the new worker could not start: {why}"));
        self.phase = Phase::Backoff {
            until: Instant::now() + delay,
        };
    }

    fn fail_waiters(&mut self, why: &str) {
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(why.to_string()));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Ready { generation, commit } => {
                let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
                self.phase = match phase {
                    Phase::Starting(mut run) if run.generation == generation => {
                        run.ready_at = Some(Instant::now());
                        run.ready_deadline = None;
                        run.commit = commit;
                        info!(
                            pid = run.pid,
                            commit = run.commit.as_deref().unwrap_or("unknown"),
                            "worker ready"
                        );
                        let done = RestartDone {
                            pid: run.pid,
                            commit: run.commit.clone(),
                        };
                        for w in self.waiters.drain(..) {
                            let _ = w.send(Ok(done.clone()));
                        }
                        self.next_checkpoint = Some(Instant::now() + self.cfg.checkpoint_interval);
                        Phase::Ready(run)
                    }
                    other => other,
                };
            }
            Event::Exited { generation, status } => {
                if self.phase.running().map(|r| r.generation) != Some(generation) {
                    return;
                }
                let how = describe_exit(&status);
                let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
                self.last_exit = Some(how.clone());
                match phase {
                    Phase::Stopping { run, then, .. } => {
                        info!(pid = run.pid, how = %how, "worker stopped");
                        match then {
                            Then::Restart => self.start_worker(),
                            Then::Exit => self.phase = Phase::Stopped,
                        }
                    }
                    Phase::Starting(run) | Phase::Ready(run) => {
                        let ready_for = run.ready_at.map(|t| t.elapsed());
                        let delay = self.backoff.next_delay(ready_for);
                        warn!(
                            pid = run.pid,
                            how = %how,
                            was_ready = ready_for.is_some(),
                            restart_in_ms = delay.as_millis() as u64,
                            "worker died"
                        );
                        if ready_for.is_none() {
                            self.fail_waiters(&format!(
                                "the new worker ended before it was ready: {how}"
                            ));
                        }
                        if delay.is_zero() {
                            self.start_worker();
                        } else {
                            self.phase = Phase::Backoff {
                                until: Instant::now() + delay,
                            };
                        }
                    }
                    other => self.phase = other,
                }
            }
        }
    }

    fn on_deadline(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Starting(run) => {
                warn!(
                    pid = run.pid,
                    timeout_ms = self.cfg.ready_timeout.as_millis() as u64,
                    "worker not ready in time; killing it"
                );
                run.ready_deadline = None;
                let _ = kill(Pid::from_raw(run.pid as i32), Signal::SIGKILL);
            }
            Phase::Ready(run) => {
                let _ = kill(Pid::from_raw(run.pid as i32), Signal::SIGUSR1);
                self.next_checkpoint = Some(now + self.cfg.checkpoint_interval);
            }
            Phase::Backoff { .. } => self.start_worker(),
            Phase::Stopping { run, kill_at, .. } => {
                warn!(pid = run.pid, "worker did not stop in time; killing it");
                *kill_at = None;
                let _ = kill(Pid::from_raw(run.pid as i32), Signal::SIGKILL);
            }
            Phase::Stopped => {}
        }
    }

    /// Asks the worker to stop gracefully; `then` says what follows.
    fn begin_stop(&mut self, run: Running, then: Then) {
        info!(pid = run.pid, "asking the worker to stop");
        let _ = kill(Pid::from_raw(run.pid as i32), Signal::SIGTERM);
        self.phase = Phase::Stopping {
            run,
            kill_at: Some(Instant::now() + self.cfg.stop_timeout),
            then,
        };
    }

    fn stop(&mut self, why: &str) {
        info!(signal = why, "stopping the service");
        self.fail_waiters("the supervisor is stopping");
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        match phase {
            Phase::Starting(run) | Phase::Ready(run) => self.begin_stop(run, Then::Exit),
            Phase::Stopping { run, kill_at, .. } => {
                self.phase = Phase::Stopping {
                    run,
                    kill_at,
                    then: Then::Exit,
                }
            }
            Phase::Backoff { .. } | Phase::Stopped => self.phase = Phase::Stopped,
        }
    }

    fn restart(&mut self, waiter: Option<oneshot::Sender<Result<RestartDone, String>>>) {
        if let Some(w) = waiter {
            if matches!(
                self.phase,
                Phase::Stopped
                    | Phase::Stopping {
                        then: Then::Exit,
                        ..
                    }
            ) {
                let _ = w.send(Err("the supervisor is stopping".into()));
                return;
            }
            self.waiters.push(w);
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        match phase {
            Phase::Ready(run) => {
                info!("graceful worker restart");
                self.begin_stop(run, Then::Restart);
            }
            Phase::Backoff { .. } => {
                info!("restart requested during backoff: starting now");
                self.start_worker();
            }
            // Starting: the worker coming up is already a fresh one.
            other => self.phase = other,
        }
    }

    fn on_control(&mut self, request: Control) {
        match request {
            Control::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Control::Restart(reply) => self.restart(Some(reply)),
        }
    }

    fn status(&self) -> Status {
        let cfg = &self.cfg;
        let run = self.phase.running();
        let next_start_in_ms = match &self.phase {
            Phase::Backoff { until } => {
                Some(until.saturating_duration_since(Instant::now()).as_millis() as u64)
            }
            _ => None,
        };
        Status {
            supervisor: SupervisorStatus {
                pid: std::process::id(),
                version: shared::version::VERSION.into(),
                commit: shared::version::commit_or_null().map(String::from),
                started_at: self.started_at.clone(),
                uptime_secs: self.started.elapsed().as_secs(),
            },
            worker: WorkerStatus {
                state: self.phase.name().into(),
                pid: run.map(|r| r.pid),
                commit: run.and_then(|r| r.commit.clone()),
                started_at: run.map(|r| r.started_at.clone()),
                restarts: self.spawned.saturating_sub(1),
                last_exit: self.last_exit.clone(),
                binary: run.map(|r| r.binary.display().to_string()),
                next_start_in_ms,
            },
            sessions: None,
            update: UpdateStatus {
                repo: cfg.repo.as_ref().map(|p| p.display().to_string()),
                branch: cfg.branch.clone(),
                poll_interval_ms: cfg.poll_interval_ms,
                last_poll_at: None,
                last_poll: None,
                deployed_commit: binary::deployed_release(&cfg.data_dir).map(|(c, _)| c),
                state: "idle".into(),
                last_error: None,
                held_commits: Vec::new(),
            },
            paths: PathsStatus {
                data_dir: cfg.data_dir.root().display().to_string(),
                log_dir: cfg.log_dir.display().to_string(),
            },
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Reads `ready <pid> <commit>` from the readiness pipe on a thread and
/// reports it; nothing is reported if the pipe closes first.
fn watch_ready(fd: OwnedFd, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("worker-ready".into())
        .spawn(move || {
            use std::io::Read;
            let mut pipe = std::fs::File::from(fd);
            let mut buf = Vec::with_capacity(128);
            let mut chunk = [0u8; 128];
            while !buf.contains(&b'\n') && buf.len() < 1024 {
                match pipe.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
            }
            if let Some(commit) = parse_ready(&buf) {
                let _ = events.send(Event::Ready { generation, commit });
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start a thread to wait for the worker's readiness");
    }
}

/// `ready <pid> <commit>`: `Some(commit)` (None if unknown) when well formed.
fn parse_ready(line: &[u8]) -> Option<Option<String>> {
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    if words.next() != Some("ready") {
        return None;
    }
    let _pid = words.next();
    let commit = words
        .next()
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from);
    Some(commit)
}
