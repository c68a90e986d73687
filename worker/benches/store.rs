//! Durable upserts per second, side by side in one run:
//!
//! - (a) our store in-process (`Store::put`: journal + group commit);
//! - (b) SQLite in WAL mode with `synchronous=FULL`, in-process, behind the
//!   same single batching writer as ours (one thread drains every pending
//!   upsert, one transaction, one commit, then answers them all);
//! - (c) the naive design: rewrite the whole `sessions.json` atomically
//!   (temp file, write, fsync, rename, fsync dir) on every write;
//! - (d) ours end to end: the real worker binary, N client connections
//!   doing request/response puts on its Unix socket.
//!
//! Each at 1, 8 and 32 concurrent writers and at 1,000 and 100,000 live
//! sessions of ~1 KB; the keys written are spread uniformly over the live
//! sessions (upserts of existing ids). Then the time to restore the largest
//! store and answer the first request, next to a bare
//! `serde_json::from_slice::<serde_json::Value>` of the same snapshot, and
//! two plain fdatasync loops as the disk's baseline.
//!
//! Then the flush-latency model (`flush.rs`): (d) and (b) again, at the
//! smallest size, with every flush made slower by an injected delay (17 ms
//! is a Mac's `F_FULLFSYNC`), reporting writes per flush and the share of
//! the ideal group commit. Linux-only for delays above 0 (it uses strace).
//!
//! Run: `cargo bench -p worker --bench store`
//!
//! Environment variables (or flags after `--`, which win) shape a run;
//! `cargo bench -p worker --bench store -- --help` lists them:
//!
//! | env                      | flag                   | default                              |
//! |--------------------------|------------------------|--------------------------------------|
//! | `BENCH_SECONDS`          | `--seconds S`          | 3 (measured seconds per cell)        |
//! | `BENCH_ROUNDS`           | `--rounds N`           | 3 (a cell's time is split into N     |
//! |                          |                        | slices, designs interleaved)         |
//! | `BENCH_WARMUP`           | `--warmup S`           | 0.3 (unmeasured, before each slice)  |
//! | `BENCH_SIZES`            | `--sizes A,B`          | 1000,100000                          |
//! | `BENCH_WRITERS`          | `--writers A,B,C`      | 1,8,32                               |
//! | `BENCH_NAIVE_MAX_WRITES` | `--naive-max-writes N` | 3 per slice, at >= 10,000 sessions   |
//! | `BENCH_RESTORE_REPS`     | `--restore-reps N`     | 3 (the median is reported)           |
//! | `BENCH_TMPDIR`           | `--tmpdir DIR`         | /tmp                                 |
//! | `BENCH_ONLY`             | `--only PART`          | all; `designs` (the table, baselines |
//! |                          |                        | and restore) or `flush` (the model)  |
//! | `BENCH_FLUSH_DELAYS`     | `--flush-delays A,B`   | 17 (ms added to every flush; 0 = the |
//! |                          |                        | real disk alone)                     |
//! | `BENCH_FLUSH_INJECT`     | `--flush-inject HOW`   | hook (each program holds its thread  |
//! |                          |                        | after each sync) or strace           |
//!
//! Every cell's time is split into `rounds` slices and, within a round, all
//! sizes and designs take their turn before the next round starts, so a
//! busy neighbour or a slow stretch of the disk hits every cell alike.
//!
//! After each slice of ours (in-process or through the worker) the bench
//! waits for a checkpoint the slice started to finish and counts that wait
//! in ours' time, so a snapshot written in the background never lands on
//! the next design's clock.
//!
//! e.g. `BENCH_SECONDS=1 BENCH_SIZES=1000 cargo bench -p worker --bench store`,
//! or the flush model alone at three flush times:
//! `BENCH_ONLY=flush BENCH_FLUSH_DELAYS=0,2,17 BENCH_SIZES=1000 cargo bench -p worker --bench store`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::Worker;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::value::RawValue;
use shared::client::Client;
use shared::paths::DataDir;
use shared::protocol::Session;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use worker::store::{snapshot, Store, StoreOptions};

#[path = "store/baselines.rs"]
mod baselines;
#[path = "store/config.rs"]
mod config;
#[path = "store/designs.rs"]
mod designs;
#[path = "store/flush.rs"]
mod flush;
#[path = "store/measure.rs"]
mod measure;
#[path = "store/report.rs"]
mod report;
#[path = "store/run.rs"]
mod run;
#[path = "store/setup.rs"]
mod setup;

use baselines::*;
use config::*;
use designs::*;
use measure::*;
use report::*;
use run::*;
use setup::*;

/// Bytes of JSON `data` per session.
const DATA_BYTES: usize = 1000;
/// The most upserts one SQLite commit takes (the same cap as our writer).
const MAX_BATCH: usize = 4096;
/// A journal record for one such session is about this long.
const RECORD_BYTES: usize = 1120;
/// The naive design is time-boxed to a few writes from this size up.
const NAIVE_CAP_FROM: usize = 10_000;

const TARGET_VS_SQLITE: f64 = 1.0;
const TARGET_SCALING: f64 = 0.8;
const TARGET_RESTORE: f64 = 2.0;

fn main() {
    if let Some(child) = flush::child_request() {
        // A process the flush model started (under strace): not a run.
        flush::child_main(child);
        return;
    }
    let cfg = Config::from_env_and_args().unwrap_or_else(|e| {
        eprintln!("store bench: {e}");
        std::process::exit(2);
    });
    if cfg.only != Only::Designs {
        if let Err(e) = flush::preflight(&cfg) {
            eprintln!("store bench: {e}");
            std::process::exit(2);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    std::fs::create_dir_all(&cfg.tmpdir).expect("create the temp dir root");
    let root = tempfile::Builder::new()
        .prefix("store-bench-")
        .tempdir_in(&cfg.tmpdir)
        .expect("a temp dir");
    let base = root.path();
    let log = base.join("worker-stderr.log");
    let started = Instant::now();
    let load_at_start = loadavg();
    eprintln!(
        "store bench: {} s per cell in {} interleaved rounds (+{} s warm-up each), sizes {:?}, writers {:?}, in {}",
        cfg.seconds,
        cfg.rounds,
        cfg.warmup,
        cfg.sizes,
        cfg.writers,
        base.display()
    );
    if cfg.only != Only::Flush {
        run_designs(&cfg, &rt, base, &log, &load_at_start);
    }
    if cfg.only != Only::Designs {
        flush::run(&cfg, &rt, base, &log);
    }
    eprintln!(
        "store bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
