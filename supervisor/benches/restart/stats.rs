use super::*;

pub(crate) fn summary(values: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        fmt_ms(pct(values, 50.0)),
        fmt_ms(pct(values, 90.0)),
        fmt_ms(pct(values, 100.0))
    )
}

pub(crate) fn fmt_kib(kib: u64) -> String {
    format!("{:.2} MiB", kib as f64 / 1024.0)
}

/// Resident memory (RSS) of a process, from `ps` on Linux and macOS; on
/// Linux also the part of it that is anonymous memory (heap, stacks)
/// rather than pages of mapped files (code of the binary and libc).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rss {
    pub(crate) total_kib: u64,
    /// Linux only.
    pub(crate) anon_kib: Option<u64>,
}

impl Rss {
    pub(crate) fn of(pid: u32) -> Rss {
        let ps = shared::procs::ps(pid)
            .unwrap_or_else(|e| panic!("ps about pid {pid}: {e}"))
            .unwrap_or_else(|| panic!("pid {pid} is not running"));
        Rss {
            total_kib: ps.rss_kib,
            anon_kib: anon_kib(pid),
        }
    }
}

/// `RssAnon` from `/proc/<pid>/status`: Linux only.
#[cfg(target_os = "linux")]
fn anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    Some(kib.unwrap_or_else(|| panic!("RssAnon in /proc/{pid}/status")))
}

#[cfg(not(target_os = "linux"))]
fn anon_kib(_pid: u32) -> Option<u64> {
    None
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.anon_kib {
            Some(anon) => write!(
                f,
                "{} (anon {anon} KiB + file {} KiB)",
                fmt_kib(self.total_kib),
                self.total_kib.saturating_sub(anon)
            ),
            None => write!(
                f,
                "{} (the anon/file split is Linux-only)",
                fmt_kib(self.total_kib)
            ),
        }
    }
}
