//! The flush model's report: the table per delay and design, and where one
//! client's time goes beside the floors of `flush_floor.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    delay_label, loadavg, thousands, Acc, Cell, Config, Floor, Inject, Measured, PIPELINE,
};

/// Prints the model's report on stdout.
pub(super) fn print_report(
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
