//! What the actor does when a worker reports ready, ends, or a deadline
//! passes.

use tokio::time::Instant;

use nix::sys::signal::Signal;
use shared::health::StoreHealth;
use tracing::{info, warn};

use super::{describe_exit, Actor, DeployError, Event, Phase, RestartDone, Then};

impl Actor {
    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Ready {
                generation,
                commit,
                store,
            } => {
                self.on_ready(generation, commit);
                if let Some(health) = store {
                    self.on_store(generation, health);
                }
            }
            Event::Exited { generation, status } => {
                if self.phase.running().map(|r| r.generation) == Some(generation) {
                    self.on_exit(describe_exit(&status));
                }
            }
            Event::Store { generation, health } => self.on_store(generation, health),
        }
    }

    /// A store health report: kept for `status`; each change of state is
    /// logged once (a worker's first report only if it is degraded).
    pub(super) fn on_store(&mut self, generation: u64, health: StoreHealth) {
        let Some(run) = self.phase.running_mut() else {
            return;
        };
        if run.generation != generation {
            return;
        }
        let pid = run.pid;
        run.store = Some(health.clone());
        let changed = match self.store_logged {
            Some(logged) => logged != health.state,
            None => health.is_degraded(),
        };
        self.store_logged = Some(health.state);
        if !changed {
            return;
        }
        match &health.last_error {
            Some(e) if health.is_degraded() => warn!(
                pid,
                since = %health.since,
                error = %e,
                "store degraded; the worker keeps trying to repair it"
            ),
            _ => info!(pid, since = %health.since, "store ok again"),
        }
    }

    pub(super) fn on_ready(&mut self, generation: u64, commit: Option<String>) {
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        self.phase = match phase {
            Phase::Starting(mut run) if run.generation == generation => {
                let now = Instant::now();
                run.ready_at = Some(now);
                run.ready_deadline = None;
                run.commit = commit;
                if run.candidate.is_some() {
                    run.probation_until = Some(now + self.cfg.probation);
                } else {
                    self.good_bin = Some(run.binary.clone());
                    self.finish_rollback();
                }
                info!(
                    pid = run.pid,
                    commit = run.commit.as_deref().unwrap_or("unknown"),
                    probation = run.candidate.is_some(),
                    "worker ready"
                );
                let done = RestartDone {
                    pid: run.pid,
                    commit: run.commit.clone(),
                };
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(done.clone()));
                }
                self.next_checkpoint = Some(now + self.cfg.checkpoint_interval);
                Phase::Ready(run)
            }
            other => other,
        };
    }

    pub(super) fn on_exit(&mut self, how: String) {
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        self.last_exit = Some(how.clone());
        match phase {
            Phase::Stopping { run, then, .. } => {
                info!(pid = run.pid, how = %how, "worker stopped");
                if run.candidate.is_some() {
                    self.deploy_failed(DeployError::Interrupted(
                        "the swap was interrupted by a restart or a stop".into(),
                    ));
                }
                match then {
                    Then::Restart => self.start_worker(),
                    Then::Exit => self.phase = Phase::Stopped,
                }
            }
            Phase::Starting(run) | Phase::Ready(run) if run.candidate.is_some() => {
                self.roll_back(run, &how);
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
                    self.fail_waiters(&format!("the new worker ended before it was ready: {how}"));
                    self.finish_rollback();
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

    pub(super) fn on_deadline(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Starting(run) => {
                warn!(
                    pid = run.pid,
                    timeout_ms = self.cfg.ready_timeout.as_millis() as u64,
                    "worker not ready in time; killing it"
                );
                run.ready_deadline = None;
                run.timed_out = true;
                self.launcher.signal(run.pid, Signal::SIGKILL);
            }
            Phase::Ready(run) => {
                if run.probation_until.is_some_and(|p| p <= now) {
                    self.accept_candidate();
                } else if self.next_checkpoint.is_some_and(|c| c <= now) {
                    self.launcher.signal(run.pid, Signal::SIGUSR1);
                    self.next_checkpoint = Some(now + self.cfg.checkpoint_interval);
                }
            }
            Phase::Backoff { .. } => self.start_worker(),
            Phase::Stopping { run, kill_at, .. } => {
                warn!(pid = run.pid, "worker did not stop in time; killing it");
                *kill_at = None;
                self.launcher.signal(run.pid, Signal::SIGKILL);
            }
            Phase::Stopped => {}
        }
    }
}
