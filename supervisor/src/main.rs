//! `supervisor`: keeps one second-brain worker serving. See the README.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use shared::completions;
use shared::config::{self, ConfigError};
use shared::paths::DataDir;
use supervisor::doctor::DoctorArgs;
use supervisor::logs::view::LogsArgs;
use supervisor::startup::RunArgs;
use supervisor::{commands, doctor, install, startup};

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
    /// Print the service's log lines, both processes in time order (-f: and new ones); works while it is stopped
    Logs(LogsArgs),
    /// Replace the worker with a fresh one without refusing a connection
    Restart,
    /// Poll git now and apply what is found; prints the outcome
    Update {
        /// Also try again the commits held after a failure
        #[arg(long)]
        retry: bool,
    },
    /// Start the installed service through its manager
    Start(ServiceArgs),
    /// Stop the installed service through its manager and wait until the worker has saved its sessions; it stays installed
    Stop(ServiceArgs),
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
    /// Check the installed service, one line each (exit 0 all pass, 1 otherwise)
    Doctor(DoctorArgs),
    /// Print a completion script for bash, zsh or fish (see the README)
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print the manual page, or write one per command to --dir (see the README)
    Man {
        /// Write NAME.1 and one NAME-COMMAND.1 per command into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ServiceArgs {
    /// Print the files and commands instead of writing and running them
    #[arg(long)]
    dry_run: bool,
    /// Service manager [default: launchd on macOS, systemd elsewhere]
    #[arg(long, value_enum)]
    manager: Option<install::Manager>,
}

fn main() -> ExitCode {
    // Files and sockets are private from their first byte.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // The worker, git and cargo inherit the raised limit; `run` logs it.
    let open_files = shared::fdlimit::raise();
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => {
            return ExitCode::from(completions::print(*shell, Cli::command(), "supervisor") as u8)
        }
        Command::Man { dir } => {
            return ExitCode::from(
                completions::man(Cli::command(), "supervisor", dir.as_deref()) as u8,
            )
        }
        _ => {}
    }
    let data_dir_flag = cli.data_dir.clone();
    let data_dir = match config::data_dir(cli.data_dir) {
        Ok(d) => DataDir::new(d),
        Err(e) => return config_error(e),
    };
    let service = |args: ServiceArgs, worker_bin, action| {
        let opts = install::Options {
            manager: args.manager,
            dry_run: args.dry_run,
            worker_bin,
        };
        commands::service(&data_dir, &opts, action)
    };
    let status = match cli.command {
        Command::Run(args) => startup::run(data_dir.clone(), args, open_files),
        Command::Status { json } => commands::status(&data_dir, json),
        Command::Restart => commands::restart(&data_dir),
        Command::Update { retry } => commands::update(&data_dir, retry),
        Command::Install {
            service: args,
            worker_bin,
        } => service(args, worker_bin, install::install),
        Command::Uninstall(args) => service(args, None, install::uninstall),
        Command::Start(args) => service(args, None, install::start),
        Command::Stop(args) => service(args, None, install::stop),
        Command::Completions { .. } | Command::Man { .. } => {
            unreachable!("handled before the data dir")
        }
        Command::Doctor(args) => doctor::run(data_dir_flag, args, &open_files),
        Command::Logs(args) => supervisor::logs::view::run(args),
    };
    ExitCode::from(status as u8)
}

fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("supervisor: {e}");
    ExitCode::from(config::EXIT_CONFIG as u8)
}
