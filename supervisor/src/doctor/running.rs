//! What the running supervisor reports (`status`): the store's health,
//! the held commits and the last poll. Without a running supervisor the
//! held commits come from their file.

use std::collections::BTreeMap;

use shared::health::StoreState;
use shared::paths::DataDir;

use super::{Check, Context, DEADLINE};
use crate::control::{self, ControlRequest, ControlResponse};
use crate::status::Status;

/// What asking the supervisor for its status gave.
pub enum Asked {
    Answered(Box<Status>),
    /// No supervisor answers on the control socket.
    NotRunning(String),
    /// One answers, but not with a status.
    Failed(String),
}

/// Asks the supervisor for its status, giving up after [`DEADLINE`].
pub fn ask(data_dir: &DataDir) -> Asked {
    let sock = data_dir.supervisor_sock();
    let (tx, rx) = std::sync::mpsc::channel();
    let asking = sock.clone();
    // A supervisor that accepts but never answers must not hold us: the
    // thread is left behind at the deadline, and ends with the process.
    std::thread::spawn(move || {
        let _ = tx.send(control::status(&asking));
    });
    let answer = match rx.recv_timeout(DEADLINE) {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Asked::NotRunning(format!("no answer on {}: {e}", sock.display())),
        Err(_) => {
            return Asked::Failed(format!(
                "no answer on {} within {} s",
                sock.display(),
                DEADLINE.as_secs()
            ))
        }
    };
    match ControlResponse::parse(&ControlRequest::Status, answer) {
        Ok(ControlResponse::Status(status)) => Asked::Answered(status),
        Ok(ControlResponse::Failed { error }) => Asked::Failed(error),
        Ok(other) => Asked::Failed(format!("an unexpected answer: {other:?}")),
        Err(e) => Asked::Failed(e),
    }
}

/// How to start the service, one command.
fn start_advice(ctx: &Context) -> String {
    if ctx.installed.is_none() {
        return "install and start it with `supervisor install`".into();
    }
    "start it with `supervisor start`".into()
}

/// 9. The service runs, its worker is ready and its store is healthy.
pub fn store(ctx: &Context, asked: &Asked) -> Check {
    const NAME: &str = "store";
    let status = match asked {
        Asked::Answered(s) => s,
        Asked::NotRunning(e) => {
            return Check::fail(
                NAME,
                format!("unknown: the service is not running ({e})"),
                start_advice(ctx),
            )
        }
        Asked::Failed(e) => {
            return Check::fail(
                NAME,
                format!("unknown: the supervisor did not say ({e})"),
                "try again in a moment; if this stays, restart the service",
            )
        }
    };
    let w = &status.worker;
    if w.state != "ready" {
        let last = w
            .last_exit
            .as_deref()
            .map(|e| format!(", last exit: {e}"))
            .unwrap_or_default();
        return Check::fail(
            NAME,
            format!("the worker is {} ({} restarts{last})", w.state, w.restarts),
            format!(
                "read why in the worker log (worker.<day>.log in {}); the supervisor keeps \
                 restarting it",
                ctx.log_dir.display()
            ),
        );
    }
    let st = &status.store;
    if st.state == Some(StoreState::Degraded) {
        return Check::fail(
            NAME,
            format!(
                "DEGRADED since {}: {}",
                st.since.as_deref().unwrap_or("an unknown time"),
                st.last_error.as_deref().unwrap_or("no reason given")
            ),
            "free disk space or fix what the error names; the worker repairs the store by itself \
             once it can write",
        );
    }
    let sessions = status
        .sessions
        .as_ref()
        .map(|s| format!(", {} sessions", s.count))
        .unwrap_or_default();
    let pid = w.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    Check::pass(NAME, format!("ok, worker ready{pid}{sessions}"))
}

/// The held commits from `held-commits.json` (sha → reason).
fn held_from_file(data_dir: &DataDir) -> Result<Vec<String>, String> {
    let path = data_dir.held_commits();
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
            .map(|held| held.into_keys().collect())
            .map_err(|e| format!("{} cannot be read: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

/// 10. No commit is held (it failed to build or to run, and is not
///     tried again until asked).
pub fn held(ctx: &Context, asked: &Asked) -> Check {
    const NAME: &str = "held commits";
    let held = match asked {
        Asked::Answered(s) => s.update.view.held_commits.clone(),
        _ => match held_from_file(&ctx.data_dir) {
            Ok(h) => h,
            Err(e) => {
                return Check::fail(
                    NAME,
                    e,
                    "move the file aside; the supervisor starts without it",
                )
            }
        },
    };
    if held.is_empty() {
        return Check::pass(NAME, "none");
    }
    let shas: Vec<&str> = held.iter().map(|c| &c[..12.min(c.len())]).collect();
    Check::fail(
        NAME,
        format!(
            "{} held after failing to build or to run: {}",
            held.len(),
            shas.join(", ")
        ),
        "push a fix, or once the machine is fixed run `supervisor update --retry`",
    )
}

/// 11. The last poll of the repository did not fail.
pub fn last_poll(asked: &Asked) -> Check {
    const NAME: &str = "last poll";
    let Asked::Answered(status) = asked else {
        return Check::pass(NAME, "nothing to report: the service is not running");
    };
    let u = &status.update;
    if let Some(e) = &u.view.last_error {
        let when = u.view.last_poll_at.as_deref().unwrap_or("unknown time");
        let advice = if u.view.retry.is_some() {
            "fix what it names; the service tries again by itself, and `supervisor update` tries \
             at once"
        } else {
            "fix what it names, then run `supervisor update`"
        };
        return Check::fail(NAME, format!("failed at {when}: {e}"), advice);
    }
    match (&u.view.last_poll, &u.view.last_poll_at) {
        (Some(poll), Some(at)) => Check::pass(NAME, format!("{poll} (at {at})")),
        (Some(poll), None) => Check::pass(NAME, poll.clone()),
        _ if u.poll_interval_ms == 0 => Check::pass(NAME, "none yet (polling is off)"),
        _ => Check::pass(NAME, "none yet"),
    }
}
