//! The designs report: results, formatting and the printed tables.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Design {
    Ours,
    Sqlite,
    Naive,
    Socket,
}

impl Design {
    pub(crate) const ALL: [Design; 4] =
        [Design::Ours, Design::Sqlite, Design::Naive, Design::Socket];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Design::Ours => "(a) ours, in-process",
            Design::Sqlite => "(b) SQLite WAL FULL, batched",
            Design::Naive => "(c) naive whole-file rewrite",
            Design::Socket => "(d) ours via socket (worker)",
        }
    }
}

pub(crate) struct Cell {
    pub(crate) measured: Measured,
    pub(crate) note: String,
}

#[derive(Default)]
pub(crate) struct Results {
    pub(crate) cells: BTreeMap<(usize, Design, usize), Cell>,
    pub(crate) lines: Vec<String>,
}

impl Results {
    pub(crate) fn record(
        &mut self,
        sessions: usize,
        design: Design,
        writers: usize,
        measured: Measured,
        note: String,
    ) {
        eprintln!(
            "  {:<30} {:>7} sessions {:>11}: {:>9} ops/s  ({} ops in {:.2} s{}{})",
            design.label(),
            thousands(sessions as f64),
            writers_header(writers),
            thousands(measured.rate()),
            measured.ops,
            measured.secs,
            if note.is_empty() { "" } else { "; " },
            note
        );
        self.cells
            .insert((sessions, design, writers), Cell { measured, note });
    }

    pub(crate) fn rate(&self, sessions: usize, design: Design, writers: usize) -> Option<f64> {
        self.cells
            .get(&(sessions, design, writers))
            .map(|c| c.measured.rate())
    }

    /// A line for the report, echoed to stderr as progress.
    pub(crate) fn line(&mut self, s: String) {
        eprintln!("  {s}");
        self.lines.push(s);
    }
}

pub(crate) fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x < 100.0 && x.fract() != 0.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

pub(crate) fn writers_header(w: usize) -> String {
    if w == 1 {
        "1 writer".into()
    } else {
        format!("{w} writers")
    }
}

pub(crate) fn print_report(
    cfg: &Config,
    r: &Results,
    restore: Option<&Restore>,
    append: f64,
    prealloc: f64,
    load_at_start: &str,
) {
    let mut out = String::new();
    let mut p = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    p(String::new());
    p(format!(
        "Durable upserts per second (~{DATA_BYTES} B of JSON data per session, keys uniform over the live \
         sessions; {} s measured per cell, in {} slices interleaved across designs, each after {} s warm-up)",
        cfg.seconds, cfg.rounds, cfg.warmup
    ));
    p(String::new());
    let mut header = format!("{:<30} {:>9}", "design", "sessions");
    for &w in &cfg.writers {
        header.push_str(&format!(" {:>12}", writers_header(w)));
    }
    p(header.clone());
    p("-".repeat(header.len()));
    for &n in &cfg.sizes {
        for d in Design::ALL {
            let mut row = format!("{:<30} {:>9}", d.label(), thousands(n as f64));
            for &w in &cfg.writers {
                let v = r.rate(n, d, w).map_or_else(|| "-".into(), thousands);
                row.push_str(&format!(" {v:>12}"));
            }
            p(row);
        }
    }
    p(String::new());
    p(format!(
        "baseline, 1 writer, {RECORD_BYTES}-byte records: append+fdatasync {} ops/s; \
         pwrite+fdatasync into a preallocated file {} ops/s",
        thousands(append),
        thousands(prealloc)
    ));
    p(String::new());
    p("Per cell: writes per commit (warm-ups included), checkpoints, each slice's rate:".into());
    for &n in &cfg.sizes {
        for d in Design::ALL {
            for &w in &cfg.writers {
                if let Some(c) = r.cells.get(&(n, d, w)) {
                    p(format!(
                        "  {:<30} {:>7} sessions {:>11}: {}",
                        d.label(),
                        thousands(n as f64),
                        writers_header(w),
                        c.note
                    ));
                }
            }
        }
    }
    p(String::new());
    p("Targets:".into());
    for &n in &cfg.sizes {
        let mut row = format!(
            "  (a) ours >= {TARGET_VS_SQLITE:.1}x (b) SQLite, {:>7} sessions:",
            thousands(n as f64)
        );
        for &w in &cfg.writers {
            if let (Some(a), Some(b)) = (r.rate(n, Design::Ours, w), r.rate(n, Design::Sqlite, w)) {
                row.push_str(&format!(
                    "  {w}w {:.2}x {}",
                    a / b,
                    verdict(a / b >= TARGET_VS_SQLITE)
                ));
            }
        }
        p(row);
    }
    let top = *cfg.writers.iter().max().expect("at least one writer count");
    for &n in &cfg.sizes {
        if let (Some(d), Some(b)) = (
            r.rate(n, Design::Socket, top),
            r.rate(n, Design::Sqlite, top),
        ) {
            p(format!(
                "  (d) socket @{top} >= (b) SQLite @{top}, {:>7} sessions:  {:.2}x {}",
                thousands(n as f64),
                d / b,
                verdict(d / b >= TARGET_VS_SQLITE)
            ));
        }
    }
    let (small, large) = (
        *cfg.sizes.iter().min().expect("a size"),
        *cfg.sizes.iter().max().expect("a size"),
    );
    if small != large {
        for (d, target) in [
            (Design::Ours, Some(TARGET_SCALING)),
            (Design::Socket, Some(TARGET_SCALING)),
            (Design::Sqlite, None),
            (Design::Naive, None),
        ] {
            let mut row = format!(
                "  {:<30} @{} / @{} sessions:",
                d.label(),
                thousands(large as f64),
                thousands(small as f64)
            );
            for &w in &cfg.writers {
                if let (Some(hi), Some(lo)) = (r.rate(large, d, w), r.rate(small, d, w)) {
                    let ratio = hi / lo;
                    match target {
                        Some(t) => {
                            row.push_str(&format!("  {w}w {ratio:.2}x {}", verdict(ratio >= t)))
                        }
                        None => row.push_str(&format!("  {w}w {ratio:.3}x")),
                    }
                }
            }
            row.push_str(match target {
                Some(_) => "  (target >= 0.8x)",
                None => "  (for comparison)",
            });
            p(row);
        }
    }
    if let Some(x) = restore {
        p(String::new());
        p(format!(
            "Restore of {} sessions, sessions.json {:.1} MB (page cache warm; median of {}):",
            thousands(x.sessions as f64),
            x.snapshot_bytes as f64 / 1e6,
            cfg.restore_reps
        ));
        p(format!(
            "  worker spawn -> first answered ping       {:>8}",
            ms(x.ping)
        ));
        p(format!(
            "  worker spawn -> first answered get        {:>8}",
            ms(x.get)
        ));
        p(format!(
            "  Store::open in-process                    {:>8}",
            ms(x.open)
        ));
        p(format!(
            "  bare serde_json::from_slice::<Value>      {:>8}  (+ fs::read {})",
            ms(x.parse),
            ms(x.read)
        ));
        let ratio = x.get.as_secs_f64() / x.parse.as_secs_f64();
        p(format!(
            "  restore (spawn -> first get) / bare parse   {ratio:.2}x {} (target <= {TARGET_RESTORE:.1}x)",
            verdict(ratio <= TARGET_RESTORE)
        ));
    }
    p(String::new());
    p(format!(
        "Load average (1/5/15 min) at start: {load_at_start}; at end: {} ({} CPUs)",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    if !r.lines.is_empty() {
        p("Setup:".into());
        for l in &r.lines {
            p(format!("  {l}"));
        }
    }
    print!("{out}");
}
