//! The update bench's knobs: flags after `--`, or environment variables,
//! parsed by clap (flag, then environment, then default).

use super::*;

#[derive(clap::Parser)]
#[command(
    name = "update bench",
    about = "Push to serving, hot swaps under load, and no-op polls of the supervisor's updater"
)]
pub(crate) struct Config {
    /// Real deploys measured (at least 1).
    #[arg(long, env = "BENCH_PUSHES", default_value_t = 3, value_parser = whole)]
    pub(crate) pushes: usize,
    /// `supervisor restart` swaps under load (at least 1).
    #[arg(long, env = "BENCH_SWAPS", default_value_t = 20, value_parser = whole)]
    pub(crate) swaps: usize,
    /// Clients sending requests meanwhile (at least 1).
    #[arg(long, env = "BENCH_CLIENTS", default_value_t = 8, value_parser = whole)]
    pub(crate) clients: usize,
    /// Milliseconds each client waits between requests.
    #[arg(long = "pace-ms", env = "BENCH_PACE_MS", default_value = "2", value_parser = millis)]
    pub(crate) pace: Duration,
    /// Milliseconds between swaps (at least 500).
    #[arg(long = "swap-gap-ms", env = "BENCH_SWAP_GAP_MS", default_value = "1000",
          value_parser = millis)]
    pub(crate) swap_gap: Duration,
    /// No-op polls measured (at least 1).
    #[arg(long, env = "BENCH_NOOP_POLLS", default_value_t = 20, value_parser = whole)]
    pub(crate) noop_polls: usize,
    /// `--probation-ms` of the supervisor under test.
    #[arg(long, env = "BENCH_PROBATION_MS", default_value_t = 3000, value_parser = whole_u64)]
    pub(crate) probation_ms: u64,
    /// Milliseconds of bare fdatasync probes of the data dir's disk.
    #[arg(long = "fsync-probe-ms", env = "BENCH_FSYNC_PROBE_MS", default_value = "5000",
          value_parser = millis)]
    pub(crate) fsync_probe: Duration,
    /// Clients on during the real deploys (0 turns them off).
    #[arg(long, env = "BENCH_DEPLOY_LOAD", default_value = "1", value_parser = nonzero,
          action = clap::ArgAction::Set)]
    pub(crate) deploy_load: bool,
    /// A staging directory to keep warm between runs.
    #[arg(long, env = "BENCH_STAGING")]
    pub(crate) staging: Option<PathBuf>,
    /// Where the bench's directories go: short, so that socket paths fit.
    #[arg(long, env = "BENCH_TMPDIR", default_value = "/tmp")]
    pub(crate) tmpdir: PathBuf,
    /// Keep the data and log directories (1 keeps them).
    #[arg(long, env = "BENCH_KEEP", default_value = "0", value_parser = nonzero,
          action = clap::ArgAction::Set)]
    pub(crate) keep: bool,
    /// Where the client records go (the temp dir, when it is kept).
    #[arg(skip)]
    pub(crate) dump: Option<PathBuf>,
    /// `cargo bench` passes `--bench` to benches without a harness.
    #[arg(long = "bench", hide = true)]
    pub(crate) cargo_bench: bool,
}

impl Config {
    /// The knobs of this run (clap exits with status 2 on a bad one).
    pub(crate) fn from_env() -> Config {
        let mut cfg = <Config as clap::Parser>::parse();
        cfg.pushes = cfg.pushes.max(1);
        cfg.swaps = cfg.swaps.max(1);
        cfg.clients = cfg.clients.max(1);
        cfg.swap_gap = cfg.swap_gap.max(Duration::from_millis(500));
        cfg.noop_polls = cfg.noop_polls.max(1);
        cfg
    }
}
