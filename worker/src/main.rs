//! `worker`: serves the session store in the foreground. See the README.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shared::config;
use shared::paths::DataDir;
use worker::call::{call, CallOp};
use worker::limits;
use worker::listener::Inherited;
use worker::store::StoreOptions;
use worker::{exit, run, Config};

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

    /// Write a snapshot once the journal exceeds this many bytes (and twice the last snapshot's size)
    #[arg(long, value_name = "BYTES", default_value_t = StoreOptions::default().compact_min_bytes)]
    compact_min_bytes: u64,

    /// Most client connections served at once (lowered to fit the open-file limit)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,

    /// Request bytes all connections together may buffer beyond 8 KiB each; over it, large requests wait their turn
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_REQUEST_BUDGET,
          value_parser = budget_bytes)]
    request_budget_bytes: u64,

    /// Close a connection that has not finished its next request line for this long
    #[arg(long, value_name = "MS", default_value_t = limits::DEFAULT_IDLE_TIMEOUT_MS,
          value_parser = positive_ms)]
    idle_timeout_ms: u64,

    /// Close a connection whose client reads none of its answers for this long
    #[arg(long, value_name = "MS", default_value_t = limits::DEFAULT_WRITE_TIMEOUT_MS,
          value_parser = positive_ms)]
    write_timeout_ms: u64,

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
}

fn main() -> ExitCode {
    // First, so that every path (serving or `call`) has the raised limit;
    // logged once logging is set up.
    let open_files = shared::fdlimit::raise();
    let cli = Cli::parse();
    let data_dir = match config::data_dir(cli.data_dir) {
        Ok(d) => DataDir::new(d),
        Err(e) => return fail_config(e),
    };
    if let Some(Command::Call { op }) = cli.command {
        return code(call(&data_dir.worker_sock(), op));
    }
    let filter = match config::log_filter() {
        Ok(f) => f,
        Err(e) => return fail_config(e),
    };
    // Read inherited fds before any thread exists: it edits the environment.
    let inherited = match Inherited::from_env() {
        Ok(i) => i,
        Err(e) => {
            say(&format!("worker: {e}"));
            return code(exit::CONFIG);
        }
    };
    shared::logging::init_stderr(&filter);
    open_files.log();
    if let Some(d) = shared::sync::bench_delay() {
        tracing::warn!(
            delay_us = d.as_micros() as u64,
            "{} is set: every sync is held longer, as on a slow disk (for benchmarks only)",
            shared::sync::BENCH_DELAY_ENV
        );
    }
    let config = Config {
        data_dir,
        store: StoreOptions {
            compact_min_bytes: cli.compact_min_bytes,
            ..StoreOptions::default()
        },
        max_connections: cli.max_connections.max(1),
        open_files: open_files.soft,
        drain_timeout: Duration::from_secs(3),
        request_budget: cli.request_budget_bytes,
        idle_timeout: Duration::from_millis(cli.idle_timeout_ms),
        write_timeout: Duration::from_millis(cli.write_timeout_ms),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("worker: cannot start the async runtime: {e}"));
            return code(exit::FAILURE);
        }
    };
    match runtime.block_on(run(config, inherited)) {
        Ok(()) => code(exit::OK),
        Err(e) => {
            tracing::error!("{e}");
            say(&format!("worker: {e}"));
            code(e.exit_code())
        }
    }
}

/// A duration flag: whole milliseconds, at least 1.
fn positive_ms(raw: &str) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(ms) if ms >= 1 => Ok(ms),
        _ => Err("expected a whole number of milliseconds, at least 1".into()),
    }
}

/// `--request-budget-bytes`: room for at least one request of the largest size.
fn budget_bytes(raw: &str) -> Result<u64, String> {
    let min = limits::LARGE_REQUEST as u64;
    match raw.trim().parse::<u64>() {
        Ok(bytes) if bytes >= min => Ok(bytes),
        _ => Err(format!(
            "expected a whole number of bytes, at least {min} (room for one request of the \
             largest size)"
        )),
    }
}

fn fail_config(e: config::ConfigError) -> ExitCode {
    say(&format!("worker: {e}"));
    code(config::EXIT_CONFIG)
}

fn code(c: i32) -> ExitCode {
    ExitCode::from(c as u8)
}

/// A line on stderr that never panics (stderr may be a closed pipe).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
