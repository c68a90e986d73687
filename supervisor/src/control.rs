//! The control socket (`supervisor.sock`): one JSON request line, one
//! JSON answer line. Used by `supervisor status`, `restart` and `update`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use shared::accept_log::{self, AcceptFailures};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::actor::Control;
use crate::status::{SessionsStatus, Status};
use crate::update::{UpdateRequest, UpdateView};

/// Serves control requests until the actor is gone.
pub async fn serve(
    listener: UnixListener,
    owner_uid: u32,
    worker_sock: std::path::PathBuf,
    actor: mpsc::Sender<Control>,
    updater: mpsc::Sender<UpdateRequest>,
    view: tokio::sync::watch::Receiver<UpdateView>,
) {
    let mut failures = AcceptFailures::new("the control socket");
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
        let (actor, updater, view, worker_sock) = (
            actor.clone(),
            updater.clone(),
            view.clone(),
            worker_sock.clone(),
        );
        tokio::spawn(async move {
            let _ = handle(stream, actor, updater, view, &worker_sock).await;
        });
    }
}

async fn handle(
    stream: UnixStream,
    actor: mpsc::Sender<Control>,
    updater: mpsc::Sender<UpdateRequest>,
    view: tokio::sync::watch::Receiver<UpdateView>,
    worker_sock: &Path,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let n = BufReader::new(r.take(64 * 1024))
        .read_line(&mut line)
        .await?;
    if n == 0 {
        return Ok(());
    }
    let request: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let answer = match request["op"].as_str() {
        Some("status") => {
            let (tx, rx) = oneshot::channel();
            if actor.send(Control::Status(tx)).await.is_err() {
                gone()
            } else {
                match rx.await {
                    Ok(mut status) => {
                        merge_update(&mut status, &view.borrow());
                        if status.worker.state == "ready" {
                            status.sessions = session_count(worker_sock)
                                .await
                                .map(|count| SessionsStatus { count });
                        }
                        serde_json::to_value(status).expect("status serializes")
                    }
                    Err(_) => gone(),
                }
            }
        }
        Some("restart") => {
            let (tx, rx) = oneshot::channel();
            if actor.send(Control::Restart(tx)).await.is_err() {
                gone()
            } else {
                match rx.await {
                    Ok(Ok(done)) => {
                        json!({"ok": true, "worker": {"pid": done.pid, "commit": done.commit}})
                    }
                    Ok(Err(e)) => json!({"ok": false, "error": e}),
                    Err(_) => gone(),
                }
            }
        }
        Some("update") => {
            let (tx, rx) = oneshot::channel();
            let retry_held = request["retry"] == true;
            if updater
                .send(UpdateRequest {
                    retry_held,
                    reply: tx,
                })
                .await
                .is_err()
            {
                gone()
            } else {
                match rx.await {
                    Ok(answer) => {
                        let body = match answer.result {
                            Ok(outcome) => json!({"ok": true, "outcome": outcome}),
                            Err(e) => json!({"ok": false, "error": e}),
                        };
                        write_answer(&mut w, &body).await?;
                        // A self-update waits for this before the exec.
                        let _ = answer.delivered.send(());
                        return Ok(());
                    }
                    Err(_) => gone(),
                }
            }
        }
        _ => {
            json!({"ok": false, "error": "unknown request; expected {\"op\":\"status\"|\"restart\"|\"update\"}"})
        }
    };
    write_answer(&mut w, &answer).await
}

async fn write_answer(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    answer: &Value,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(answer).expect("JSON serializes");
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

/// The updater's part of the status.
fn merge_update(status: &mut Status, view: &UpdateView) {
    let u = &mut status.update;
    u.state = view.state.clone();
    u.last_poll_at = view.last_poll_at.clone();
    u.last_poll = view.last_poll.clone();
    u.deployed_commit = view.deployed_commit.clone();
    u.last_error = view.last_error.clone();
    u.held_commits = view.held_commits.clone();
    u.target_commit = view.target_commit.clone();
    u.step_started_at = view.step_started_at.clone();
    u.checkout = view.checkout.clone();
    u.self_update = view.self_update.clone();
}

fn gone() -> Value {
    json!({"ok": false, "error": "the supervisor is stopping"})
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

/// Client side: sends one request and reads the answer (blocking).
pub fn request(sock: &Path, request: &Value, timeout: Option<Duration>) -> std::io::Result<Value> {
    use std::io::{BufRead, Write};
    shared::paths::check_socket_path(sock)?;
    let mut stream = std::os::unix::net::UnixStream::connect(sock)?;
    stream.set_read_timeout(timeout)?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the supervisor answered something that is not JSON: {e}"),
        )
    })
}

/// Asks for the status. A connection closed before the answer (the
/// supervisor was replacing itself in place at that moment) is retried:
/// asking for the status twice is harmless.
pub fn status(sock: &Path) -> std::io::Result<Value> {
    let ask = || request(sock, &json!({"op": "status"}), Some(Duration::from_secs(5)));
    let mut last = ask();
    for _ in 0..3 {
        match &last {
            Err(e)
                if e.kind() == std::io::ErrorKind::InvalidData
                    || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                last = ask();
            }
            _ => break,
        }
    }
    last
}

/// Parses a status answer.
pub fn parse_status(v: Value) -> Result<Status, String> {
    serde_json::from_value(v).map_err(|e| format!("unexpected status answer: {e}"))
}
