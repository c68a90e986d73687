//! `supervisor start` and `supervisor stop`: the installed service,
//! started and stopped through its manager. It stays installed; a stopped
//! service starts again at the next login, or with `start`.
//!
//! Both wait for what a person would check next: `start` until the
//! supervisor answers `status` with its worker ready, `stop` until the
//! supervisor and its worker have exited, which is after the worker wrote
//! `sessions.json`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use shared::paths::DataDir;

use super::runner::Runner;
use super::{home, launchd, systemd, InstallError, Manager, Options, EXIT_TIMEOUT_SECS};
use crate::control;

/// How long `start` waits for the supervisor to answer with its worker
/// ready.
const START_WAIT: Duration = Duration::from_secs(30);

/// How long `stop` waits for the supervisor to exit: the manager's own
/// budget before SIGKILL, and a little more.
const STOP_WAIT: Duration = Duration::from_secs(EXIT_TIMEOUT_SECS + 5);

/// How often the waits look.
const POLL: Duration = Duration::from_millis(50);

/// The installed service file of `opts`' manager, or why there is none.
fn installed(opts: &Options) -> Result<(Manager, std::path::PathBuf), InstallError> {
    let manager = opts.manager.unwrap_or_else(Manager::for_this_platform);
    let unit = manager.unit_path(&home()?);
    if !unit.is_file() {
        return Err(InstallError::Failed(format!(
            "not installed for {}: {} does not exist; run `supervisor install` first",
            manager.name(),
            unit.display()
        )));
    }
    Ok((manager, unit))
}

/// `supervisor start`.
pub fn start(data_dir: &DataDir, opts: &Options) -> Result<(), InstallError> {
    let (manager, unit) = installed(opts)?;
    let runner = Runner {
        dry_run: opts.dry_run,
    };
    match manager {
        Manager::Launchd => launchd::start(&runner, &unit),
        Manager::Systemd => systemd::start(&runner),
    }?;
    if opts.dry_run {
        return Ok(());
    }
    let sock = data_dir.supervisor_sock();
    let deadline = Instant::now() + START_WAIT;
    let mut last = wait_for(START_WAIT, || control::status(&sock).ok()).ok_or_else(|| {
        InstallError::Failed(format!(
            "{} started the service, but no supervisor answered on {} within {} s; \
             `supervisor logs` and {} say why",
            manager.name(),
            sock.display(),
            START_WAIT.as_secs(),
            manager_output(manager)
        ))
    })?;
    // Then its worker, in what is left of the same wait.
    let left = deadline.saturating_duration_since(Instant::now());
    let ready = wait_for(left, || {
        if let Ok(answer) = control::status(&sock) {
            last = answer;
        }
        (last["worker"]["state"] == "ready").then_some(())
    })
    .is_some();
    let (supervisor, worker) = (&last["supervisor"], &last["worker"]);
    if !ready {
        return Err(InstallError::Failed(format!(
            "the supervisor (pid {}) runs, but its worker is {} after {} s{}; \
             `supervisor logs` says why",
            supervisor["pid"],
            worker["state"].as_str().unwrap_or("unknown"),
            START_WAIT.as_secs(),
            worker["last_exit"]
                .as_str()
                .map(|e| format!(" (last exit: {e})"))
                .unwrap_or_default()
        )));
    }
    println!(
        "started: supervisor pid {}, worker ready (pid {}, commit {})",
        supervisor["pid"],
        worker["pid"],
        worker["commit"].as_str().unwrap_or("unknown")
    );
    Ok(())
}

/// `supervisor stop`.
pub fn stop(data_dir: &DataDir, opts: &Options) -> Result<(), InstallError> {
    let (manager, _) = installed(opts)?;
    let runner = Runner {
        dry_run: opts.dry_run,
    };
    // Who runs now, asked before the manager is told to stop them.
    let running = control::status(&data_dir.supervisor_sock()).ok();
    let pid = |who: &str| {
        running
            .as_ref()
            .and_then(|a| a[who]["pid"].as_u64())
            .and_then(|p| u32::try_from(p).ok())
    };
    let (supervisor, worker) = (pid("supervisor"), pid("worker"));
    let began = SystemTime::now();
    let asked = match manager {
        Manager::Launchd => launchd::stop(&runner),
        Manager::Systemd => systemd::stop(&runner),
    }?;
    if opts.dry_run {
        return Ok(());
    }
    let Some(supervisor) = supervisor else {
        println!(
            "stopped: no supervisor was answering on {}{}",
            data_dir.supervisor_sock().display(),
            if asked {
                ""
            } else {
                " and launchd had none loaded"
            }
        );
        return Ok(());
    };
    let gone = |pid: Option<u32>| pid.is_none_or(|p| !shared::procs::alive(p).unwrap_or(true));
    if wait_for(STOP_WAIT, || {
        (gone(Some(supervisor)) && gone(worker)).then_some(())
    })
    .is_none()
    {
        return Err(InstallError::Failed(format!(
            "the supervisor (pid {supervisor}) is still running {} s after {} was told to \
             stop it; {} says why. A supervisor started by hand is not the service's: \
             stop it with `kill -TERM {supervisor}`",
            STOP_WAIT.as_secs(),
            manager.name(),
            manager_output(manager)
        )));
    }
    println!("stopped: supervisor pid {supervisor} has exited");
    report_saved(&data_dir.sessions_json(), began, worker.is_some());
    Ok(())
}

/// Says whether the stopped worker wrote `sessions.json`.
fn report_saved(sessions: &Path, began: SystemTime, had_worker: bool) {
    if !had_worker {
        println!("no worker was running");
        return;
    }
    let written = std::fs::metadata(sessions)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= began);
    let count = written.then(|| {
        std::fs::read(sessions)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["sessions"].as_object().map(|o| o.len()))
    });
    match count {
        Some(Some(n)) => println!("the worker saved {n} sessions to {}", sessions.display()),
        Some(None) => println!("the worker saved its sessions to {}", sessions.display()),
        None => println!(
            "the worker did not write {} as it stopped; its journal holds every \
             acknowledged write and the next start restores them",
            sessions.display()
        ),
    }
}

/// Where the manager keeps what the service printed before its own logs.
fn manager_output(manager: Manager) -> String {
    match manager {
        Manager::Launchd => home()
            .map(|h| launchd::output_path(&h).display().to_string())
            .unwrap_or_else(|_| "launchd's output log".into()),
        Manager::Systemd => format!("`journalctl --user -u {}`", systemd::UNIT_NAME),
    }
}

/// Calls `probe` every [`POLL`] until it returns `Some`, for at most `limit`.
fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
