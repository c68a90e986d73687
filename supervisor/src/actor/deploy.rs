//! Hot swaps: the graceful restart path onto a new binary, a probation
//! window once it is ready, and a rollback to the last good binary when it
//! fails to start, to become ready or to stay up.

use std::path::PathBuf;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{Actor, Phase, Running};

/// Why a deploy did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// The new worker failed: hold the commit.
    #[error("{0}")]
    Failed(String),
    /// Something else (a restart, a stop) cut it short: try again later.
    #[error("{0}")]
    Interrupted(String),
}

impl Actor {
    pub(super) fn deploy(
        &mut self,
        commit: String,
        binary: PathBuf,
        reply: oneshot::Sender<Result<(), DeployError>>,
    ) {
        if self.deploy_reply.is_some() || self.pending.is_some() {
            let _ = reply.send(Err(DeployError::Interrupted(
                "another swap is in progress".into(),
            )));
            return;
        }
        if self.stopping_for_good() {
            let _ = reply.send(Err(DeployError::Interrupted(
                "the supervisor is stopping".into(),
            )));
            return;
        }
        info!(commit = %commit, binary = %binary.display(), "swapping the worker");
        self.pending = Some((commit, binary));
        self.deploy_reply = Some(reply);
        if matches!(self.phase, Phase::Stopping { .. }) {
            // The worker is already stopping for a restart: it comes back
            // on the new binary.
            return;
        }
        self.replace_worker("hot swap");
    }

    /// The probation window passed: the new binary is the good one now.
    pub(super) fn accept_candidate(&mut self) {
        let Phase::Ready(run) = &mut self.phase else {
            return;
        };
        run.probation_until = None;
        let commit = run.candidate.take();
        self.good_bin = Some(run.binary.clone());
        info!(
            pid = run.pid,
            commit = commit.as_deref().unwrap_or(""),
            "the new worker passed probation"
        );
        if let Some(reply) = self.deploy_reply.take() {
            let _ = reply.send(Ok(()));
        }
    }

    /// The candidate ended before passing probation: back to the last good
    /// binary, at once (this is not a crash loop of the good worker).
    pub(super) fn roll_back(&mut self, run: Running, how: &str) {
        let why = if run.timed_out {
            format!(
                "the new worker was not ready within {} ms",
                self.cfg.ready_timeout.as_millis()
            )
        } else if run.ready_at.is_some() {
            format!("the new worker died during its probation ({how})")
        } else {
            format!("the new worker ended before it was ready ({how})")
        };
        warn!(pid = run.pid, reason = %why, "rolling back to the previous worker");
        self.fail_waiters(&why);
        // Answered once the previous worker serves again (or fails too).
        if let Some(reply) = self.deploy_reply.take() {
            self.rollback = Some((reply, DeployError::Failed(why)));
        }
        drop(run);
        self.start_worker();
    }

    /// Answers a rolled-back deploy: the previous worker is ready, or the
    /// attempt to bring it back ended too.
    pub(super) fn finish_rollback(&mut self) {
        if let Some((reply, err)) = self.rollback.take() {
            let _ = reply.send(Err(err));
        }
    }

    pub(super) fn deploy_failed(&mut self, err: DeployError) {
        if let Some(reply) = self.deploy_reply.take() {
            let _ = reply.send(Err(err));
        }
    }
}
