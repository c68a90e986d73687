use super::*;

pub(crate) struct Swaps {
    pub(crate) counts: Counts,
    /// `supervisor restart` wall times (ms).
    pub(crate) wall: Vec<f64>,
    /// Restart request -> new worker ready, from the supervisor log (ms).
    pub(crate) to_ready: Vec<f64>,
    pub(crate) swap_lat: Vec<f64>,
    pub(crate) steady_lat: Vec<f64>,
    /// Latencies of the requests that were sent twice (closed unanswered).
    pub(crate) retried_lat: Vec<f64>,
    /// The worst (longest request in a swap window - that swap's own
    /// restart request -> new worker ready time), ms, and which swap.
    pub(crate) worst_excess: (f64, usize),
    pub(crate) window_total: Duration,
    pub(crate) requests: usize,
}

pub(crate) fn swaps(sup: &Supervisor, cfg: &Config, epoch: Instant) -> Swaps {
    println!(
        "swaps: {} x `supervisor restart` under {} clients (pause {} ms between requests)",
        cfg.swaps,
        cfg.clients,
        cfg.pace.as_millis()
    );
    let from = log_lines(sup).len();
    let load = Load::start(&sup.sock(), cfg, epoch, "swap");
    let us = |t: Instant| (t - epoch).as_micros() as u64;
    let mut windows = Vec::new();
    let mut wall = Vec::new();
    let mut longest = Duration::ZERO;
    for i in 0..cfg.swaps {
        // Quiet time, long enough to hold this swap's steady window.
        thread::sleep(cfg.swap_gap.max(SETTLE + STEADY_LEAD + longest * 2));
        let t0 = Instant::now();
        let (out, took) = run_cli(sup, &["restart"]);
        let t1 = Instant::now();
        expect_ok(&out, &format!("restart {}", i + 1), sup);
        longest = longest.max(t1 - t0);
        windows.push((us(t0), us(t1)));
        wall.push(ms(took));
    }
    thread::sleep(SETTLE);
    let (counts, recs) = load.finish();
    // Each swap's steady twin: the same length, ending STEADY_LEAD before it.
    let mut steady = Vec::new();
    let mut prev_end = 0;
    for &(s, e) in &windows {
        let len = e - s;
        let end = s.saturating_sub(STEADY_LEAD.as_micros() as u64);
        let start = end.saturating_sub(len);
        assert!(
            start >= prev_end + SETTLE.as_micros() as u64,
            "a steady window overlaps the previous swap; raise BENCH_SWAP_GAP_MS"
        );
        steady.push((start, end));
        prev_end = e;
    }
    let lines = parse_log(&log_lines(sup)[from..]);
    let mut to_ready = Vec::new();
    let mut at = 0;
    while let Some((i, l)) = find(&lines, at, "graceful worker restart") {
        match find(&lines, i, "worker ready") {
            Some((j, r)) => {
                to_ready.push(between(l.at, r.at));
                at = j;
            }
            None => break,
        }
    }
    if let Some(dir) = &cfg.dump {
        dump(
            dir,
            "swap-requests.csv",
            "start_us,end_us,retried",
            recs.iter()
                .map(|r| vec![r.start_us, r.end_us, u64::from(r.retried)]),
        );
        let pairs = |w: &[(u64, u64)]| w.iter().map(|&(s, e)| vec![s, e]).collect::<Vec<_>>();
        dump(
            dir,
            "swap-windows.csv",
            "start_us,end_us",
            pairs(&windows).into_iter(),
        );
        dump(
            dir,
            "steady-windows.csv",
            "start_us,end_us",
            pairs(&steady).into_iter(),
        );
    }
    let window_total: u64 = windows.iter().map(|(s, e)| e - s).sum();
    let swap_lat = latencies_in(&recs, &windows);
    let steady_lat = latencies_in(&recs, &steady);
    let retried_lat: Vec<f64> = recs.iter().filter(|r| r.retried).map(Rec::ms).collect();
    // Did any request wait longer than the swap it was sent in?
    assert_eq!(
        to_ready.len(),
        windows.len(),
        "one `graceful worker restart` ... `worker ready` pair in the log per swap"
    );
    let mut worst_excess = (f64::NEG_INFINITY, 0);
    for (i, (w, own)) in windows.iter().zip(&to_ready).enumerate() {
        let longest = latencies_in(&recs, std::slice::from_ref(w))
            .into_iter()
            .fold(0.0, f64::max);
        if longest - own > worst_excess.0 {
            worst_excess = (longest - own, i + 1);
        }
    }
    println!(
        "  restart wall median {}; request -> new worker ready (log) median {}; \
         clients: {} ok, {} retried, {} refused, {} failed, {} lost",
        fmt_ms(median(&wall)),
        fmt_ms(median(&to_ready)),
        counts.ok,
        counts.retried,
        counts.refused,
        counts.failed,
        counts.lost
    );
    println!(
        "  latency in swap windows (n={}): p50 {} p99 {} max {}; steady windows (n={}): p50 {} p99 {} max {}",
        swap_lat.len(),
        fmt_ms(pct(&swap_lat, 50.0)),
        fmt_ms(pct(&swap_lat, 99.0)),
        fmt_ms(pct(&swap_lat, 100.0)),
        steady_lat.len(),
        fmt_ms(pct(&steady_lat, 50.0)),
        fmt_ms(pct(&steady_lat, 99.0)),
        fmt_ms(pct(&steady_lat, 100.0)),
    );
    println!(
        "  requests sent twice (closed unanswered by the old worker): {}, latency p50 {} max {}",
        retried_lat.len(),
        fmt_ms(pct(&retried_lat, 50.0)),
        fmt_ms(pct(&retried_lat, 100.0))
    );
    println!(
        "  the longest request of each swap, less that swap's restart -> ready time: worst {:+.1} ms (swap {})",
        worst_excess.0, worst_excess.1
    );
    longest_stalls(&recs, &windows, &steady);
    Swaps {
        counts,
        wall,
        to_ready,
        swap_lat,
        steady_lat,
        retried_lat,
        worst_excess,
        window_total: Duration::from_micros(window_total),
        requests: recs.len(),
    }
}

/// Latencies (ms) of a bare append + `fdatasync` loop in `dir`, what every
/// acknowledged `put` waits for at least: the disk's own stalls.
pub(crate) fn fsync_probe(dir: &Path, how_long: Duration) -> Vec<f64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("bench-fsync-probe");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("create the probe file");
    file.write_all_at(&vec![0u8; 1 << 20], 0)
        .expect("preallocate the probe file");
    file.sync_all().expect("sync the probe file");
    let mut lat = Vec::new();
    let end = Instant::now() + how_long;
    let mut offset = 0u64;
    while Instant::now() < end {
        file.write_all_at(&[b'x'; 128], offset)
            .expect("write the probe file");
        offset = (offset + 128) % (1 << 20);
        let t = Instant::now();
        file.sync_data().expect("fdatasync the probe file");
        lat.push(ms(t.elapsed()));
        thread::sleep(Duration::from_millis(2));
    }
    let _ = fs::remove_file(&path);
    lat
}
