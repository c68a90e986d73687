use super::*;

pub(crate) struct Results {
    pub(crate) idle_rss: Vec<Rss>,
    pub(crate) crash_ours: Vec<Sample>,
    /// The backoff the supervisors logged for the crash samples.
    pub(crate) crash_delays: Vec<u64>,
    pub(crate) crash_naive: Vec<Sample>,
    pub(crate) rapid: Vec<Sample>,
    pub(crate) graceful_wall: Vec<f64>,
    pub(crate) graceful_ours: Vec<Sample>,
    pub(crate) graceful_naive: Vec<Sample>,
    pub(crate) restart_rss: Vec<(usize, Rss)>,
    pub(crate) restart_request_ms: Vec<f64>,
    pub(crate) restart_counts: Counts,
    pub(crate) restarts_took: Duration,
    pub(crate) status_json_ms: Vec<f64>,
    pub(crate) status_text_ms: Vec<f64>,
    /// The load average at the start and the end (other work on the machine).
    pub(crate) load: (String, String),
}

fn print_samples(what: &str, samples: &[Sample]) {
    let lat: Vec<f64> = samples.iter().map(|s| ms(s.latency)).collect();
    let refused: u64 = samples.iter().map(|s| s.counts.refused).sum();
    let dropped: u64 = samples.iter().map(|s| s.counts.dropped).sum();
    let other: u64 = samples.iter().map(|s| s.counts.other).sum();
    println!(
        "  {what}: n={} median/p90/max {}; refused {refused}, dropped {dropped}, other {other}",
        samples.len(),
        summary(&lat)
    );
}

pub(crate) fn baseline(bins: &Bins, root: &Path, cfg: &Config, r: &mut Results) {
    println!("baseline: naive kill-and-respawn of a self-binding worker");
    let mut naive = Naive::new(bins, &root.join("naive"));
    for _ in 0..cfg.samples {
        let old = naive.pid();
        let s = measure(&naive.sock.clone(), old, || naive.cycle(Signal::SIGKILL));
        assert_eq!(s.new_pid, naive.pid());
        r.crash_naive.push(s);
        naive.wait_serving();
    }
    print_samples("SIGKILL, waitpid, spawn", &r.crash_naive);
    for _ in 0..cfg.graceful {
        let old = naive.pid();
        let s = measure(&naive.sock.clone(), old, || naive.cycle(Signal::SIGTERM));
        assert_eq!(s.new_pid, naive.pid());
        r.graceful_naive.push(s);
        naive.wait_serving();
    }
    print_samples("SIGTERM, waitpid, spawn", &r.graceful_naive);
}

pub(crate) fn status_timing(sup: &Ours, cfg: &Config, r: &mut Results) {
    println!("status: {} fresh processes of each form", cfg.status_runs);
    for (args, out) in [
        (&["status", "--json"][..], &mut r.status_json_ms),
        (&["status"][..], &mut r.status_text_ms),
    ] {
        for _ in 0..cfg.status_runs {
            let t = Instant::now();
            let o = sup.cli(args);
            out.push(ms(t.elapsed()));
            assert!(
                o.status.success(),
                "supervisor {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        println!(
            "  supervisor {}: median/p90/max {}",
            args.join(" "),
            summary(out)
        );
    }
}

/// Crash samples, round-robin over the pool, each on a worker that has
/// been ready for longer than the backoff's `stable_after`.
pub(crate) fn crash_ours(pool: &mut [Ours], cfg: &Config, r: &mut Results) {
    println!(
        "ours: SIGKILL of a worker ready > {} s, round-robin over {} supervisors",
        STABLE_AFTER.as_secs(),
        pool.len()
    );
    let n = pool.len();
    for i in 0..cfg.samples {
        let sup = &mut pool[i % n];
        let eligible = sup.ready_seen + STABLE_AFTER + STABLE_MARGIN;
        if let Some(wait) = eligible.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let old = sup.worker;
        let s = measure(&sup.sock(), old, || sigkill(old));
        let pid = sup.wait_ready();
        assert_eq!(
            s.new_pid, pid,
            "the client saw a worker the supervisor did not report"
        );
        r.crash_ours.push(s);
    }
    print_samples("SIGKILL, supervisor restarts", &r.crash_ours);
    let each: Vec<String> = r
        .crash_ours
        .iter()
        .map(|s| format!("{:.1}", ms(s.latency)))
        .collect();
    println!("  each (ms): {}", each.join(" "));
    r.crash_delays = pool.iter().flat_map(Ours::backoff_delays).collect();
    println!(
        "  restart delays the supervisors logged (restart_in_ms): {:?}",
        r.crash_delays
    );
}

/// Kills in a row on one supervisor, each as soon as the restart is ready:
/// shows the backoff policy.
pub(crate) fn rapid(sup: &mut Ours, cfg: &Config, r: &mut Results) {
    println!(
        "ours: {} SIGKILLs in a row, each once the previous restart is ready",
        cfg.rapid
    );
    let eligible = sup.ready_seen + STABLE_AFTER + STABLE_MARGIN;
    if let Some(wait) = eligible.checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    for _ in 0..cfg.rapid {
        let old = sup.worker;
        let s = measure(&sup.sock(), old, || sigkill(old));
        sup.wait_ready();
        r.rapid.push(s);
    }
    let list: Vec<String> = r.rapid.iter().map(|s| fmt_ms(ms(s.latency))).collect();
    let refused: u64 = r.rapid.iter().map(|s| s.counts.refused).sum();
    println!(
        "  kill 1..{}: {}; refused {refused}",
        cfg.rapid,
        list.join(", ")
    );
}

pub(crate) fn graceful(sup: &mut Ours, cfg: &Config, r: &mut Results) {
    println!(
        "ours: `supervisor restart` x{} under the client loop",
        cfg.graceful
    );
    for _ in 0..cfg.graceful {
        let old = sup.worker;
        let mut wall = Duration::ZERO;
        let s = measure(&sup.sock(), old, || {
            let t = Instant::now();
            let o = sup.cli(&["restart"]);
            wall = t.elapsed();
            assert!(
                o.status.success(),
                "supervisor restart failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        });
        let pid = sup.wait_ready();
        assert_eq!(s.new_pid, pid);
        r.graceful_wall.push(ms(wall));
        r.graceful_ours.push(s);
    }
    println!(
        "  command wall time median/p90/max {}",
        summary(&r.graceful_wall)
    );
    print_samples(
        "restart request to new worker's first answer",
        &r.graceful_ours,
    );
    let longest: Vec<f64> = r
        .graceful_ours
        .iter()
        .map(|s| ms(s.counts.longest))
        .collect();
    println!(
        "  longest wait for one answer median/p90/max {}",
        summary(&longest)
    );
}

pub(crate) fn many_restarts(sup: &mut Ours, cfg: &Config, r: &mut Results) {
    println!(
        "ours: {} restarts (control socket `restart`, as the CLI sends it) under the client loop",
        cfg.restarts
    );
    let probe = Probe::start(&sup.sock(), 0);
    let ctl = sup.sup.control_sock();
    probe.wait_answers(WARM_ANSWERS);
    r.restart_rss.push((0, sup.rss()));
    let quarter = cfg.restarts.div_ceil(4);
    let started = Instant::now();
    let mut last = sup.worker;
    for i in 1..=cfg.restarts {
        let t = Instant::now();
        let a = control(&ctl, "restart", Duration::from_secs(60)).expect("restart request");
        r.restart_request_ms.push(ms(t.elapsed()));
        assert_eq!(a["ok"], true, "restart failed: {a}");
        let pid = a["worker"]["pid"].as_u64().expect("pid") as u32;
        assert_ne!(pid, last, "restart {i} kept the old worker");
        last = pid;
        if i % quarter == 0 || i == cfg.restarts {
            r.restart_rss.push((i, sup.rss()));
        }
    }
    r.restarts_took = started.elapsed();
    r.restart_counts = probe.stop();
    sup.wait_ready();
    let rss: Vec<String> = r
        .restart_rss
        .iter()
        .map(|(i, rss)| format!("\n    after {i:>5}: {rss}"))
        .collect();
    let c = &r.restart_counts;
    println!(
        "  took {:.1} s (request median {}); client: answered {}, refused {}, dropped {}, other {}; supervisor RSS:{}",
        r.restarts_took.as_secs_f64(),
        fmt_ms(pct(&r.restart_request_ms, 50.0)),
        c.answered,
        c.refused,
        c.dropped,
        c.other,
        rss.join("")
    );
}
