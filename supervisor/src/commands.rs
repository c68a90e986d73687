//! The client commands: `supervisor status`, `restart` and `update` ask
//! the running supervisor over its control socket; `install` and
//! `uninstall` manage the per-user service. Each returns the exit status.

use shared::paths::DataDir;

use crate::control::{self, ControlRequest, ControlResponse};
use crate::exit;
use crate::install::{InstallError, Options};

fn not_running(data_dir: &DataDir, e: &std::io::Error) -> i32 {
    eprintln!(
        "supervisor: not running (no answer on {}: {e})",
        data_dir.supervisor_sock().display()
    );
    exit::NOT_RUNNING
}

/// `supervisor status [--json]`: 0 when the worker is ready and its store
/// healthy, 1 otherwise, 3 when no supervisor answers.
pub fn status(data_dir: &DataDir, json: bool) -> i32 {
    let answer = match control::status(&data_dir.supervisor_sock()) {
        Ok(a) => a,
        Err(e) => return not_running(data_dir, &e),
    };
    if let Ok(ControlResponse::Failed { error }) =
        ControlResponse::parse(&ControlRequest::Status, answer.clone())
    {
        // Running, but not answering this now: stopping, or every control
        // connection is busy.
        eprintln!("supervisor: {error}");
        return exit::FAILURE;
    }
    // A degraded store counts as not ready: it cannot take writes, or
    // cannot write sessions.json, until it has repaired itself. Read from
    // the JSON itself, so that `--json` works whatever else it holds.
    let ready = answer["worker"]["state"] == "ready" && answer["store"]["state"] != "degraded";
    if json {
        println!("{answer}");
    } else {
        match ControlResponse::parse(&ControlRequest::Status, answer) {
            Ok(ControlResponse::Status(s)) => print!("{}", s.render()),
            Ok(other) => {
                eprintln!("supervisor: unexpected status answer: {other:?}");
                return exit::FAILURE;
            }
            Err(e) => {
                eprintln!("supervisor: {e}");
                return exit::FAILURE;
            }
        }
    }
    if ready {
        exit::OK
    } else {
        exit::FAILURE
    }
}

/// Sends `request`, waiting as long as it takes; the answer, or the exit
/// status to return.
fn ask(data_dir: &DataDir, request: &ControlRequest) -> Result<ControlResponse, i32> {
    let answer = control::request(&data_dir.supervisor_sock(), request, None)
        .map_err(|e| not_running(data_dir, &e))?;
    ControlResponse::parse(request, answer).map_err(|e| {
        eprintln!("supervisor: {e}");
        exit::FAILURE
    })
}

/// `supervisor restart`.
pub fn restart(data_dir: &DataDir) -> i32 {
    match ask(data_dir, &ControlRequest::Restart) {
        Ok(ControlResponse::Restarted { pid, commit }) => {
            println!(
                "worker restarted: pid {pid}, commit {}",
                commit.as_deref().unwrap_or("unknown")
            );
            exit::OK
        }
        Ok(ControlResponse::Failed { error }) => {
            eprintln!("supervisor: restart failed: {error}");
            exit::FAILURE
        }
        Ok(other) => {
            eprintln!("supervisor: unexpected restart answer: {other:?}");
            exit::FAILURE
        }
        Err(code) => code,
    }
}

/// `supervisor update [--retry]`.
pub fn update(data_dir: &DataDir, retry: bool) -> i32 {
    match ask(data_dir, &ControlRequest::Update { retry }) {
        Ok(ControlResponse::Updated { outcome }) => {
            println!("{outcome}");
            exit::OK
        }
        Ok(ControlResponse::Failed { error }) => {
            eprintln!("supervisor: update: {error}");
            exit::FAILURE
        }
        Ok(other) => {
            eprintln!("supervisor: unexpected update answer: {other:?}");
            exit::FAILURE
        }
        Err(code) => code,
    }
}

/// `supervisor install` or `uninstall`: `action` with `opts`.
pub fn service(
    data_dir: &DataDir,
    opts: &Options,
    action: fn(&DataDir, &Options) -> Result<(), InstallError>,
) -> i32 {
    match action(data_dir, opts) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("supervisor: {e}");
            e.exit_code()
        }
    }
}
