//! The second-brain supervisor: keeps one worker serving on a socket it
//! owns for its whole life, restarts it, reports status and writes logs.

pub mod actor;
pub mod backoff;
pub mod binary;
pub mod commands;
pub mod control;
pub mod doctor;
pub mod exe;
pub mod install;
pub mod logs;
pub mod signals;
pub mod sleep;
pub mod sockets;
pub mod spawn;
pub mod startup;
pub mod status;
pub mod tools;
pub mod trial;
pub mod update;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::paths::DataDir;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// Everything `supervisor run` needs, already validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub data_dir: DataDir,
    pub log_dir: PathBuf,
    pub log_retention_days: u32,
    pub log_filter: String,
    pub poll_interval_ms: u64,
    pub repo: Option<PathBuf>,
    pub branch: String,
    /// An explicit worker binary (otherwise see `binary::resolve`).
    pub worker_bin: Option<PathBuf>,
    pub ready_timeout: Duration,
    pub stop_timeout: Duration,
    pub checkpoint_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub stable_after: Duration,
    /// How long a swapped-in worker must stay up before it counts as good.
    pub probation: Duration,
    /// Where updates are built (default `<data dir>/staging`).
    pub staging_dir: Option<PathBuf>,
    /// The cargo profile of update builds (`release`).
    pub build_profile: String,
    pub build_timeout: Duration,
    pub git_timeout: Duration,
    /// How long a self-updated supervisor must run before a later start
    /// of the service runs it again.
    pub supervisor_probation: Duration,
    /// The soft open-file limit in force (`shared::fdlimit::raise`); the
    /// control socket's connection cap is derived from it.
    pub open_files: u64,
    /// A control connection that has not sent its request in this long is
    /// closed (`--control-timeout-ms`).
    pub control_timeout: Duration,
}

/// The default for `--control-timeout-ms`. Clients of the control socket
/// send their request as soon as they connect.
pub const DEFAULT_CONTROL_TIMEOUT_MS: u64 = 10_000;

/// How long a stopping worker gets before SIGKILL unless `--stop-timeout-ms`
/// says otherwise; the service files give the supervisor more than this.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;

/// Exit statuses of `supervisor` (README "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const CONFIG: i32 = 2;
    /// `status`: no supervisor is running.
    pub const NOT_RUNNING: i32 = 3;
}

/// Why `run` could not start or go on.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

fn err(what: &str) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError(format!("{what}: {e}"))
}

/// Takes the data directory's supervisor lock. A second supervisor is
/// refused with the first one's pid.
pub fn lock(dir: &DataDir) -> Result<shared::lock::PidLock, RunError> {
    dir.ensure().map_err(err(&format!(
        "cannot use data directory {}",
        dir.root().display()
    )))?;
    shared::lock::acquire(&dir.supervisor_lock(), "supervisor").map_err(|e| RunError(e.to_string()))
}

/// Waits briefly for a worker that still holds the store (an orphan of a
/// killed supervisor finishing its final snapshot); refuses if one stays.
async fn wait_for_old_worker(dir: &DataDir) -> Result<(), RunError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match shared::lock::holder(&dir.worker_lock()) {
            None => return Ok(()),
            Some(pid) if Instant::now() >= deadline => {
                return Err(RunError(format!(
                    "a worker (pid {pid}) that this supervisor did not start owns {}; \
                     stop it first (kill -TERM {pid})",
                    dir.root().display()
                )))
            }
            Some(pid) => {
                info!(pid, "waiting for a previous worker to finish");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How this process came to run the service.
pub enum Start {
    /// A normal start: bind the sockets, start a worker.
    Fresh,
    /// A re-exec of a self-update: everything is handed over (the lock
    /// stays with the caller).
    Resumed {
        state: Box<actor::handover::Handover>,
        control: OwnedFd,
        worker: actor::handover::WorkerFds,
    },
}

/// Runs the service until SIGTERM/SIGINT. The caller holds the lock
/// (`lock_fd`, handed over on a self-update) and has called
/// [`signals::block`] before starting any thread.
pub async fn run(
    cfg: RunConfig,
    logs: logs::Logs,
    lock_fd: RawFd,
    start: Start,
) -> Result<(), RunError> {
    let dir = cfg.data_dir.clone();
    let owner_uid = dir
        .owner_uid()
        .map_err(err("cannot read the data directory's owner"))?;
    let cfg = Arc::new(cfg);
    let (actor_handle, control_rx) = actor::channel();
    let mut previous_update = None;
    let (actor, control_listener) = match start {
        Start::Fresh => {
            wait_for_old_worker(&dir).await?;
            let listener = sockets::bind_listener(&dir.worker_sock())
                .map_err(err("cannot create the worker socket"))?;
            let control_listener = sockets::bind_control(&dir.supervisor_sock())
                .map_err(err("cannot create the control socket"))?;
            let held = actor::HeldFds {
                control: control_listener.as_raw_fd(),
                lock: lock_fd,
            };
            (
                actor::Actor::new(cfg.clone(), listener, held, logs.worker.clone()),
                control_listener,
            )
        }
        Start::Resumed {
            mut state,
            control,
            worker,
        } => {
            previous_update = state.update.take();
            let std_listener = std::os::unix::net::UnixListener::from(control);
            std_listener
                .set_nonblocking(true)
                .map_err(err("cannot use the handed-over control socket"))?;
            let control_listener = tokio::net::UnixListener::from_std(std_listener)
                .map_err(err("cannot use the handed-over control socket"))?;
            (
                actor::Actor::resume(cfg.clone(), *state, worker, logs.worker.clone()),
                control_listener,
            )
        }
    };
    logs::spawn_retention(logs.dir.clone(), cfg.log_retention_days);
    // A supervisor that has run this long after a self-update is kept: a
    // later start of the service runs it again (see Releases::deployed_supervisor).
    {
        let (dir, proven_after) = (dir.clone(), cfg.supervisor_probation);
        tokio::spawn(async move {
            tokio::time::sleep(proven_after).await;
            update::releases::Releases::of(&dir).mark_proven();
        });
    }
    info!(
        pid = std::process::id(),
        version = shared::version::VERSION,
        commit = shared::version::COMMIT,
        data_dir = %dir.root().display(),
        log_dir = %cfg.log_dir.display(),
        "supervisor running"
    );
    let signals = signals::Signals::start().map_err(err("cannot start the signal thread"))?;
    let (mut updater, update_view) =
        update::Updater::new(cfg.clone(), actor_handle.clone(), previous_update);
    updater.watch_worker(actor.watch_settled());
    let (update_tx, update_rx) = mpsc::channel(16);
    let updater = tokio::spawn(updater.run(update_rx));
    let control_limits = control::Limits {
        max_connections: control::slots::connection_cap(cfg.open_files),
        read_timeout: cfg.control_timeout,
    };
    if control_limits.max_connections < control::slots::MAX_CONNECTIONS {
        warn!(
            max_connections = control_limits.max_connections,
            open_files = cfg.open_files,
            "the control socket holds at most {} connections at once: the open-file limit \
             is {} and {} descriptors are kept for starting workers, git and cargo",
            control_limits.max_connections,
            cfg.open_files,
            control::slots::FD_RESERVE
        );
    }
    let control = tokio::spawn(control::serve(
        control_listener,
        owner_uid,
        dir.worker_sock(),
        actor_handle,
        update_tx,
        update_view,
        control_limits,
    ));
    let result = actor.run(control_rx, Some(signals)).await;
    control.abort();
    updater.abort();
    let _ = std::fs::remove_file(dir.supervisor_sock());
    let _ = std::fs::remove_file(dir.worker_sock());
    match result {
        Ok(()) => {
            info!("supervisor stopped");
            Ok(())
        }
        Err(e) => {
            error!(error = %e, "supervisor failed");
            Err(RunError(e.to_string()))
        }
    }
}
