//! `supervisor`: keeps one second-brain worker serving. See the README.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shared::config::{self, ConfigError};
use shared::paths::DataDir;
use supervisor::{control, exit, RunConfig};

#[derive(Parser)]
#[command(
    name = "supervisor",
    version = shared::version::VERSION_AND_COMMIT,
    about = "Keeps one second-brain worker serving: restarts, status, logs."
)]
struct Cli {
    /// Data directory [env: SECOND_BRAIN_DATA_DIR] [default: ~/.second-brain]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<OsString>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once; its size does not matter
enum Command {
    /// Run the service in the foreground (what launchd or systemd starts)
    Run(RunArgs),
    /// Report on the running service (exit 0 ready, 1 worker not ready, 3 not running)
    Status {
        /// One JSON object instead of the view for a person
        #[arg(long)]
        json: bool,
    },
    /// Replace the worker with a fresh one without refusing a connection
    Restart,
    /// Poll git now and apply what is found; prints the outcome
    Update {
        /// Also try again the commits held after a failure
        #[arg(long)]
        retry: bool,
    },
    /// Install the per-user service (launchd on macOS, systemd --user elsewhere) and start it
    Install {
        #[command(flatten)]
        service: ServiceArgs,
        /// Worker binary to copy [default: the one `run` would start]
        #[arg(long, value_name = "PATH", env = "SECOND_BRAIN_WORKER_BIN")]
        worker_bin: Option<PathBuf>,
    },
    /// Stop and remove the per-user service; keeps data, logs and the copied binaries
    Uninstall(ServiceArgs),
}

#[derive(Args)]
struct ServiceArgs {
    /// Print the files and commands instead of writing and running them
    #[arg(long)]
    dry_run: bool,
    /// Service manager [default: launchd on macOS, systemd elsewhere]
    #[arg(long, value_enum)]
    manager: Option<supervisor::install::Manager>,
}

#[derive(Args)]
struct RunArgs {
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
    #[arg(long, value_name = "MS", default_value_t = supervisor::DEFAULT_STOP_TIMEOUT_MS)]
    stop_timeout_ms: u64,
    /// How often the worker is asked to write sessions.json (SIGUSR1)
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    checkpoint_interval_ms: u64,
    /// Longest wait between restarts of a failing worker
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    backoff_max_ms: u64,
    /// Close a control connection that has not sent its request in this long
    #[arg(long, value_name = "MS", default_value_t = supervisor::DEFAULT_CONTROL_TIMEOUT_MS,
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

fn main() -> ExitCode {
    // Files and sockets are private from their first byte.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // The worker, git and cargo inherit the raised limit; `run` logs it.
    let open_files = shared::fdlimit::raise();
    let cli = Cli::parse();
    let data_dir = match config::data_dir(cli.data_dir) {
        Ok(d) => DataDir::new(d),
        Err(e) => return config_error(e),
    };
    let status = match cli.command {
        Command::Run(args) => run(data_dir, args, open_files),
        Command::Status { json } => status(&data_dir, json),
        Command::Restart => restart(&data_dir),
        Command::Update { retry } => update(&data_dir, retry),
        Command::Install {
            service: args,
            worker_bin,
        } => service(&data_dir, args, worker_bin, supervisor::install::install),
        Command::Uninstall(args) => service(&data_dir, args, None, supervisor::install::uninstall),
    };
    ExitCode::from(status as u8)
}

/// A duration flag: whole milliseconds, at least 1.
fn positive_ms(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err("expected a whole number of milliseconds, at least 1".into()),
    }
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("supervisor: {e}");
    ExitCode::from(config::EXIT_CONFIG as u8)
}

fn resolve(data_dir: DataDir, args: RunArgs, open_files: u64) -> Result<RunConfig, ConfigError> {
    let default_repo = supervisor::binary::source_checkout().filter(|p| p.join(".git").exists());
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

fn run(data_dir: DataDir, args: RunArgs, open_files: shared::fdlimit::FdLimit) -> i32 {
    // Before any thread exists, so that every thread blocks them (see
    // supervisor::signals): none is lost across a self-update's exec.
    if let Err(e) = supervisor::signals::block() {
        eprintln!("supervisor: cannot block SIGTERM, SIGINT and SIGHUP: {e}");
        return exit::FAILURE;
    }
    // A self-update re-executes this program with everything handed over.
    let handover = match supervisor::actor::handover::from_env() {
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
        if let Some(e) = supervisor::binary::exec_deployed_supervisor(&cfg.data_dir) {
            eprintln!(
                "supervisor: cannot run the deployed supervisor ({e}); going on with this one"
            );
        }
    }
    let (lock, lock_fd) = match &handover {
        Some(h) => {
            // SAFETY: the previous image handed the lock's fd over to us.
            let fd =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(h.lock_fd) };
            let _ = supervisor::actor::handover::set_cloexec(h.lock_fd, true);
            (Lock::Inherited { _fd: fd }, h.lock_fd)
        }
        None => match supervisor::lock(&cfg.data_dir) {
            Ok(l) => {
                let fd = l.raw_fd();
                (Lock::Fresh { _lock: l }, fd)
            }
            Err(e) => {
                eprintln!("supervisor: {e}");
                return exit::FAILURE;
            }
        },
    };
    let logs = match supervisor::logs::init(&cfg.log_dir, &cfg.log_filter) {
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
    if let Some(e) = supervisor::update::releases::NOT_EXECUTED.get() {
        tracing::error!("{e}");
    }
    if handover.is_none()
        && cfg.worker_bin.is_none()
        && supervisor::binary::resolve(None, &cfg.data_dir).is_none()
    {
        if let Err(e) = supervisor::binary::build_sibling_worker() {
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
    let start = match handover {
        Some(h) => supervisor::Start::Resumed(Box::new(h)),
        None => supervisor::Start::Fresh,
    };
    let result = runtime.block_on(supervisor::run(cfg, logs, lock_fd, start));
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

fn not_running(data_dir: &DataDir, e: &std::io::Error) -> i32 {
    eprintln!(
        "supervisor: not running (no answer on {}: {e})",
        data_dir.supervisor_sock().display()
    );
    exit::NOT_RUNNING
}

fn status(data_dir: &DataDir, json: bool) -> i32 {
    let answer = match control::status(&data_dir.supervisor_sock()) {
        Ok(a) => a,
        Err(e) => return not_running(data_dir, &e),
    };
    if answer["ok"] == false {
        // Running, but not answering this now: stopping, or every control
        // connection is busy.
        let error = answer["error"].as_str().unwrap_or("no reason given");
        eprintln!("supervisor: {error}");
        return exit::FAILURE;
    }
    // A degraded store counts as not ready: it cannot take writes, or
    // cannot write sessions.json, until it has repaired itself.
    let ready = answer["worker"]["state"] == "ready" && answer["store"]["state"] != "degraded";
    if json {
        println!("{answer}");
    } else {
        match control::parse_status(answer) {
            Ok(s) => print!("{}", s.render()),
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

fn restart(data_dir: &DataDir) -> i32 {
    match control::request(
        &data_dir.supervisor_sock(),
        &serde_json::json!({"op": "restart"}),
        None,
    ) {
        Ok(a) if a["ok"] == true => {
            println!(
                "worker restarted: pid {}, commit {}",
                a["worker"]["pid"],
                a["worker"]["commit"].as_str().unwrap_or("unknown")
            );
            exit::OK
        }
        Ok(a) => {
            eprintln!(
                "supervisor: restart failed: {}",
                a["error"].as_str().unwrap_or("unknown error")
            );
            exit::FAILURE
        }
        Err(e) => not_running(data_dir, &e),
    }
}

fn update(data_dir: &DataDir, retry: bool) -> i32 {
    let request = serde_json::json!({"op": "update", "retry": retry});
    match control::request(&data_dir.supervisor_sock(), &request, None) {
        Ok(a) if a["ok"] == true => {
            println!("{}", a["outcome"].as_str().unwrap_or("updated"));
            exit::OK
        }
        Ok(a) => {
            eprintln!(
                "supervisor: update: {}",
                a["error"].as_str().unwrap_or("unknown error")
            );
            exit::FAILURE
        }
        Err(e) => not_running(data_dir, &e),
    }
}

fn service(
    data_dir: &DataDir,
    args: ServiceArgs,
    worker_bin: Option<PathBuf>,
    action: fn(
        &DataDir,
        &supervisor::install::Options,
    ) -> Result<(), supervisor::install::InstallError>,
) -> i32 {
    let opts = supervisor::install::Options {
        manager: args.manager,
        dry_run: args.dry_run,
        worker_bin,
    };
    match action(data_dir, &opts) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("supervisor: {e}");
            e.exit_code()
        }
    }
}
