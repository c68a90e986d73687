use super::*;

pub(crate) struct Results {
    pub(crate) cold: bool,
    pub(crate) warm_build: f64,
    pub(crate) pushes: Vec<PushSample>,
    pub(crate) deploy: Option<(Counts, Vec<f64>)>,
    pub(crate) swaps: Swaps,
    pub(crate) fsync: Vec<f64>,
    pub(crate) noop: Noop,
    pub(crate) load: (String, String),
}

pub(crate) fn table(cfg: &Config, r: &Results) {
    let col = |f: fn(&PushSample) -> f64| -> Vec<f64> { r.pushes.iter().map(f).collect() };
    let n = r.pushes.len();
    let s = &r.swaps;
    let c = &s.counts;
    let swap_ready = col(|p| p.swap_ready);
    let swap_max = pct(&s.swap_lat, 100.0);
    let steady_max = pct(&s.steady_lat, 100.0);
    let noop_wall = median(&r.noop.wall);
    let mut rows: Vec<[String; 5]> = vec![
        [
            format!("push -> new worker serving (git push to `worker ready`), median of {n}"),
            med_list(&col(|p| p.push_to_serving)),
            format!("`supervisor update` wall {}", fmt_ms(median(&col(|p| p.update_wall)))),
            "-".into(),
            "info".into(),
        ],
        [
            "  fetch (`supervisor update` -> state building: git fetch, rev-parse)".into(),
            med_list(&col(|p| p.fetch)),
            format!("git push {}", fmt_ms(median(&col(|p| p.git_push)))),
            "-".into(),
            "info".into(),
        ],
        [
            "  staging checkout (fetch into staging, checkout, clean, diff)".into(),
            med_list(&col(|p| p.stage)),
            "-".into(),
            "-".into(),
            "info".into(),
        ],
        [
            "  incremental build (`cargo build --profile release -p worker`, took_ms)".into(),
            med_list(&col(|p| p.build)),
            format!(
                "warm-up build {} ({}, worker + supervisor)",
                fmt_ms(r.warm_build),
                if r.cold { "cold" } else { "warm staging" }
            ),
            "-".into(),
            "info".into(),
        ],
        [
            "  install + fetch again (`built` -> `swapping the worker`)".into(),
            med_list(&col(|p| p.install)),
            "-".into(),
            "-".into(),
            "info".into(),
        ],
        [
            "  swap: hot-swap start -> new worker serving".into(),
            med_list(&swap_ready),
            format!(
                "old worker stopped after {}; `supervisor restart`: request -> ready {}, command wall {}",
                fmt_ms(median(&col(|p| p.swap_stop))),
                fmt_ms(median(&s.to_ready)),
                fmt_ms(median(&s.wall))
            ),
            format!("median <= {}", fmt_ms(TARGET_SWAP_MS)),
            verdict(median(&swap_ready) <= TARGET_SWAP_MS).into(),
        ],
        [
            "  swap: hot-swap start -> probation end".into(),
            med_list(&col(|p| p.swap_probation)),
            format!("--probation-ms {}", cfg.probation_ms),
            "-".into(),
            "info".into(),
        ],
        [
            "  record + pull (`passed probation` -> `update deployed`)".into(),
            med_list(&col(|p| p.finish)),
            "-".into(),
            "-".into(),
            "info".into(),
        ],
        [
            format!(
                "requests failed over {} swaps (`supervisor restart`), {} clients",
                cfg.swaps, cfg.clients
            ),
            format!("{} of {}", c.failed, c.ok + c.failed),
            format!("{} retried after a close", c.retried),
            format!("{TARGET_FAILED}"),
            verdict(c.failed == TARGET_FAILED).into(),
        ],
        [
            "refused connects (ECONNREFUSED/ENOENT) over those swaps".into(),
            c.refused.to_string(),
            "-".into(),
            "0".into(),
            verdict(c.refused == 0).into(),
        ],
        [
            "clients' last acknowledged write not read back after the swaps".into(),
            format!("{} of {}", c.lost, cfg.clients),
            "-".into(),
            "0".into(),
            verdict(c.lost == 0).into(),
        ],
    ];
    if let Some((d, lat)) = &r.deploy {
        rows.push([
            format!("requests failed / refused over the {n} real deploys (clients on all along)"),
            format!("{} / {} of {}", d.failed, d.refused, d.ok + d.failed),
            format!(
                "{} retried; longest request in a hot swap {}",
                d.retried,
                fmt_ms(pct(lat, 100.0))
            ),
            "0 / 0".into(),
            verdict(d.failed == 0 && d.refused == 0 && d.lost == 0).into(),
        ]);
    }
    rows.extend([
        [
            format!(
                "longest request during a swap (max over {} swap windows, {} requests)",
                cfg.swaps,
                s.swap_lat.len()
            ),
            fmt_ms(swap_max),
            format!(
                "steady state {} (windows of the same total length, {} requests)",
                fmt_ms(steady_max),
                s.steady_lat.len()
            ),
            format!(
                "each swap: <= its own restart -> ready + steady max (worst: {:+.1} ms over its swap, swap {})",
                s.worst_excess.0, s.worst_excess.1
            ),
            verdict(s.worst_excess.0 <= steady_max).into(),
        ],
        [
            "requests sent twice (closed unanswered by the old worker): latency p50 / max".into(),
            format!(
                "{} / {} (n={})",
                fmt_ms(pct(&s.retried_lat, 50.0)),
                fmt_ms(pct(&s.retried_lat, 100.0)),
                s.retried_lat.len()
            ),
            format!(
                "restart request -> new worker ready {}",
                fmt_ms(median(&s.to_ready))
            ),
            "-".into(),
            "info".into(),
        ],
        [
            "request p99 / p50 during swaps".into(),
            format!(
                "{} / {}",
                fmt_ms(pct(&s.swap_lat, 99.0)),
                fmt_ms(pct(&s.swap_lat, 50.0))
            ),
            format!(
                "steady {} / {}",
                fmt_ms(pct(&s.steady_lat, 99.0)),
                fmt_ms(pct(&s.steady_lat, 50.0))
            ),
            "-".into(),
            "info".into(),
        ],
        [
            format!(
                "disk: bare fdatasync in the data dir, no clients, p99 / max (n={})",
                r.fsync.len()
            ),
            format!(
                "{} / {}",
                fmt_ms(pct(&r.fsync, 99.0)),
                fmt_ms(pct(&r.fsync, 100.0))
            ),
            "every acknowledged put waits for one".into(),
            "-".into(),
            "info".into(),
        ],
        [
            format!(
                "no-op poll (`supervisor update`, up to date): wall, median of {}",
                r.noop.wall.len()
            ),
            fmt_ms(noop_wall),
            format!(
                "the same 4 git commands by hand {}",
                fmt_ms(median(&r.noop.git_wall))
            ),
            format!("<= {}", fmt_ms(TARGET_NOOP_WALL_MS)),
            verdict(noop_wall <= TARGET_NOOP_WALL_MS).into(),
        ],
        noop_cpu_row(&r.noop),
    ]);
    println!();
    println!("| measure | result | comparison | target | verdict |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
    let cpu_note = match &r.noop.linux {
        Some(_) => format!(
            "CPU from /proc/<pid>/stat is counted in ticks of {}: per-poll medians are coarse, the mean is over all polls.",
            fmt_ms(tick_ms())
        ),
        None => format!(
            "The supervisor's CPU comes from ps ({PS_RESOLUTION}), its own only: \
             the git children's share needs /proc and is Linux-only."
        ),
    };
    println!(
        "{} CPUs; load average {} at the start, {} at the end. Swap windows: {} in all ({} client requests in the swap phase). {cpu_note}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        r.load.0,
        r.load.1,
        fmt_ms(ms(s.window_total)),
        s.requests,
    );
}

/// The no-op poll's CPU row: judged on Linux, where `/proc` gives the git
/// children's share too; elsewhere `ps` gives the supervisor's own only.
fn noop_cpu_row(noop: &Noop) -> [String; 5] {
    let by_hand = format!("git by hand {}", fmt_ms(noop.git_cpu_mean));
    let target = format!("<= {}", fmt_ms(TARGET_NOOP_CPU_MS));
    match &noop.linux {
        Some(l) => {
            let n = l.cpu.len().max(1) as f64;
            [
                "no-op poll: supervisor CPU per poll (own + reaped git children), mean".into(),
                format!(
                    "{} (own {} + git {}; median {})",
                    fmt_ms(l.mean()),
                    fmt_ms(l.own_total_ms / n),
                    fmt_ms(l.children_total_ms / n),
                    fmt_ms(median(&l.cpu))
                ),
                by_hand,
                target,
                verdict(l.mean() <= TARGET_NOOP_CPU_MS).into(),
            ]
        }
        None => [
            "no-op poll: supervisor own CPU per poll (ps), mean; the git children's share is Linux-only"
                .into(),
            fmt_ms(noop.ps_own_mean),
            by_hand,
            target,
            "info (judged on Linux only)".into(),
        ],
    }
}
