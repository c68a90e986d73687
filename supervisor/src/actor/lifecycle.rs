//! Stopping, restarting and replacing the worker.

use tokio::time::Instant;

use nix::sys::signal::Signal;
use tokio::sync::oneshot;
use tracing::info;

use super::{Actor, DeployError, Phase, RestartDone, Running, Then};

impl Actor {
    /// SIGTERM and SIGINT stop the service; SIGHUP restarts the worker.
    pub(super) fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT => self.stop(signal.as_str()),
            Signal::SIGHUP => self.restart(None),
            _ => {}
        }
    }

    /// Asks the worker to stop gracefully; `then` says what follows.
    pub(super) fn begin_stop(&mut self, run: Running, then: Then) {
        info!(pid = run.pid, "asking the worker to stop");
        self.launcher.signal(run.pid, Signal::SIGTERM);
        self.phase = Phase::Stopping {
            run,
            kill_at: Some(Instant::now() + self.cfg.stop_timeout),
            then,
        };
    }

    pub(super) fn stop(&mut self, why: &str) {
        info!(signal = why, "stopping the service");
        self.fail_waiters("the supervisor is stopping");
        if self.pending.take().is_some() {
            self.deploy_failed(DeployError::Interrupted(
                "the supervisor is stopping".into(),
            ));
        }
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

    pub(super) fn stopping_for_good(&self) -> bool {
        matches!(
            self.phase,
            Phase::Stopped
                | Phase::Stopping {
                    then: Then::Exit,
                    ..
                }
        )
    }

    pub(super) fn restart(&mut self, waiter: Option<oneshot::Sender<Result<RestartDone, String>>>) {
        if let Some(w) = waiter {
            if self.stopping_for_good() {
                let _ = w.send(Err("the supervisor is stopping".into()));
                return;
            }
            self.waiters.push(w);
        }
        self.replace_worker("graceful worker restart");
    }

    /// Stops the current worker (or skips a backoff) so a new one starts.
    pub(super) fn replace_worker(&mut self, why: &str) {
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        match phase {
            Phase::Ready(run) | Phase::Starting(run) => {
                info!("{why}");
                self.begin_stop(run, Then::Restart);
            }
            Phase::Backoff { .. } => {
                info!("{why}: starting now");
                self.start_worker();
            }
            other => self.phase = other,
        }
    }
}
