//! The flush-latency model: how well group commit fills slow flushes.
//!
//! On a Mac every acknowledged write waits for `F_FULLFSYNC`, a flush of
//! the drive's cache that takes about 17 ms, so throughput there is group
//! commit's efficiency and nothing else. This part of the bench measures
//! that efficiency on any Linux disk by making every flush slower.
//!
//! Side by side in one run, for each injected delay (`--flush-delays`,
//! 0 = the real disk alone) and each client count N (`--writers`):
//!
//! - (d) the real worker binary, N closed-loop clients on its Unix socket,
//!   each sending its next `put` once the last one is answered;
//! - (b) SQLite WAL `synchronous=FULL` behind the batching writer of
//!   `store.rs`, N closed-loop writers, in a process of its own;
//! - the same worker with one connection pipelining 32 puts (it sends 32,
//!   then reads the 32 answers), whose ideal is 32 writes per flush;
//! - a bare loop of `pwrite` + `fdatasync` of one record, which gives the
//!   flush time T at that delay;
//! - at delay 0 with 1 in `--writers`: one client of three minimal socket
//!   servers and of the worker's `ping`, the floors that one client's put
//!   through the socket is compared with (`flush_floor.rs`).
//!
//! What is reported, per cell:
//!
//! - puts/s over the measured time;
//! - writes per flush = writes ÷ flushes over the slices, warm-ups
//!   included; a flush is one journal commit of the worker (the `commits`
//!   counter of its `stats`, one `fdatasync` each) or one SQLite commit
//!   transaction (one WAL sync each);
//! - the share of the ideal = puts/s ÷ (N ÷ T). N closed-loop clients have
//!   at most N writes waiting, so the best a writer can do is to put all N
//!   in every flush: N writes per T. 1.0 means every flush carried every
//!   client's write and the next flush started as soon as one ended.
//!   T is measured, not assumed, because holding a thread costs a little
//!   more than the delay (see below); "nominal" is the same share with
//!   T = delay + T at 0, comparable with figures taken that way. T and
//!   the cells are measured in different slices, so a disk that stalls in
//!   one of them can push a share above 1.0: that cell is noise;
//! - busy = flushes/s × T: about 1.0 when a flush is always in progress,
//!   so that the share lost is all in how full the flushes are.
//!
//! How the delay is injected, and why that is faithful (`--flush-inject`,
//! default `hook`): every sync of every process that flushes is followed
//! by a sleep of D on the thread that made it, before the sync returns to
//! its caller. The worker does it in `shared::sync` (every journal,
//! snapshot and directory sync goes through it) when
//! `SECOND_BRAIN_BENCH_SYNC_DELAY_US` is set; the bench's own child does
//! it after each sync of its bare loop and after each SQLite commit of
//! its single batching writer. To the program that is a slower flush: the
//! thread that flushes waits in the same place, holding what it holds in
//! a real flush and nothing else, while every other thread (the socket,
//! the clients, the runtime) runs at full speed. The real sync still runs
//! first, so the real disk's cost stays in. SQLite's WAL checkpoint syncs
//! happen inside its library and are not slowed (rare: one checkpoint
//! per ~1,000 pages), which favours SQLite slightly.
//!
//! `strace` (`--flush-inject strace`: `strace -f --seccomp-bpf -e
//! trace=fdatasync,fsync -e inject=fdatasync,fsync:delay_exit=D`) slows
//! every sync without a line changed, and was the first choice. It is not
//! faithful for the worker: strace 6.1 keeps the runtime's threads
//! stopping at every system call (seen with `perf trace` on strace: ~3,000
//! ptrace restarts a second for each of the two tokio threads, and a few
//! per flush for the journal writer), so every socket read and write pays
//! two ptrace stops. With strace and a 1 µs delay the worker through the
//! socket at 32 clients ran 3.2x slower than without strace (42,630 ->
//! 13,323 puts/s), in-process SQLite only 1.5x (50,405 -> 34,207). The
//! round trips of the answered clients are what group commit waits for,
//! so strace understated it most where it matters.
//!
//! What it does not model: a real drive serialises cache flushes, while
//! held syncs here overlap (our snapshot thread's syncs can overlap the
//! writer's); and a sleep overshoots D a little, which is why T is
//! measured with the same injection rather than taken as D.
//!
//! The hook runs anywhere; on a Mac, the 0 ms row is the real
//! `F_FULLFSYNC` itself. strace is Linux-only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::{loadavg, thousands, Acc, CommitStats, Config, Inject, Measured};

#[path = "flush_child.rs"]
mod child;
#[path = "flush_floor.rs"]
mod floor;
#[path = "flush_inject.rs"]
mod inject;
#[path = "flush_lane.rs"]
mod lane;
#[path = "flush_report.rs"]
mod report;

pub use child::{child_main, child_request};
use floor::Floor;
use inject::{delay_label, flushing, usable_delays};
use lane::Lane;
use report::print_report;

/// Puts one connection sends before it reads their answers.
const PIPELINE: usize = 32;

/// Set (to `SESSIONS:DIR`) in the environment of the process the model
/// starts for (b) and the bare loop: the bench binary itself.
const CHILD_ENV: &str = "STORE_BENCH_FLUSH_CHILD";

/// Size of the bare loop's preallocated file.
const BARE_FILE: u64 = 8 << 20;

// ---------------------------------------------------------------- run

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Socket(usize),
    Sqlite(usize),
    Pipelined,
    /// One client of a floor server in the child (`flush_floor.rs`).
    Floor(Floor),
    /// One client pinging the worker.
    Ping,
}

/// Checks, before anything is measured, that the model can run here.
pub fn preflight(cfg: &Config) -> Result<(), String> {
    usable_delays(cfg).map(drop)
}

/// Runs the model and prints its report on stdout.
pub fn run(cfg: &Config, rt: &Runtime, base: &Path, log: &Path) {
    let delays = usable_delays(cfg).unwrap_or_else(|e| {
        eprintln!("store bench: {e}");
        std::process::exit(2);
    });
    let n = *cfg.sizes.iter().min().expect("a size");
    let slice = cfg.slice();
    let load_at_start = loadavg();
    eprintln!(
        "flush model: delays {:?}, writers {:?}, {} sessions:",
        delays, cfg.writers, n
    );
    let mut lanes: Vec<Lane> = delays
        .iter()
        .map(|&d| Lane::new(rt, base, n, d, cfg.flush_inject, log))
        .collect();
    super::settle();
    let mut bare: BTreeMap<Duration, Measured> = Default::default();
    let mut acc: BTreeMap<(Duration, Cell), Acc> = Default::default();
    let mut note = |delay: Duration, cell: Cell, m: Measured, stats: CommitStats| {
        if matches!(cell, Cell::Floor(_) | Cell::Ping) {
            eprintln!(
                "    flush {:>9} {cell:?}: {:.1} µs per round trip",
                delay_label(delay),
                1e6 / m.rate()
            );
        } else {
            eprintln!(
                "    flush {:>9} {cell:?}: {:>9} puts/s, {:.1} writes/flush",
                delay_label(delay),
                thousands(m.rate()),
                stats.writes as f64 / stats.commits.max(1) as f64
            );
        }
        let a = acc.entry((delay, cell)).or_default();
        a.measured.add(m);
        a.stats = a.stats.add(stats);
        a.slices.push(m.rate());
    };
    for round in 1..=cfg.rounds {
        eprintln!("  round {round}/{}", cfg.rounds);
        for lane in &mut lanes {
            let m = lane.bare(slice);
            eprintln!(
                "    flush {:>9} bare loop: {:.3} ms per flush",
                delay_label(lane.delay),
                1000.0 / m.rate()
            );
            bare.entry(lane.delay).or_default().add(m);
            if lane.delay.is_zero() && cfg.writers.contains(&1) {
                // Where one client's time goes on the real disk.
                for cell in [
                    Cell::Floor(Floor::Echo),
                    Cell::Floor(Floor::SyncOnRead),
                    Cell::Floor(Floor::SyncHandOff),
                    Cell::Ping,
                ] {
                    let m = match cell {
                        Cell::Floor(how) => lane.floor(how, slice),
                        _ => lane.ping(slice),
                    };
                    note(lane.delay, cell, m, CommitStats::default());
                }
            }
        }
        for &w in &cfg.writers {
            for lane in &mut lanes {
                let (m, s) = lane.socket(slice, Some(w));
                note(lane.delay, Cell::Socket(w), m, s);
                let (m, s) = lane.sqlite(slice, w);
                note(lane.delay, Cell::Sqlite(w), m, s);
            }
        }
        for lane in &mut lanes {
            let (m, s) = lane.socket(slice, None);
            note(lane.delay, Cell::Pipelined, m, s);
        }
    }
    for lane in lanes {
        lane.finish();
    }
    print_report(cfg, n, &bare, &acc, &load_at_start);
}
