//! The designs part of a run: every cell in interleaved rounds, then the restore.

use super::*;

/// The designs table, the disk baselines and the restore, then its report.
pub(crate) fn run_designs(
    cfg: &Config,
    rt: &Runtime,
    base: &Path,
    log: &Path,
    load_at_start: &str,
) {
    let mut results = Results::default();
    eprintln!("baselines (1 writer, {RECORD_BYTES}-byte records):");
    let append = baseline_append(base, cfg);
    results.line(format!(
        "plain append + fdatasync (growing file):   {:>9} ops/s",
        thousands(append)
    ));
    let prealloc = baseline_prealloc(base, cfg);
    results.line(format!(
        "pwrite + fdatasync (preallocated file):    {:>9} ops/s",
        thousands(prealloc)
    ));

    let largest = *cfg.sizes.iter().max().expect("at least one size");
    let slice = cfg.slice();
    let mut setups = Vec::new();
    for &n in &cfg.sizes {
        eprintln!("setting up {} sessions:", thousands(n as f64));
        setups.push(Setup::new(rt, cfg, base, n, log, &mut results));
    }
    settle();
    // Every (size, design) pair interleaved within each round, so that a
    // slow stretch of the disk (or a busy neighbour) hits them all alike
    // and the ratios stay fair even when the absolute numbers move.
    let mut acc: BTreeMap<(usize, Design, usize), Acc> = BTreeMap::new();
    for round in 1..=cfg.rounds {
        for &w in &cfg.writers {
            for setup in &mut setups {
                let n = setup.sessions;
                for d in Design::ALL {
                    let (mut m, stats, waited) = setup.run(rt, slice, d, w);
                    m.secs += waited.as_secs_f64();
                    eprintln!(
                        "    round {round}/{}: {:<30} {:>7} sessions {:>11}: {:>9} ops/s{}",
                        cfg.rounds,
                        d.label(),
                        thousands(n as f64),
                        writers_header(w),
                        thousands(m.rate()),
                        if waited > Duration::from_millis(5) {
                            format!(" (incl. {} waiting for a checkpoint)", ms(waited))
                        } else {
                            String::new()
                        }
                    );
                    let a = acc.entry((n, d, w)).or_default();
                    a.measured.add(m);
                    a.stats = a.stats.add(stats);
                    a.waited += waited;
                    a.slices.push(m.rate());
                }
            }
        }
    }
    let naive_caps: BTreeMap<usize, u64> =
        setups.iter().map(|s| (s.sessions, s.naive_cap)).collect();
    for ((n, d, w), a) in acc {
        let mut note = match d {
            Design::Sqlite => a.stats.note("transaction"),
            Design::Naive => {
                let mut s = format!("{} whole-file rewrites", thousands(a.stats.writes as f64));
                if naive_caps[&n] != u64::MAX {
                    s.push_str(&format!(", time-boxed to {} per slice", naive_caps[&n]));
                }
                s
            }
            Design::Ours | Design::Socket => a.stats.note("commit"),
        };
        if a.waited > Duration::from_millis(5) {
            note.push_str(&format!(
                "; {} waiting for checkpoints counted in",
                ms(a.waited)
            ));
        }
        if a.slices.len() > 1 {
            let each: Vec<String> = a.slices.iter().map(|r| thousands(*r)).collect();
            note.push_str(&format!("; slices {}/s", each.join(" / ")));
        }
        results.record(n, d, w, a.measured, note);
    }
    let mut restore = None;
    for setup in setups {
        let n = setup.sessions;
        let sock_dir = setup.finish(rt);
        if n == largest && restore.is_none() {
            settle();
            restore = Some(measure_restore(cfg, &sock_dir, n, log));
        }
        let _ = std::fs::remove_dir_all(sock_dir.root());
    }

    print_report(
        cfg,
        &results,
        restore.as_ref(),
        append,
        prealloc,
        load_at_start,
    );
}

/// The largest store, stopped cleanly (only `sessions.json` left): bare
/// parse of the snapshot vs spawn-to-first-answer vs `Store::open`.
pub(crate) fn measure_restore(cfg: &Config, dir: &DataDir, n: usize, log: &Path) -> Restore {
    eprintln!(
        "restore of {} sessions ({} reps, median):",
        thousands(n as f64),
        cfg.restore_reps
    );
    let path = dir.sessions_json();
    let (mut reads, mut parses) = (Vec::new(), Vec::new());
    let mut snapshot_bytes = 0;
    for _ in 0..cfg.restore_reps {
        let t = Instant::now();
        let bytes = std::fs::read(&path).expect("read sessions.json");
        reads.push(t.elapsed());
        snapshot_bytes = bytes.len();
        let t = Instant::now();
        let v = serde_json::from_slice::<serde_json::Value>(&bytes).expect("the snapshot is JSON");
        parses.push(t.elapsed());
        let count = v["sessions"].as_object().map_or(0, |o| o.len());
        assert_eq!(count, n, "sessions in the snapshot");
        drop(v);
    }
    let (mut pings, mut gets) = (Vec::new(), Vec::new());
    for _ in 0..cfg.restore_reps {
        let t0 = Instant::now();
        let mut worker = spawn_worker(dir, log);
        let (client, ping, get) = first_answers(&mut worker, t0, &session_id(n / 2), log);
        pings.push(ping);
        gets.push(get);
        drop(client);
        worker.stop(WORKER_DEADLINE);
    }
    let mut opens = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for _ in 0..cfg.restore_reps {
        let t = Instant::now();
        let (store, report) = Store::open(dir, StoreOptions::default()).expect("open the store");
        opens.push(t.elapsed());
        assert_eq!(store.len(), n);
        // A clean stop leaves the snapshot and at most an empty journal.
        assert_eq!(
            report.replayed_records, 0,
            "a restore from the snapshot alone"
        );
        rt.block_on(store.close()).expect("close the store");
    }
    let r = Restore {
        sessions: n,
        snapshot_bytes,
        read: median(reads),
        parse: median(parses),
        ping: median(pings),
        get: median(gets),
        open: median(opens),
    };
    eprintln!(
        "  read {}, parse {}, spawn->ping {}, spawn->get {}, Store::open {}",
        ms(r.read),
        ms(r.parse),
        ms(r.ping),
        ms(r.get),
        ms(r.open)
    );
    r
}

/// The 1, 5 and 15 minute load averages (`getloadavg`: Linux and macOS).
pub(crate) fn loadavg() -> String {
    shared::procs::loadavg_text()
}
