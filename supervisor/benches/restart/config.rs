//! The restart bench's knobs: flags after `--`, or environment variables,
//! parsed by clap (flag, then environment, then default).

use super::*;

#[derive(clap::Parser)]
#[command(
    name = "restart bench",
    about = "Crash restarts, graceful restarts, memory and status of the supervisor, beside a naive respawn"
)]
pub(crate) struct Config {
    /// Crash restarts measured (at least 1).
    #[arg(long, env = "BENCH_SAMPLES", default_value_t = 30, value_parser = whole)]
    pub(crate) samples: usize,
    /// Supervisors the crashes rotate over (at least 1).
    #[arg(long, env = "BENCH_POOL", default_value_t = 10, value_parser = whole)]
    pub(crate) pool: usize,
    /// Kills in a row, each as soon as the restart is ready (at least 1).
    #[arg(long, env = "BENCH_RAPID", default_value_t = 6, value_parser = whole)]
    pub(crate) rapid: usize,
    /// `supervisor restart` runs measured (at least 1).
    #[arg(long, env = "BENCH_GRACEFUL", default_value_t = 30, value_parser = whole)]
    pub(crate) graceful: usize,
    /// Restarts for the memory measure (at least 4).
    #[arg(long, env = "BENCH_RESTARTS", default_value_t = 1000, value_parser = whole)]
    pub(crate) restarts: usize,
    /// `supervisor status` runs measured (at least 1).
    #[arg(long, env = "BENCH_STATUS_RUNS", default_value_t = 200, value_parser = whole)]
    pub(crate) status_runs: usize,
    /// Where the bench's directories go: short, so that socket paths fit.
    #[arg(long, env = "BENCH_TMPDIR", default_value = "/tmp")]
    pub(crate) tmpdir: PathBuf,
    /// Keep the data and log directories (1 keeps them).
    #[arg(long, env = "BENCH_KEEP", default_value = "0", value_parser = nonzero,
          action = clap::ArgAction::Set)]
    pub(crate) keep: bool,
    /// `cargo bench` passes `--bench` to benches without a harness.
    #[arg(long = "bench", hide = true)]
    pub(crate) cargo_bench: bool,
}

impl Config {
    /// The knobs of this run (clap exits with status 2 on a bad one).
    pub(crate) fn from_env() -> Config {
        let mut cfg = <Config as clap::Parser>::parse();
        cfg.samples = cfg.samples.max(1);
        cfg.pool = cfg.pool.max(1);
        cfg.rapid = cfg.rapid.max(1);
        cfg.graceful = cfg.graceful.max(1);
        cfg.restarts = cfg.restarts.max(4);
        cfg.status_runs = cfg.status_runs.max(1);
        cfg
    }
}
