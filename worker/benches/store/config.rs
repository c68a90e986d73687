//! The bench's knobs: flags after `--`, or environment variables (the
//! table at the top of `store.rs`), parsed by clap.

use super::*;

/// The bench's knobs. Each is a flag after `--` or an environment
/// variable; the flag wins (clap's order: flag, environment, default).
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "store bench",
    about = "Durable upserts per second, side by side; see the top of worker/benches/store.rs"
)]
pub(crate) struct Config {
    /// Measured seconds per cell.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 3.0, value_parser = positive_seconds)]
    pub(crate) seconds: f64,
    /// Unmeasured seconds before each slice.
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 0.3, value_parser = seconds)]
    pub(crate) warmup: f64,
    /// Live sessions, a comma-separated list.
    #[arg(long, env = "BENCH_SIZES", value_delimiter = ',', default_values_t = [1_000, 100_000],
          value_parser = positive)]
    pub(crate) sizes: Vec<usize>,
    /// Concurrent writers, a comma-separated list.
    #[arg(long, env = "BENCH_WRITERS", value_delimiter = ',', default_values_t = [1, 8, 32],
          value_parser = positive)]
    pub(crate) writers: Vec<usize>,
    /// Slices a cell's time is split into, designs interleaved.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 3, value_parser = positive)]
    pub(crate) rounds: usize,
    /// Writes of the naive design per slice, at 10,000 sessions and more.
    #[arg(long, env = "BENCH_NAIVE_MAX_WRITES", default_value_t = 3, value_parser = positive_u64)]
    pub(crate) naive_max_writes: u64,
    /// Restores measured; the median is reported.
    #[arg(long, env = "BENCH_RESTORE_REPS", default_value_t = 3, value_parser = positive)]
    pub(crate) restore_reps: usize,
    /// Where the bench's data directories go.
    #[arg(long, env = "BENCH_TMPDIR", default_value = "/tmp")]
    pub(crate) tmpdir: PathBuf,
    /// Which part to run.
    #[arg(long, env = "BENCH_ONLY", value_enum, default_value_t = Only::All)]
    pub(crate) only: Only,
    /// Milliseconds added to every flush by the flush model (`flush.rs`);
    /// 0 = the real disk alone. A comma-separated list.
    #[arg(long, env = "BENCH_FLUSH_DELAYS", value_delimiter = ',', default_value = "17",
          value_parser = delay_ms)]
    pub(crate) flush_delays: Vec<Duration>,
    /// How the flush model slows the flushes down.
    #[arg(long, env = "BENCH_FLUSH_INJECT", value_enum, default_value_t = Inject::Hook)]
    pub(crate) flush_inject: Inject,
    /// `cargo bench` passes `--bench` to benches without a harness.
    #[arg(long = "bench", hide = true)]
    pub(crate) cargo_bench: bool,
}

/// How the flush model slows every flush down (`flush.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Inject {
    /// The programs hold the syncing thread after each sync themselves
    /// (`shared::sync::bench_pause`).
    Hook,
    /// strace holds it (`delay_exit`), Linux-only.
    Strace,
}

/// Which parts of the bench a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Only {
    All,
    /// The designs table, the disk baselines and the restore.
    Designs,
    /// The flush-latency model.
    Flush,
}

fn seconds(v: &str) -> Result<f64, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("{v:?} is not a number of seconds"))
}

fn positive_seconds(v: &str) -> Result<f64, String> {
    seconds(v)
        .ok()
        .filter(|s| *s > 0.0)
        .ok_or_else(|| "the measured time per cell must be above 0 seconds".to_string())
}

fn positive_u64(v: &str) -> Result<u64, String> {
    v.trim()
        .replace('_', "")
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{v:?} is not a positive number"))
}

fn positive(v: &str) -> Result<usize, String> {
    positive_u64(v).map(|n| n as usize)
}

fn delay_ms(v: &str) -> Result<Duration, String> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|ms| ms.is_finite() && (0.0..=10_000.0).contains(ms))
        .map(|ms| Duration::from_micros((ms * 1000.0).round() as u64))
        .ok_or_else(|| {
            format!("{v:?} is not a number of milliseconds (0 to 10000; 0 = the real disk alone)")
        })
}

impl Config {
    /// One of the `rounds` stretches a cell's time is split into.
    pub(crate) fn slice(&self) -> Slice {
        Slice {
            warmup: Duration::from_secs_f64(self.warmup),
            measured: Duration::from_secs_f64(self.seconds / self.rounds as f64),
        }
    }

    /// The knobs of this run, or why they do not parse.
    pub(crate) fn from_env_and_args() -> Result<Config, String> {
        let mut cfg = match <Config as clap::Parser>::try_parse() {
            Ok(cfg) => cfg,
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => e.exit(),
            Err(e) => return Err(e.to_string()),
        };
        // Each delay is one worker and one data dir.
        cfg.flush_delays.sort();
        cfg.flush_delays.dedup();
        Ok(cfg)
    }
}
