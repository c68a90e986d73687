use super::*;

/// CPU time in ms of the children this bench has reaped and of theirs
/// (`getrusage`: Linux and macOS, microsecond resolution).
pub(crate) fn reaped_children_ms() -> f64 {
    ms(shared::procs::reaped_children_cpu())
}

/// A process's own CPU time in ms from `ps` (Linux and macOS). Coarse:
/// whole seconds with procps, hundredths of a second on macOS.
pub(crate) fn ps_cpu_ms(pid: u32) -> f64 {
    let p = shared::procs::ps(pid)
        .unwrap_or_else(|e| panic!("ps about pid {pid}: {e}"))
        .unwrap_or_else(|| panic!("pid {pid} is not running"));
    ms(p.cpu)
}

/// Linux only: CPU time of a process from `/proc/<pid>/stat`, in clock
/// ticks: its own (all threads) and that of its children it has reaped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) own: u64,
    pub(crate) children: u64,
}

impl Cpu {
    /// `None` where there is no `/proc` (macOS).
    pub(crate) fn of(pid: u32) -> Option<Cpu> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
        // Fields after the command name (which may hold spaces) start at
        // field 3 (state); utime, stime, cutime, cstime are fields 14-17.
        let rest = stat.rsplit_once(')').expect("a stat line").1;
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|v| v.parse().expect("a number"))
            .collect();
        Some(Cpu {
            own: f[0] + f[1],
            children: f[2] + f[3],
        })
    }

    pub(crate) fn since(self, before: Cpu) -> Cpu {
        Cpu {
            own: self.own - before.own,
            children: self.children - before.children,
        }
    }
}

/// How fine `ps`'s CPU time is here.
pub(crate) const PS_RESOLUTION: &str = if cfg!(target_os = "linux") {
    "procps counts whole seconds"
} else {
    "ps counts hundredths of a second"
};

pub(crate) fn tick_ms() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    1000.0 / if hz > 0 { hz as f64 } else { 100.0 }
}

/// Linux only: a process's own CPU time with nanosecond resolution, the
/// sum over its threads of `/proc/<pid>/task/*/schedstat` (threads that
/// ended are lost).
pub(crate) fn sched_ns(pid: u32) -> Option<u64> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let mut total = 0;
    for e in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(s) = fs::read_to_string(e.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(total)
}
