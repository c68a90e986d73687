use super::*;

pub(crate) struct Config {
    pub(crate) samples: usize,
    pub(crate) pool: usize,
    pub(crate) rapid: usize,
    pub(crate) graceful: usize,
    pub(crate) restarts: usize,
    pub(crate) status_runs: usize,
    pub(crate) tmpdir: PathBuf,
    /// Keep the data and log directories (`BENCH_KEEP=1`).
    pub(crate) keep: bool,
}

impl Config {
    pub(crate) fn from_env() -> Config {
        Config {
            samples: env_usize("BENCH_SAMPLES", 30).max(1),
            pool: env_usize("BENCH_POOL", 10).max(1),
            rapid: env_usize("BENCH_RAPID", 6).max(1),
            graceful: env_usize("BENCH_GRACEFUL", 30).max(1),
            restarts: env_usize("BENCH_RESTARTS", 1000).max(4),
            status_runs: env_usize("BENCH_STATUS_RUNS", 200).max(1),
            tmpdir: bench_tmpdir(),
            keep: env_usize("BENCH_KEEP", 0) != 0,
        }
    }
}
