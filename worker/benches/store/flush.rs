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
use std::process::Command;
use std::time::Duration;

use tokio::runtime::Runtime;

use super::{loadavg, thousands, Acc, CommitStats, Config, Inject, Measured};

#[path = "flush_child.rs"]
mod child;
#[path = "flush_floor.rs"]
mod floor;
#[path = "flush_lane.rs"]
mod lane;

pub use child::{child_main, child_request};
use floor::Floor;
use lane::Lane;

/// Puts one connection sends before it reads their answers.
const PIPELINE: usize = 32;

/// Set (to `SESSIONS:DIR`) in the environment of the process the model
/// starts for (b) and the bare loop: the bench binary itself.
const CHILD_ENV: &str = "STORE_BENCH_FLUSH_CHILD";

/// Size of the bare loop's preallocated file.
const BARE_FILE: u64 = 8 << 20;

// ---------------------------------------------------------------- injection

/// Runs `program` with every sync held for `delay` after the real call
/// (none for 0): by the program itself (`Inject::Hook`, the environment
/// variable of `shared::sync::bench_pause`), or by strace.
fn flushing(program: &Path, delay: Duration, how: Inject) -> Command {
    if delay.is_zero() {
        return Command::new(program);
    }
    let us = delay.as_micros();
    if how == Inject::Hook {
        let mut cmd = Command::new(program);
        cmd.env(shared::sync::BENCH_DELAY_ENV, us.to_string());
        return cmd;
    }
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "--seccomp-bpf", "-qq", "-o", "/dev/null"])
        .args(["-e", "trace=fdatasync,fsync"])
        .arg("-e")
        .arg(format!("inject=fdatasync,fsync:delay_exit={us}"))
        .arg("--")
        .arg(program);
    cmd
}

/// The delays this machine can inject, or why it cannot: the hook works
/// everywhere, strace only on Linux, and only where it is installed.
fn usable_delays(cfg: &Config) -> Result<Vec<Duration>, String> {
    if cfg.flush_inject == Inject::Hook || cfg.flush_delays.iter().all(|d| d.is_zero()) {
        return Ok(cfg.flush_delays.clone());
    }
    if !cfg!(target_os = "linux") {
        return Err("BENCH_FLUSH_INJECT=strace is Linux-only; use hook".into());
    }
    let ok = Command::new("strace")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(
            "BENCH_FLUSH_INJECT=strace needs strace, which did not run: install it \
             (apt-get install strace), or use BENCH_FLUSH_INJECT=hook"
                .into(),
        );
    }
    Ok(cfg.flush_delays.clone())
}

/// Checks, before anything is measured, that the model can run here.
pub fn preflight(cfg: &Config) -> Result<(), String> {
    usable_delays(cfg).map(drop)
}

fn delay_label(d: Duration) -> String {
    if d.is_zero() {
        "0 (disk)".into()
    } else {
        format!("{} ms", trim(d.as_secs_f64() * 1000.0))
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

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

fn print_report(
    cfg: &Config,
    n: usize,
    bare: &BTreeMap<Duration, Measured>,
    acc: &BTreeMap<(Duration, Cell), Acc>,
    load_at_start: &str,
) {
    let mut out = String::new();
    let mut p = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    p(String::new());
    p(format!(
        "Flush-latency model ({} sessions; {} s per cell in {} interleaved slices, \
         each after {} s warm-up). Every sync of the worker and of the (b) process \
         is held for the delay after the real call ({}).",
        thousands(n as f64),
        cfg.seconds,
        cfg.rounds,
        cfg.warmup,
        match cfg.flush_inject {
            Inject::Hook => "by the program itself: BENCH_FLUSH_INJECT=hook",
            Inject::Strace => "by strace delay_exit: BENCH_FLUSH_INJECT=strace",
        }
    ));
    p(
        "  T = flush time at that delay: mean time of one pwrite + fdatasync of a \
       record in a bare loop, in a process under the same injection."
            .into(),
    );
    p(
        "  writes/flush = writes / flushes (the worker's journal commits; SQLite's \
       commit transactions), warm-ups included."
            .into(),
    );
    p(
        "  share of ideal = puts/s / (N / T): N closed-loop clients can at best put all \
       N writes in every flush (the pipelining connection: its 32)."
            .into(),
    );
    p(
        "  nominal = the same with T = delay + T at 0 (the real disk; no ptrace cost), when 0 \
       was measured; busy = flushes/s x T (1.0: a flush always in progress)."
            .into(),
    );
    p(String::new());
    let header = format!(
        "{:<9} {:>9}  {:<34} {:>7} {:>9} {:>12} {:>14} {:>8} {:>5}",
        "delay",
        "T",
        "design",
        "clients",
        "puts/s",
        "writes/flush",
        "share of ideal",
        "nominal",
        "busy"
    );
    p(header.clone());
    p("-".repeat(header.len()));
    let designs: Vec<(Cell, String, usize)> = cfg
        .writers
        .iter()
        .flat_map(|&w| {
            [
                (
                    Cell::Socket(w),
                    "(d) ours via socket (worker)".to_string(),
                    w,
                ),
                (
                    Cell::Sqlite(w),
                    "(b) SQLite WAL FULL, batched".to_string(),
                    w,
                ),
            ]
        })
        .chain([(
            Cell::Pipelined,
            format!("(d) 1 connection, {PIPELINE} pipelined"),
            PIPELINE,
        )])
        .collect();
    let disk = bare
        .get(&Duration::ZERO)
        .map(|b| b.secs / b.ops.max(1) as f64);
    for (&delay, b) in bare {
        let t = b.secs / b.ops.max(1) as f64;
        let nominal = disk.map(|disk| delay.as_secs_f64() + disk);
        for (cell, label, ideal) in &designs {
            let Some(a) = acc.get(&(delay, *cell)) else {
                continue;
            };
            let rate = a.measured.rate();
            let per_flush = a.stats.writes as f64 / a.stats.commits.max(1) as f64;
            let clients = match cell {
                Cell::Pipelined => "1".to_string(),
                _ => ideal.to_string(),
            };
            let share = |t: f64| rate * t / *ideal as f64;
            p(format!(
                "{:<9} {:>6.2} ms  {:<34} {:>7} {:>9} {:>12.1} {:>13.2}x {:>8} {:>5.2}",
                delay_label(delay),
                t * 1000.0,
                label,
                clients,
                thousands(rate),
                per_flush,
                share(t),
                nominal.map_or_else(|| "-".into(), |t| format!("{:.2}x", share(t))),
                rate / per_flush * t
            ));
        }
    }
    floor_report(&mut p, bare, acc);
    p(String::new());
    p("Each slice's puts/s (how steady the machine was):".into());
    for &delay in bare.keys() {
        for (cell, label, _) in &designs {
            if let Some(a) = acc.get(&(delay, *cell)).filter(|a| a.slices.len() > 1) {
                let each: Vec<String> = a.slices.iter().map(|r| thousands(*r)).collect();
                let who = match cell {
                    Cell::Socket(w) | Cell::Sqlite(w) => format!("{label}, {w}"),
                    _ => label.clone(),
                };
                p(format!(
                    "  {:<9} {who:<38} {}",
                    delay_label(delay),
                    each.join(" / ")
                ));
            }
        }
    }
    p(String::new());
    p(format!(
        "Load average (1/5/15 min) at the model's start: {load_at_start}; at end: {} ({} CPUs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    print!("{out}");
}

/// One client on the real disk, per round trip, beside the floors of
/// `flush_floor.rs`: what any socket server pays, and what ours adds.
fn floor_report(
    p: &mut impl FnMut(String),
    bare: &BTreeMap<Duration, Measured>,
    acc: &BTreeMap<(Duration, Cell), Acc>,
) {
    let zero = Duration::ZERO;
    let us = |cell: Cell| acc.get(&(zero, cell)).map(|a| 1e6 / a.measured.rate());
    let (Some(bare), Some(echo), Some(floor), Some(handoff), Some(ping), Some(put)) = (
        bare.get(&zero).map(|b| 1e6 / b.rate()),
        us(Cell::Floor(Floor::Echo)),
        us(Cell::Floor(Floor::SyncOnRead)),
        us(Cell::Floor(Floor::SyncHandOff)),
        us(Cell::Ping),
        us(Cell::Socket(1)),
    ) else {
        return;
    };
    p(String::new());
    p("One client on the real disk (delay 0), mean time per round trip:".into());
    let rows = [
        ("bare pwrite + fdatasync loop (no socket)", bare),
        ("socket echo server, no disk (child)", echo),
        ("socket server syncing on the reading thread", floor),
        ("socket server handing the sync to a thread", handoff),
        ("worker ping (socket, no store)", ping),
        ("worker put (d), 1 client", put),
    ];
    for (what, t) in rows {
        p(format!(
            "  {what:<46} {t:>7.1} µs  {:>5.2}x of bare",
            bare / t
        ));
    }
    p(format!(
        "  best any socket server reaches here: {:.2}x of bare (bare / sync-on-read); \
         handing the sync to a thread costs {:.1} µs more; the worker's put costs \
         {:.1} µs over that hand-off floor ({:.2}x of it)",
        bare / floor,
        handoff - floor,
        put - handoff,
        handoff / put
    ));
}
