//! `supervisor run` up to the async runtime: its options, the resolved
//! configuration, and the start before any thread exists: the deployed
//! supervisor's exec, and after a self-update's re-exec every handed-over
//! fd taken at once (`Handover::take_fds`, the only place that turns fd
//! numbers into owned fds).

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use shared::config::{self, ConfigError};
use shared::paths::DataDir;

use crate::{exit, RunConfig};

#[derive(Args)]
pub struct RunArgs {
    /// Log directory [env: LOG_FILE_PATH]
    #[arg(long, value_name = "DIR")]
    log_dir: Option<OsString>,
    /// Days of logs to keep [env: LOG_RETENTION_DAYS] [default: 7]
    #[arg(long, value_name = "DAYS")]
    log_retention_days: Option<OsString>,
    /// Git poll interval; 0 turns polling off [env: GIT_POLL_INTERVAL_MS] [default: 300000]
    #[arg(long, value_name = "MS")]
    poll_interval_ms: Option<OsString>,
    /// Watched repository [env: SECOND_BRAIN_REPO] [default: the checkout this was built from]
    #[arg(long, value_name = "DIR")]
    repo: Option<OsString>,
    /// Watched branch [env: SECOND_BRAIN_BRANCH] [default: main]
    #[arg(long, value_name = "NAME")]
    branch: Option<OsString>,
    /// Worker binary to run instead of the deployed or sibling one [env: SECOND_BRAIN_WORKER_BIN]
    #[arg(long, value_name = "PATH", env = "SECOND_BRAIN_WORKER_BIN")]
    worker_bin: Option<PathBuf>,
    /// How long a new worker gets to report ready before it is killed
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    ready_timeout_ms: u64,
    /// How long a stopping worker gets before SIGKILL
    #[arg(long, value_name = "MS", default_value_t = crate::DEFAULT_STOP_TIMEOUT_MS)]
    stop_timeout_ms: u64,
    /// How often the worker is asked to write sessions.json (SIGUSR1)
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    checkpoint_interval_ms: u64,
    /// Longest wait between restarts of a failing worker
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    backoff_max_ms: u64,
    /// Close a control connection that has not sent its request in this long
    #[arg(long, value_name = "MS", default_value_t = crate::DEFAULT_CONTROL_TIMEOUT_MS,
          value_parser = positive_ms)]
    control_timeout_ms: u64,
    /// How long a swapped-in worker must stay up before it counts as good
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    probation_ms: u64,
    /// Where updates are built [default: <data dir>/staging]
    #[arg(long, value_name = "DIR", env = "SECOND_BRAIN_STAGING_DIR")]
    staging_dir: Option<PathBuf>,
    /// Cargo profile of update builds
    #[arg(long, value_name = "NAME", default_value = "release")]
    build_profile: String,
    /// Longest update build before it is killed
    #[arg(long, value_name = "MS", default_value_t = 1_800_000)]
    build_timeout_ms: u64,
    /// Longest git command before it is killed
    #[arg(long, value_name = "MS", default_value_t = 120_000)]
    git_timeout_ms: u64,
    /// How long a self-updated supervisor must run before later starts use it
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    supervisor_probation_ms: u64,
}

/// A duration flag: whole milliseconds, at least 1.
fn positive_ms(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err("expected a whole number of milliseconds, at least 1".into()),
    }
}

fn resolve(data_dir: DataDir, args: RunArgs, open_files: u64) -> Result<RunConfig, ConfigError> {
    let default_repo = crate::binary::source_checkout().filter(|p| p.join(".git").exists());
    Ok(RunConfig {
        data_dir,
        log_dir: config::log_dir(args.log_dir)?,
        log_retention_days: config::log_retention_days(args.log_retention_days)?,
        log_filter: config::log_filter()?,
        poll_interval_ms: config::poll_interval_ms(args.poll_interval_ms)?,
        repo: config::repo(args.repo, default_repo)?,
        branch: config::branch(args.branch)?,
        worker_bin: args.worker_bin,
        ready_timeout: Duration::from_millis(args.ready_timeout_ms),
        stop_timeout: Duration::from_millis(args.stop_timeout_ms),
        checkpoint_interval: Duration::from_millis(args.checkpoint_interval_ms.max(100)),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(args.backoff_max_ms.max(100)),
        stable_after: Duration::from_secs(10),
        probation: Duration::from_millis(args.probation_ms),
        staging_dir: args.staging_dir,
        build_profile: args.build_profile,
        build_timeout: Duration::from_millis(args.build_timeout_ms),
        git_timeout: Duration::from_millis(args.git_timeout_ms),
        supervisor_probation: Duration::from_millis(args.supervisor_probation_ms),
        open_files,
        control_timeout: Duration::from_millis(args.control_timeout_ms),
    })
}

/// `supervisor run`: everything before the async runtime, then the
/// service until it stops. Returns the exit status.
///
/// In order: block the signals every thread must block (before any
/// thread exists); take over what a self-update's previous image handed
/// over, if this is one; else re-execute the deployed release's
/// supervisor if that is another binary; take the data directory's lock
/// (or keep the handed-over one); open the logs; build a worker if there
/// is none to run; start the runtime.
pub fn run(data_dir: DataDir, args: RunArgs, open_files: shared::fdlimit::FdLimit) -> i32 {
    // Before any thread exists, so that every thread blocks them (see
    // crate::signals): none is lost across a self-update's exec.
    if let Err(e) = crate::signals::block() {
        eprintln!("supervisor: cannot block SIGTERM, SIGINT and SIGHUP: {e}");
        return exit::FAILURE;
    }
    // A self-update re-executes this program with everything handed over.
    let handover = match crate::actor::handover::from_env() {
        Some(Ok(h)) => Some(h),
        Some(Err(e)) => {
            eprintln!("supervisor: {e}");
            return exit::FAILURE;
        }
        None => None,
    };
    let cfg = match resolve(data_dir, args, open_files.soft) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supervisor: {e}");
            return exit::CONFIG;
        }
    };
    if handover.is_none() {
        // After an update, the deployed release's supervisor is the one to run.
        if let Some(e) = crate::binary::exec_deployed_supervisor(&cfg.data_dir) {
            eprintln!(
                "supervisor: cannot run the deployed supervisor ({e}); going on with this one"
            );
        }
    }
    let fresh = handover.is_none();
    let (lock, lock_fd, start) = match handover {
        Some(h) => {
            let fds = h.take_fds();
            let lock_fd = fds.lock.as_raw_fd();
            let start = crate::Start::Resumed {
                state: Box::new(h),
                control: fds.control,
                worker: fds.worker,
            };
            (Lock::Inherited { _fd: fds.lock }, lock_fd, start)
        }
        None => match crate::lock(&cfg.data_dir) {
            Ok(l) => {
                let fd = l.raw_fd();
                (Lock::Fresh { _lock: l }, fd, crate::Start::Fresh)
            }
            Err(e) => {
                eprintln!("supervisor: {e}");
                return exit::FAILURE;
            }
        },
    };
    let logs = match crate::logs::init(&cfg.log_dir, &cfg.log_filter) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "supervisor: cannot use log directory {}: {e}",
                cfg.log_dir.display()
            );
            return exit::FAILURE;
        }
    };
    open_files.log();
    if let Some(e) = crate::update::releases::NOT_EXECUTED.get() {
        tracing::error!("{e}");
    }
    if fresh && cfg.worker_bin.is_none() && crate::binary::resolve(None, &cfg.data_dir).is_none() {
        if let Err(e) = crate::binary::build_sibling_worker() {
            tracing::error!(error = %e, "no worker binary");
            eprintln!("supervisor: {e}");
            return exit::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supervisor: cannot start the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    let result = runtime.block_on(crate::run(cfg, logs, lock_fd, start));
    drop(lock);
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("supervisor: {e}");
            exit::FAILURE
        }
    }
}

/// The data directory's supervisor lock, taken now or handed over.
enum Lock {
    Fresh { _lock: shared::lock::PidLock },
    Inherited { _fd: std::os::fd::OwnedFd },
}
