//! Restarts, memory and status, side by side in one run:
//!
//! - (a) crash path: the time from SIGKILL of the worker to the first
//!   answer from the NEW worker, and the connections refused meanwhile
//!   (ECONNREFUSED/ENOENT on connect), for
//!   1. our supervisor (`supervisor run --poll-interval-ms 0 --worker-bin
//!      <worker>`: the listening socket stays bound in the supervisor), and
//!   2. the baseline: a naive process manager that starts `worker
//!      --data-dir <dir>` (which binds its own `worker.sock`), notices its
//!      death with `waitpid` and starts it again at once.
//!
//!   A client thread connects in a tight loop, one `{"op":"ping"}` per
//!   connection; the sample ends at the first answer carrying a new pid.
//!
//!   The supervisor's backoff restarts at once only after a worker that was
//!   ready for 10 s (then 100 ms, 200 ms, 400 ms…). So that every crash
//!   sample measures the restart mechanism and not the backoff, the crash
//!   samples go round-robin over a pool of supervisors, and each one's
//!   worker is killed only once it has been ready for more than 10 s.
//!   The backoff itself is reported on its own row: a few kills in a row on
//!   one supervisor, each as soon as the previous restart is ready.
//!
//!   Then graceful restarts: the wall time of `supervisor restart` and the
//!   refused connections under the same client loop, next to the naive
//!   SIGTERM, `waitpid`, start-again of the baseline.
//! - (b) the supervisor's RSS when idle and after `BENCH_RESTARTS`
//!   worker restarts (graceful, sent on the control socket exactly as
//!   `supervisor restart` sends them, with the client loop still running).
//!   RSS comes from `ps` (Linux and macOS); its split into anonymous and
//!   file-backed pages comes from `/proc` and is Linux-only.
//! - (c) the wall time of `supervisor status --json` and `supervisor status`,
//!   each run a fresh process.
//!
//! Run: `cargo bench -p supervisor --bench restart`. Each knob is an
//! environment variable or the same name as a flag after `--`
//! (`-- --help` lists them):
//!
//! | env                 | default | what                                        |
//! |---------------------|---------|---------------------------------------------|
//! | `BENCH_SAMPLES`     | 30      | crash samples, ours and baseline each       |
//! | `BENCH_POOL`        | 10      | supervisors the crash samples go round over |
//! | `BENCH_RAPID`       | 6       | kills in a row for the backoff row          |
//! | `BENCH_GRACEFUL`    | 30      | `supervisor restart` samples                |
//! | `BENCH_RESTARTS`    | 1000    | restarts before the second RSS reading      |
//! | `BENCH_STATUS_RUNS` | 200     | runs of each status command                 |
//! | `BENCH_TMPDIR`      | /tmp    | where the data directories go               |
//! | `BENCH_KEEP`        | 0       | 1 keeps them, with the supervisors' logs    |
//!
//! With the defaults the run takes two to three minutes (after the build).

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

mod common;

use common::*;
use harness::launch::clean_env;
use harness::supervisor::{control, Launch, Supervisor};
use harness::{Bins, Conn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The supervisor's `stable_after` (fixed in `main.rs`): a worker ready
/// this long resets the backoff, so its next crash restarts at once.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Waited on top of it; our "ready" is seen after the supervisor's.
const STABLE_MARGIN: Duration = Duration::from_millis(300);
/// Answers from the old worker before a kill (the loop is warm).
const WARM_ANSWERS: u64 = 20;

const TARGET_CRASH_MS: f64 = 10.0;
const TARGET_RSS_KIB: u64 = 4 * 1024;
const TARGET_STATUS_MS: f64 = 6.0;
/// RSS rising by at most this much between the first quarter of the
/// restarts and the end counts as no growth (allocator noise).
const GROWTH_TOLERANCE_KIB: u64 = 64;

// ---------------------------------------------------------------- config

#[path = "restart/config.rs"]
mod config;
use config::*;

// ---------------------------------------------------------------- stats

#[path = "restart/stats.rs"]
mod stats;
use stats::*;

// ---------------------------------------------------------------- client

#[path = "restart/client.rs"]
mod client;
use client::*;

// ---------------------------------------------------------------- ours

#[path = "restart/ours.rs"]
mod ours;
use ours::*;

// ---------------------------------------------------------------- baseline

#[path = "restart/baseline.rs"]
mod baseline;
use baseline::*;

// ---------------------------------------------------------------- phases

#[path = "restart/phases.rs"]
mod phases;
use phases::*;

// ---------------------------------------------------------------- table

#[path = "restart/table.rs"]
mod table;
use table::*;

fn main() {
    // The knobs: BENCH_* or flags after `--` (`-- --help` lists them).
    let cfg = Config::from_env();
    let bins = Bins::beside(PathBuf::from(env!("CARGO_BIN_EXE_supervisor")));
    let mut tmp = tempfile::Builder::new()
        .prefix("supervisor-bench-")
        .tempdir_in(&cfg.tmpdir)
        .expect("create a temp dir");
    if cfg.keep {
        tmp.disable_cleanup(true);
    }
    println!(
        "{} CPUs, load average {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!(
        "samples {}, pool {}, rapid {}, graceful {}, restarts {}, status runs {}, in {}",
        cfg.samples,
        cfg.pool,
        cfg.rapid,
        cfg.graceful,
        cfg.restarts,
        cfg.status_runs,
        tmp.path().display()
    );
    let mut r = Results {
        idle_rss: Vec::new(),
        crash_ours: Vec::new(),
        crash_delays: Vec::new(),
        crash_naive: Vec::new(),
        rapid: Vec::new(),
        graceful_wall: Vec::new(),
        graceful_ours: Vec::new(),
        graceful_naive: Vec::new(),
        restart_rss: Vec::new(),
        restart_request_ms: Vec::new(),
        restart_counts: Counts::default(),
        restarts_took: Duration::ZERO,
        status_json_ms: Vec::new(),
        status_text_ms: Vec::new(),
        load: (loadavg(), String::new()),
    };

    // The pool for the crash samples, plus one supervisor for the kills in
    // a row. All start now so that they are stable by the time they are used.
    let mut pool: Vec<Ours> = (0..cfg.pool)
        .map(|i| Ours::spawn(&bins, &tmp.path().join(format!("sup{i}"))))
        .collect();
    let mut rapid_sup = Ours::spawn(&bins, &tmp.path().join("rapid"));
    for sup in pool.iter_mut().chain(std::iter::once(&mut rapid_sup)) {
        sup.wait_ready();
    }
    thread::sleep(Duration::from_millis(500));
    r.idle_rss = pool.iter().map(Ours::rss).collect();
    println!("idle supervisor RSS: {}", r.idle_rss[0]);

    // While the pool's workers become stable: the baseline, then status.
    baseline(&bins, tmp.path(), &cfg, &mut r);
    status_timing(&pool[0], &cfg, &mut r);

    crash_ours(&mut pool, &cfg, &mut r);
    rapid(&mut rapid_sup, &cfg, &mut r);
    drop(rapid_sup);
    graceful(&mut pool[0], &cfg, &mut r);
    many_restarts(&mut pool[0], &cfg, &mut r);

    drop(pool);
    r.load.1 = loadavg();
    table(&cfg, &r);
}
