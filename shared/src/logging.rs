//! Tracing setup: human-readable lines on stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the stderr subscriber with `filter` (already validated).
pub fn init_stderr(filter: &str) {
    let filter = EnvFilter::builder()
        .parse(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never into log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // When stderr is gone (its reader died), logging must not stop the
        // process: tracing would otherwise report the failure with
        // eprintln!, which panics on a broken pipe.
        .log_internal_errors(false)
        .try_init();
}
