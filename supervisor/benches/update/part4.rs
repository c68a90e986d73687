use super::*;

pub(crate) struct Noop {
    pub(crate) wall: Vec<f64>,
    /// The supervisor's own CPU per poll (ms), mean over the polls, from
    /// `ps`: Linux and macOS, but coarse (see `ps_cpu_ms`).
    pub(crate) ps_own_mean: f64,
    /// Linux only: finer figures from `/proc`.
    pub(crate) linux: Option<LinuxNoop>,
    /// The CLI process's own CPU per poll (ms), mean.
    cli_cpu_mean: f64,
    /// The same git commands by hand.
    pub(crate) git_wall: Vec<f64>,
    pub(crate) git_cpu_mean: f64,
}

/// The no-op polls' CPU from `/proc` (Linux only).
#[derive(Default)]
pub(crate) struct LinuxNoop {
    /// Supervisor CPU per poll (ms): own + reaped children, from ticks.
    pub(crate) cpu: Vec<f64>,
    pub(crate) own_total_ms: f64,
    pub(crate) children_total_ms: f64,
    /// Own CPU from schedstat, ns resolution, per poll (ms).
    own_sched: Vec<f64>,
}

impl LinuxNoop {
    pub(crate) fn mean(&self) -> f64 {
        self.cpu.iter().sum::<f64>() / self.cpu.len().max(1) as f64
    }
}

pub(crate) fn noop_polls(sup: &Supervisor, p: &Project, cfg: &Config) -> Noop {
    println!(
        "no-op polls: {} x `supervisor update` when up to date",
        cfg.noop_polls
    );
    let tick = tick_ms();
    let pid = sup.pid();
    let mut wall = Vec::new();
    let mut linux = Cpu::of(pid).map(|_| LinuxNoop::default());
    let bench_before = reaped_children_ms();
    let ps_before = ps_cpu_ms(pid);
    for _ in 0..cfg.noop_polls {
        thread::sleep(Duration::from_millis(100));
        let before = Cpu::of(pid);
        let sched = sched_ns(pid);
        let (out, took) = run_cli(sup, &["update"]);
        let text = expect_ok(&out, "a no-op update", sup);
        assert!(text.contains("up to date"), "not a no-op: {text}");
        wall.push(ms(took));
        // The answer is sent after the poll's last git command was reaped.
        if let (Some(l), Some(before), Some(after), Some(s0), Some(s1)) =
            (linux.as_mut(), before, Cpu::of(pid), sched, sched_ns(pid))
        {
            let d = after.since(before);
            l.own_sched.push((s1 - s0) as f64 / 1e6);
            l.cpu.push((d.own + d.children) as f64 * tick);
            l.own_total_ms += d.own as f64 * tick;
            l.children_total_ms += d.children as f64 * tick;
        }
    }
    let n = cfg.noop_polls as f64;
    let ps_own_mean = (ps_cpu_ms(pid) - ps_before) / n;
    let cli_cpu_mean = (reaped_children_ms() - bench_before) / n;
    // The same git commands, by hand: what a poll cannot do without.
    let branch = "main";
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let tip = format!("refs/remotes/origin/{branch}^{{commit}}");
    let commands: [&[&str]; 4] = [
        &["fetch", "--no-tags", "--quiet", "origin", &refspec],
        &["rev-parse", "--verify", "--quiet", &tip],
        &["symbolic-ref", "--quiet", "--short", "HEAD"],
        &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
    ];
    let mut git_wall = Vec::new();
    let before = reaped_children_ms();
    for _ in 0..cfg.noop_polls {
        thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        for args in commands {
            git(&p.checkout, args);
        }
        git_wall.push(ms(t.elapsed()));
    }
    let git_cpu_mean = (reaped_children_ms() - before) / n;
    let r = Noop {
        wall,
        ps_own_mean,
        linux,
        cli_cpu_mean,
        git_wall,
        git_cpu_mean,
    };
    println!(
        "  wall median {} (max {}); supervisor own CPU per poll by ps: mean {} ({}); the CLI process {} mean",
        fmt_ms(median(&r.wall)),
        fmt_ms(pct(&r.wall, 100.0)),
        fmt_ms(r.ps_own_mean),
        PS_RESOLUTION,
        fmt_ms(r.cli_cpu_mean)
    );
    match &r.linux {
        Some(l) => println!(
            "  from /proc: supervisor CPU per poll: mean {} (own {} + git children {}), median {} (ticks of {}); \
             own by schedstat median {}",
            fmt_ms(l.mean()),
            fmt_ms(l.own_total_ms / n),
            fmt_ms(l.children_total_ms / n),
            fmt_ms(median(&l.cpu)),
            fmt_ms(tick),
            fmt_ms(median(&l.own_sched)),
        ),
        None => println!(
            "  the supervisor's git children CPU and the per-poll figures come from /proc: Linux-only"
        ),
    }
    println!(
        "  the same 4 git commands by hand: wall median {}, CPU mean {}",
        fmt_ms(median(&r.git_wall)),
        fmt_ms(r.git_cpu_mean)
    );
    r
}
