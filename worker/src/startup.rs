//! `worker` serving in the foreground, up to the async runtime: its flags,
//! the handed-over fds read before any thread exists, logging, then
//! [`crate::run`] until a stop signal.

use std::time::Duration;

use clap::Args;
use shared::config;
use shared::fdlimit::FdLimit;
use shared::paths::DataDir;

use crate::limits;
use crate::listener::Inherited;
use crate::store::StoreOptions;
use crate::{exit, run, Config};

/// The flags of `worker` serving (its README table).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Write a snapshot once the journal exceeds this many bytes (and twice the last snapshot's size)
    #[arg(long, value_name = "BYTES", default_value_t = StoreOptions::default().compact_min_bytes)]
    pub compact_min_bytes: u64,

    /// Most client connections served at once (lowered to fit the open-file limit)
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Request bytes all connections together may buffer beyond 8 KiB each; over it, large requests wait their turn
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_REQUEST_BUDGET,
          value_parser = budget_bytes)]
    pub request_budget_bytes: u64,

    /// Close a connection that has not finished its next request line for this long
    #[arg(long, value_name = "MS", default_value_t = limits::DEFAULT_IDLE_TIMEOUT_MS,
          value_parser = positive_ms)]
    pub idle_timeout_ms: u64,

    /// Close a connection whose client reads none of its answers for this long
    #[arg(long, value_name = "MS", default_value_t = limits::DEFAULT_WRITE_TIMEOUT_MS,
          value_parser = positive_ms)]
    pub write_timeout_ms: u64,
}

/// Serves until SIGTERM or SIGINT; returns the exit status.
pub fn serve(data_dir: DataDir, args: ServeArgs, open_files: FdLimit) -> i32 {
    let filter = match config::log_filter() {
        Ok(f) => f,
        Err(e) => {
            say(&format!("worker: {e}"));
            return config::EXIT_CONFIG;
        }
    };
    // Read inherited fds before any thread exists: it edits the environment.
    let inherited = match Inherited::from_env() {
        Ok(i) => i,
        Err(e) => {
            say(&format!("worker: {e}"));
            return exit::CONFIG;
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
            compact_min_bytes: args.compact_min_bytes,
            ..StoreOptions::default()
        },
        max_connections: args.max_connections.max(1),
        open_files: open_files.soft,
        drain_timeout: Duration::from_secs(3),
        request_budget: args.request_budget_bytes,
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        write_timeout: Duration::from_millis(args.write_timeout_ms),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("worker")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say(&format!("worker: cannot start the async runtime: {e}"));
            return exit::FAILURE;
        }
    };
    match runtime.block_on(run(config, inherited)) {
        Ok(()) => exit::OK,
        Err(e) => {
            tracing::error!("{e}");
            say(&format!("worker: {e}"));
            e.exit_code()
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

/// A line on stderr that never panics (stderr may be a closed pipe).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
