//! `worker`: serves the session store in the foreground. See the README.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use shared::paths::DataDir;
use shared::{completions, config};
use worker::call::{call, CallOp};
use worker::startup::{self, ServeArgs};

#[derive(Parser)]
#[command(
    name = "worker",
    version = shared::version::VERSION_AND_COMMIT,
    about = "The second-brain worker: a durable session store on a Unix socket.",
    long_about = "The second-brain worker: a durable session store on a Unix socket.\n\n\
        Without a subcommand it serves in the foreground, logging to stderr, until \
        SIGTERM or SIGINT. SIGUSR1 writes sessions.json while it keeps serving."
)]
struct Cli {
    /// Data directory [env: SECOND_BRAIN_DATA_DIR] [default: ~/.second-brain]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<OsString>,

    #[command(flatten)]
    serve: ServeArgs,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Call one session op on the running worker and print the JSON answer
    /// (exit 0 if ok, 1 on an error answer, 3 if no worker answers).
    Call {
        #[command(subcommand)]
        op: CallOp,
    },
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

fn main() -> ExitCode {
    // First, so that every path (serving or `call`) has the raised limit;
    // logged once logging is set up.
    let open_files = shared::fdlimit::raise();
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Completions { shell }) => {
            return code(completions::print(*shell, Cli::command(), "worker"))
        }
        Some(Command::Man { dir }) => {
            return code(completions::man(Cli::command(), "worker", dir.as_deref()))
        }
        _ => {}
    }
    let data_dir = match config::data_dir(cli.data_dir) {
        Ok(d) => DataDir::new(d),
        Err(e) => return fail_config(e),
    };
    if let Some(Command::Call { op }) = cli.command {
        return code(call(&data_dir.worker_sock(), op));
    }
    code(startup::serve(data_dir, cli.serve, open_files))
}

fn fail_config(e: config::ConfigError) -> ExitCode {
    startup::say(&format!("worker: {e}"));
    code(config::EXIT_CONFIG)
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(c as u8)
}
