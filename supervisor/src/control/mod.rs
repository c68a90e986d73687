//! The control socket (`supervisor.sock`): one JSON request line, one
//! JSON answer line ([`protocol`]). Used by `supervisor status`, `restart`
//! and `update`.
//!
//! Bounded: at most [`slots::connection_cap`] connections at once (see
//! `slots` for who gives way at the cap), and a request line must arrive
//! within the read timeout.

mod client;
pub mod protocol;
pub mod slots;

pub use client::{request, status};
pub use protocol::{ControlRequest, ControlResponse};

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shared::accept_log::{self, AcceptFailures};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::actor::{ActorHandle, Gone};
use crate::status::SessionsStatus;
use crate::update::{UpdateRequest, UpdateView};
use protocol::UNKNOWN_REQUEST;

/// What the control socket allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections held at once ([`slots::connection_cap`]).
    pub max_connections: usize,
    /// A connection that has not sent its whole request line in this long
    /// is closed; an answer the client does not take in this long is
    /// dropped.
    pub read_timeout: Duration,
}

/// Serves control requests until the actor is gone.
pub async fn serve(
    listener: UnixListener,
    owner_uid: u32,
    worker_sock: std::path::PathBuf,
    actor: ActorHandle,
    updater: mpsc::Sender<UpdateRequest>,
    view: tokio::sync::watch::Receiver<UpdateView>,
    limits: Limits,
) {
    let mut failures = AcceptFailures::new("the control socket");
    let mut slots = slots::Slots::new(limits.max_connections);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => {
                failures.accepted();
                s
            }
            Err(e) => {
                // EMFILE and friends: pause rather than spin; log at a
                // bounded rate.
                failures.failed(&e);
                tokio::time::sleep(accept_log::RETRY_PAUSE).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == owner_uid => {}
            _ => {
                warn!("refused a control connection from another user");
                continue;
            }
        }
        if !slots.make_room() {
            refuse(stream, slots.cap());
            continue;
        }
        let (actor, updater, view, worker_sock) = (
            actor.clone(),
            updater.clone(),
            view.clone(),
            worker_sock.clone(),
        );
        let ticket = slots::Slots::ticket();
        let task = {
            let ticket = ticket.clone();
            tokio::spawn(async move {
                let served = handle(stream, actor, updater, view, &worker_sock, &ticket, limits);
                if let Err(e) = served.await {
                    debug!(error = %e, "a control connection ended with an error");
                }
            })
        };
        slots.hold(&ticket, task.abort_handle());
    }
}

/// Answers that every connection is busy being answered, and closes. The
/// line is short and the socket new, so the write fits its buffer at once.
fn refuse(stream: UnixStream, cap: usize) {
    use std::io::Write;
    let answer = ControlResponse::failed(format!(
        "the supervisor is answering {cap} control requests already; try again"
    ))
    .to_value();
    match stream.into_std() {
        Ok(mut s) => {
            if let Err(e) = s.write_all(format!("{answer}\n").as_bytes()) {
                debug!(error = %e, "could not answer a refused control connection");
            }
        }
        Err(e) => debug!(error = %e, "could not answer a refused control connection"),
    }
}

async fn handle(
    stream: UnixStream,
    actor: ActorHandle,
    updater: mpsc::Sender<UpdateRequest>,
    view: tokio::sync::watch::Receiver<UpdateView>,
    worker_sock: &Path,
    ticket: &slots::Ticket,
    limits: Limits,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(64 * 1024));
    let read = tokio::time::timeout(limits.read_timeout, reader.read_line(&mut line)).await;
    let n = match read {
        Ok(n) => n?,
        Err(_) => {
            debug!(
                timeout_ms = limits.read_timeout.as_millis() as u64,
                "closed a control connection that sent no request"
            );
            return Ok(());
        }
    };
    if n == 0 || !ticket.answering() {
        return Ok(());
    }
    let answer = match ControlRequest::parse(&line) {
        Some(ControlRequest::Status) => match actor.status().await {
            Ok(mut status) => {
                let serving = status.update.view.deployed_commit.take();
                status.update.view = view.borrow().clone();
                // Before the first deploy, the commit the worker was built
                // from is the deployed one.
                let deployed = &mut status.update.view.deployed_commit;
                if deployed.is_none() {
                    *deployed = serving;
                }
                if status.worker.state == "ready" {
                    status.sessions = session_count(worker_sock)
                        .await
                        .map(|count| SessionsStatus { count });
                }
                ControlResponse::Status(Box::new(status))
            }
            Err(Gone) => gone(),
        },
        Some(ControlRequest::Restart) => match actor.restart().await {
            Ok(Ok(done)) => ControlResponse::Restarted {
                pid: done.pid,
                commit: done.commit,
            },
            Ok(Err(error)) => ControlResponse::Failed { error },
            Err(Gone) => gone(),
        },
        Some(ControlRequest::Update { retry }) => {
            let (tx, rx) = oneshot::channel();
            let asked = UpdateRequest {
                retry_held: retry,
                reply: tx,
            };
            if updater.send(asked).await.is_err() {
                gone()
            } else {
                match rx.await {
                    Ok(answer) => {
                        let body = match answer.result {
                            Ok(outcome) => ControlResponse::Updated { outcome },
                            Err(error) => ControlResponse::Failed { error },
                        };
                        write_answer(&mut w, &body, limits.read_timeout).await?;
                        // A self-update waits for this before the exec.
                        let _ = answer.delivered.send(());
                        return Ok(());
                    }
                    Err(_) => gone(),
                }
            }
        }
        None => ControlResponse::failed(UNKNOWN_REQUEST),
    };
    write_answer(&mut w, &answer, limits.read_timeout).await
}

/// Writes the answer line; an error if the client takes none of it within
/// `timeout`.
async fn write_answer(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    answer: &ControlResponse,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(&answer.to_value()).expect("JSON serializes");
    out.push(b'\n');
    let write = async {
        w.write_all(&out).await?;
        w.shutdown().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client did not read its answer",
        )),
    }
}

fn gone() -> ControlResponse {
    ControlResponse::failed("the supervisor is stopping")
}

/// Asks the worker for its session count, briefly.
async fn session_count(worker_sock: &Path) -> Option<u64> {
    let ask = async {
        let stream = UnixStream::connect(worker_sock).await.ok()?;
        let (r, mut w) = stream.into_split();
        w.write_all(b"{\"op\":\"stats\"}\n").await.ok()?;
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await.ok()?;
        let v: Value = serde_json::from_str(&line).ok()?;
        v["count"].as_u64()
    };
    tokio::time::timeout(Duration::from_secs(1), ask)
        .await
        .ok()
        .flatten()
}
