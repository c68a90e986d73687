use super::*;

pub(crate) fn table(cfg: &Config, r: &Results) {
    let lat = |v: &[Sample]| -> Vec<f64> { v.iter().map(|s| ms(s.latency)).collect() };
    let total =
        |v: &[Sample], f: fn(&Counts) -> u64| -> u64 { v.iter().map(|s| f(&s.counts)).sum() };
    let crash = lat(&r.crash_ours);
    let crash_naive = lat(&r.crash_naive);
    let crash_refused = total(&r.crash_ours, |c| c.refused);
    let crash_med = pct(&crash, 50.0);
    let grace_refused = total(&r.graceful_ours, |c| c.refused);
    let idle = r.idle_rss[0];
    let idle_max = r
        .idle_rss
        .iter()
        .map(|x| x.total_kib)
        .max()
        .expect("a pool");
    let idle_restart = r.restart_rss[0].1;
    let (warm_n, warm) = r.restart_rss[1];
    let (last_n, last) = *r.restart_rss.last().expect("readings");
    let growth = last.total_kib as i64 - warm.total_kib as i64;
    let anon_growth = match (last.anon_kib, warm.anon_kib) {
        (Some(l), Some(w)) => format!("{:+} KiB", l as i64 - w as i64),
        _ => "Linux-only".into(),
    };
    let json_med = pct(&r.status_json_ms, 50.0);
    let text_med = pct(&r.status_text_ms, 50.0);
    let rapid: Vec<String> = r.rapid.iter().map(|s| fmt_ms(ms(s.latency))).collect();

    let rows: Vec<[String; 6]> = vec![
        [
            format!(
                "crash: SIGKILL -> first answer from the new worker, worker up > 10 s \
                 (median / p90 / max, n={}; backoff logged: {})",
                cfg.samples,
                if r.crash_delays.iter().all(|d| *d == 0) {
                    format!("{} x 0 ms", r.crash_delays.len())
                } else {
                    format!("{:?} ms", r.crash_delays)
                }
            ),
            summary(&crash),
            summary(&crash_naive),
            "PM2 7.0.4: 6 ms; supervisord 4.3.0: ~1,000 ms".into(),
            format!("median <= {TARGET_CRASH_MS} ms"),
            verdict(crash_med <= TARGET_CRASH_MS).into(),
        ],
        [
            "crash: refused connections (ECONNREFUSED/ENOENT), total".into(),
            crash_refused.to_string(),
            total(&r.crash_naive, |c| c.refused).to_string(),
            "PM2: refuses meanwhile".into(),
            "0".into(),
            verdict(crash_refused == 0).into(),
        ],
        [
            "crash: connections dropped unanswered (accepted by the killed worker), total".into(),
            total(&r.crash_ours, |c| c.dropped).to_string(),
            total(&r.crash_naive, |c| c.dropped).to_string(),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            format!(
                "crash: kills in a row, each as soon as the restart is ready (kill 1..{})",
                cfg.rapid
            ),
            rapid.join(", "),
            "no backoff: as the row above".into(),
            String::new(),
            "-".into(),
            "info (backoff)".into(),
        ],
        [
            format!(
                "graceful: `supervisor restart` wall time (median / p90 / max, n={})",
                cfg.graceful
            ),
            summary(&r.graceful_wall),
            "-".into(),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            "graceful: restart request -> first answer from the new worker (median / p90 / max)"
                .into(),
            summary(&lat(&r.graceful_ours)),
            format!(
                "{} (SIGTERM, waitpid, spawn)",
                summary(&lat(&r.graceful_naive))
            ),
            String::new(),
            "-".into(),
            "info".into(),
        ],
        [
            "graceful: refused / dropped connections, total".into(),
            format!(
                "{grace_refused} / {}",
                total(&r.graceful_ours, |c| c.dropped)
            ),
            format!(
                "{} / {}",
                total(&r.graceful_naive, |c| c.refused),
                total(&r.graceful_naive, |c| c.dropped)
            ),
            String::new(),
            "0 refused".into(),
            verdict(grace_refused == 0).into(),
        ],
        [
            format!("restarts x{last_n}: refused / dropped connections, total",),
            format!(
                "{} / {}",
                r.restart_counts.refused, r.restart_counts.dropped
            ),
            "-".into(),
            String::new(),
            "0 refused".into(),
            verdict(r.restart_counts.refused == 0).into(),
        ],
        [
            format!(
                "supervisor RSS idle (pool of {}: max {})",
                r.idle_rss.len(),
                fmt_kib(idle_max)
            ),
            idle.to_string(),
            "-".into(),
            "supervisord 19.5 MB; PM2 daemon 60 MB".into(),
            "<= 4 MiB".into(),
            verdict(idle_max <= TARGET_RSS_KIB).into(),
        ],
        [
            format!("supervisor RSS after {last_n} restarts"),
            last.to_string(),
            "-".into(),
            String::new(),
            "<= 4 MiB".into(),
            verdict(last.total_kib <= TARGET_RSS_KIB).into(),
        ],
        [
            format!(
                "supervisor RSS growth from restart {warm_n} to {last_n} (total / anon; \
                 restart 0 to {warm_n}: {:+} KiB)",
                warm.total_kib as i64 - idle_restart.total_kib as i64
            ),
            format!("{growth:+} KiB / {anon_growth}"),
            "-".into(),
            String::new(),
            format!("<= {GROWTH_TOLERANCE_KIB} KiB"),
            verdict(growth <= GROWTH_TOLERANCE_KIB as i64).into(),
        ],
        [
            format!(
                "`supervisor status --json` wall time (median / p90 / max, n={})",
                cfg.status_runs
            ),
            summary(&r.status_json_ms),
            "-".into(),
            "`pm2 jlist` 120 ms".into(),
            format!("median <= {TARGET_STATUS_MS} ms"),
            verdict(json_med <= TARGET_STATUS_MS).into(),
        ],
        [
            format!(
                "`supervisor status` wall time (median / p90 / max, n={})",
                cfg.status_runs
            ),
            summary(&r.status_text_ms),
            "-".into(),
            "`supervisorctl status` 122 ms".into(),
            format!("median <= {TARGET_STATUS_MS} ms"),
            verdict(text_med <= TARGET_STATUS_MS).into(),
        ],
    ];
    println!();
    println!(
        "| measure | ours (supervisor) | baseline (naive respawn) | peers (dev machine) | target | result |"
    );
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!(
        "Peers are figures measured on the development machine, not in this run. \
         Crash rows: the first restart after a worker that was ready for 10 s is immediate; \
         within 10 s the supervisor waits 100 ms, 200 ms, 400 ms... (the kills-in-a-row row). \
         Load average at the start {}, at the end {}.",
        r.load.0, r.load.1
    );
}
