use super::*;

pub(crate) struct Config {
    pub(crate) pushes: usize,
    pub(crate) swaps: usize,
    pub(crate) clients: usize,
    pub(crate) pace: Duration,
    pub(crate) swap_gap: Duration,
    pub(crate) noop_polls: usize,
    pub(crate) probation_ms: u64,
    pub(crate) fsync_probe: Duration,
    pub(crate) deploy_load: bool,
    pub(crate) staging: Option<PathBuf>,
    pub(crate) tmpdir: PathBuf,
    pub(crate) keep: bool,
    /// Where the client records go (the temp dir, when it is kept).
    pub(crate) dump: Option<PathBuf>,
}

impl Config {
    pub(crate) fn from_env() -> Config {
        Config {
            pushes: env_usize("BENCH_PUSHES", 3).max(1),
            swaps: env_usize("BENCH_SWAPS", 20).max(1),
            clients: env_usize("BENCH_CLIENTS", 8).max(1),
            pace: Duration::from_millis(env_usize("BENCH_PACE_MS", 2) as u64),
            swap_gap: Duration::from_millis(env_usize("BENCH_SWAP_GAP_MS", 1000).max(500) as u64),
            noop_polls: env_usize("BENCH_NOOP_POLLS", 20).max(1),
            probation_ms: env_usize("BENCH_PROBATION_MS", 3000) as u64,
            fsync_probe: Duration::from_millis(env_usize("BENCH_FSYNC_PROBE_MS", 5000) as u64),
            deploy_load: env_usize("BENCH_DEPLOY_LOAD", 1) != 0,
            staging: std::env::var_os("BENCH_STAGING").map(PathBuf::from),
            tmpdir: bench_tmpdir(),
            keep: env_usize("BENCH_KEEP", 0) != 0,
            dump: None,
        }
    }
}
