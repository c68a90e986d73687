//! How the rest of the supervisor talks to the actor: an [`ActorHandle`]
//! whose methods send one message each and await its reply.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::handover::ReExecError;
use super::DeployError;
use crate::status::{Status, UpdateView};

/// Messages waiting for the actor, at most.
const CAPACITY: usize = 64;

/// What a control client or the updater asks the actor.
pub(super) enum Control {
    /// The current state (sessions and update filled in by the caller).
    Status(oneshot::Sender<Status>),
    /// Replace the worker; answered once the new one is ready.
    Restart(oneshot::Sender<Result<RestartDone, String>>),
    /// Swap the worker onto `binary`; answered after the probation window,
    /// or with the reason it was rolled back.
    Deploy {
        commit: String,
        binary: PathBuf,
        reply: oneshot::Sender<Result<(), DeployError>>,
    },
    /// Replace the supervisor process itself (same pid) with `binary`,
    /// keeping the worker. Answered only if that did not happen.
    ReExec {
        binary: PathBuf,
        /// The updater's state, to show on after the exec.
        view: Box<UpdateView>,
        /// Run just before the exec, once nothing can stop it any more.
        before_exec: BeforeExec,
        reply: oneshot::Sender<Result<(), ReExecError>>,
    },
}

/// The worker that a restart brought up.
#[derive(Debug, Clone)]
pub struct RestartDone {
    pub pid: u32,
    pub commit: Option<String>,
}

/// Something run just before a re-exec replaces the process.
pub type BeforeExec = Box<dyn FnOnce() + Send>;

/// The actor has stopped: the supervisor is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// A cheap, cloneable way to ask the actor.
#[derive(Clone)]
pub struct ActorHandle {
    tx: mpsc::Sender<Control>,
}

/// The actor's end: what `Actor::run` takes.
pub struct Inbox(pub(super) mpsc::Receiver<Control>);

/// A handle, and the inbox for `Actor::run`.
pub fn channel() -> (ActorHandle, Inbox) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (ActorHandle { tx }, Inbox(rx))
}

impl ActorHandle {
    /// Sends what `make` builds around a reply channel; waits for the reply.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Control) -> Result<T, Gone> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Gone)?;
        answer.await.map_err(|_| Gone)
    }

    /// The current state (sessions and update left for the caller).
    pub async fn status(&self) -> Result<Status, Gone> {
        self.ask(Control::Status).await
    }

    /// Replaces the worker; answers once the new one is ready.
    pub async fn restart(&self) -> Result<Result<RestartDone, String>, Gone> {
        self.ask(Control::Restart).await
    }

    /// Swaps the worker onto `binary` built from `commit`; answers after
    /// the probation window, or with why it was rolled back.
    pub async fn deploy(&self, commit: String, binary: PathBuf) -> Result<(), DeployError> {
        self.ask(|reply| Control::Deploy {
            commit,
            binary,
            reply,
        })
        .await
        .unwrap_or_else(|Gone| {
            Err(DeployError::Interrupted(
                "the supervisor is stopping".into(),
            ))
        })
    }

    /// Replaces the supervisor process (same pid) with `binary`, keeping
    /// the worker; `before_exec` runs once nothing can stop it. Answers
    /// only if that did not happen.
    pub async fn re_exec(
        &self,
        binary: PathBuf,
        view: UpdateView,
        before_exec: BeforeExec,
    ) -> Result<Result<(), ReExecError>, Gone> {
        self.ask(|reply| Control::ReExec {
            binary,
            view: Box::new(view),
            before_exec,
            reply,
        })
        .await
    }
}
