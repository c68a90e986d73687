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
    /// Poll git now and apply what is found
    Update,
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
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    stop_timeout_ms: u64,
    /// How often the worker is asked to write sessions.json (SIGUSR1)
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    checkpoint_interval_ms: u64,
    /// Longest wait between restarts of a failing worker
    #[arg(long, value_name = "MS", default_value_t = 15_000)]
    backoff_max_ms: u64,
}

fn main() -> ExitCode {
    // Files and sockets are private from their first byte.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    let data_dir = match config::data_dir(cli.data_dir) {
        Ok(d) => DataDir::new(d),
        Err(e) => return config_error(e),
    };
    let status = match cli.command {
        Command::Run(args) => run(data_dir, args),
        Command::Status { json } => status(&data_dir, json),
        Command::Restart => restart(&data_dir),
        Command::Update => update(&data_dir),
    };
    ExitCode::from(status as u8)
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("supervisor: {e}");
    ExitCode::from(config::EXIT_CONFIG as u8)
}

fn resolve(data_dir: DataDir, args: RunArgs) -> Result<RunConfig, ConfigError> {
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
    })
}

fn run(data_dir: DataDir, args: RunArgs) -> i32 {
    let cfg = match resolve(data_dir, args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supervisor: {e}");
            return exit::CONFIG;
        }
    };
    let _lock = match supervisor::lock(&cfg.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("supervisor: {e}");
            return exit::FAILURE;
        }
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
    if cfg.worker_bin.is_none() && supervisor::binary::resolve(None, &cfg.data_dir).is_none() {
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
    match runtime.block_on(supervisor::run(cfg, logs)) {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("supervisor: {e}");
            exit::FAILURE
        }
    }
}

fn not_running(data_dir: &DataDir, e: &std::io::Error) -> i32 {
    eprintln!(
        "supervisor: not running (no answer on {}: {e})",
        data_dir.supervisor_sock().display()
    );
    exit::NOT_RUNNING
}

fn status(data_dir: &DataDir, json: bool) -> i32 {
    let answer = match control::request(
        &data_dir.supervisor_sock(),
        "status",
        Some(Duration::from_secs(5)),
    ) {
        Ok(a) => a,
        Err(e) => return not_running(data_dir, &e),
    };
    let ready = answer["worker"]["state"] == "ready";
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
    match control::request(&data_dir.supervisor_sock(), "restart", None) {
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

fn update(data_dir: &DataDir) -> i32 {
    match control::request(&data_dir.supervisor_sock(), "update", None) {
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
