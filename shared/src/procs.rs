//! What one process can learn about another the same way on Linux and
//! macOS: whether it still runs, whether its process group exists, its
//! state, memory, CPU time and program name, and the load average.
//!
//! macOS has no `/proc`, so nothing here reads it: `kill` with signal 0
//! says whether a pid exists, and `ps -o stat=,rss=,time=,comm=`, which
//! procps (Linux) and BSD `ps` (macOS) both understand, tells the rest.

use std::io;
use std::process::Command;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

/// One line of `ps` about a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Ps {
    /// State letters: `R` running, `S` sleeping, `Z` zombie, …
    pub stat: String,
    /// Resident memory in KiB (both `ps` report it in units of 1024 bytes).
    pub rss_kib: u64,
    /// CPU time, user plus system. Coarse: whole seconds with procps,
    /// hundredths of a second on macOS.
    pub cpu: Duration,
    /// The program: Linux gives the file name cut to 15 bytes, macOS may
    /// give the whole path. Compare with [`same_program`].
    pub comm: String,
}

impl Ps {
    /// Exited, and not yet reaped by its parent.
    pub fn zombie(&self) -> bool {
        self.stat.starts_with('Z')
    }
}

/// `ps` about `pid`: `None` if there is no such process, an error if `ps`
/// cannot run or prints something unexpected.
pub fn ps(pid: u32) -> io::Result<Option<Ps>> {
    let out = Command::new("ps")
        .args(["-o", "stat=,rss=,time=,comm=", "-p", &pid.to_string()])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        // Both `ps` exit 1 with no output for a pid that does not exist.
        return Ok(None);
    };
    parse_line(line).map(Some).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected line from ps about pid {pid}: {line:?}"),
        )
    })
}

/// `STAT RSS TIME COMM`, where COMM may hold spaces.
fn parse_line(line: &str) -> Option<Ps> {
    let mut rest = line.trim_start();
    let mut fields = [""; 3];
    for f in &mut fields {
        let end = rest.find(char::is_whitespace)?;
        *f = &rest[..end];
        rest = rest[end..].trim_start();
    }
    Some(Ps {
        stat: fields[0].to_string(),
        rss_kib: fields[1].parse().ok()?,
        cpu: parse_cpu_time(fields[2])?,
        comm: rest.trim_end().to_string(),
    })
}

/// `ps`'s TIME: `[DD-]HH:MM:SS` (procps) or `MM:SS.hh` (macOS).
pub fn parse_cpu_time(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once('-') {
        Some((d, c)) => (d.parse::<u64>().ok()?, c),
        None => (0, text),
    };
    let mut secs = 0.0;
    for part in clock.split(':') {
        let v: f64 = part.parse().ok()?;
        if !v.is_finite() || v < 0.0 {
            return None;
        }
        secs = secs * 60.0 + v;
    }
    Some(Duration::from_secs(days * 86_400) + Duration::from_secs_f64(secs))
}

/// Whether two program names from `ps` (or a file name) name the same
/// program: their file names agree on the first 15 bytes, all Linux keeps.
pub fn same_program(a: &str, b: &str) -> bool {
    fn short(s: &str) -> &[u8] {
        let name = s.trim().rsplit('/').next().unwrap_or("").as_bytes();
        &name[..name.len().min(15)]
    }
    !short(a).is_empty() && short(a) == short(b)
}

fn raw_pid(pid: u32) -> Option<Pid> {
    // 0 and negative numbers mean process groups to kill(2): never here.
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
}

/// Whether `pid` still runs: it exists and is not a zombie. An error only
/// when the pid exists and `ps` cannot tell whether it is a zombie.
pub fn alive(pid: u32) -> io::Result<bool> {
    let Some(raw) = raw_pid(pid) else {
        return Ok(false);
    };
    match kill(raw, None) {
        // EPERM: it exists, but belongs to someone else.
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return Ok(false),
    }
    Ok(ps(pid)?.is_some_and(|p| !p.zombie()))
}

/// Whether a process group `pgid` exists (some member, perhaps a zombie).
pub fn group_exists(pgid: u32) -> bool {
    raw_pid(pgid).is_some_and(|g| matches!(killpg(g, None), Ok(()) | Err(Errno::EPERM)))
}

fn cpu_of(usage: &nix::libc::rusage) -> Duration {
    let time = |t: nix::libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Reaps the child `pid` if it has exited, without waiting (`wait4`): its
/// raw wait status, and the CPU time (user + system) it and the children
/// it reaped used over their lives. Precise to the microsecond on both
/// platforms, where `ps` is not. A child reaped here must not be waited
/// for again (`std::process::Child` would get ECHILD).
pub fn try_reap(pid: u32) -> io::Result<Option<(i32, Duration)>> {
    let raw = raw_pid(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut status = 0;
    // SAFETY: rusage is plain numbers; all zeroes is a valid value.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types.
    let got =
        unsafe { nix::libc::wait4(raw.as_raw(), &mut status, nix::libc::WNOHANG, &mut usage) };
    match got {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        _ => Ok(Some((status, cpu_of(&usage)))),
    }
}

/// CPU time (user + system) of this process's children that it has
/// reaped, and of theirs (`getrusage(RUSAGE_CHILDREN)`).
pub fn reaped_children_cpu() -> Duration {
    // SAFETY: rusage is plain numbers; all zeroes is a valid value.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live local of the right type.
    unsafe { nix::libc::getrusage(nix::libc::RUSAGE_CHILDREN, &mut usage) };
    cpu_of(&usage)
}

/// The 1, 5 and 15 minute load averages (`getloadavg`, in libc on both).
pub fn loadavg() -> Option<[f64; 3]> {
    let mut avg = [0.0f64; 3];
    // SAFETY: the buffer holds the 3 values asked for.
    let n = unsafe { nix::libc::getloadavg(avg.as_mut_ptr(), 3) };
    (n == 3).then_some(avg)
}

/// The load averages as `0.52 0.40 0.31`, or `?`.
pub fn loadavg_text() -> String {
    loadavg().map_or_else(
        || "?".into(),
        |a| format!("{:.2} {:.2} {:.2}", a[0], a[1], a[2]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_lines_of_both_platforms_parse() {
        let linux = parse_line("Ss    4108 00:00:03 bash").unwrap();
        assert_eq!(linux.stat, "Ss");
        assert_eq!(linux.rss_kib, 4108);
        assert_eq!(linux.cpu, Duration::from_secs(3));
        assert_eq!(linux.comm, "bash");
        let mac = parse_line("Z      0   0:01.25 /Applications/Some App.app/x").unwrap();
        assert!(mac.zombie());
        assert_eq!(mac.cpu, Duration::from_millis(1250));
        assert_eq!(mac.comm, "/Applications/Some App.app/x");
        assert_eq!(
            parse_cpu_time("2-01:00:05"),
            Some(Duration::from_secs(2 * 86_400 + 3605))
        );
        assert_eq!(
            parse_cpu_time("61:00.50"),
            Some(Duration::from_millis(3_660_500))
        );
        assert_eq!(parse_line("S 12 nonsense x"), None);
    }

    #[test]
    fn programs_compare_by_file_name_as_linux_cuts_it() {
        assert!(same_program("cargo", "/usr/local/bin/cargo"));
        assert!(same_program(
            "supervisor-with",
            "supervisor-with-a-long-name"
        ));
        assert!(!same_program("git", "cargo"));
        assert!(!same_program("", ""));
    }

    #[test]
    fn a_child_is_alive_then_a_zombie_then_gone() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let me = ps(pid).unwrap().expect("ps sees the child");
        assert!(same_program(&me.comm, "sleep"), "{me:?}");
        assert!(alive(pid).unwrap());
        assert!(group_exists(nix::unistd::getpgrp().as_raw() as u32));
        kill(Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
        // Not reaped yet: a zombie, which does not count as alive.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ps(pid).unwrap().is_some_and(|p| p.zombie()) {
            assert!(std::time::Instant::now() < deadline, "no zombie seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!alive(pid).unwrap());
        child.wait().unwrap();
        assert_eq!(ps(pid).unwrap(), None);
        assert!(!alive(pid).unwrap());
        assert!(!alive(0).unwrap());
        assert!(!group_exists(0));
    }

    #[test]
    fn reaping_tells_the_cpu_a_child_used() {
        let before = reaped_children_cpu();
        // Reaped by `try_reap`, not by `Child::wait`.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let (status, cpu) = loop {
            if let Some(done) = try_reap(child.id()).unwrap() {
                break done;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child never ended"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status, 0);
        assert!(cpu > Duration::from_millis(5), "{cpu:?}");
        assert!(reaped_children_cpu() >= before + cpu);
    }

    #[test]
    fn the_load_average_is_read() {
        let avg = loadavg().expect("getloadavg works");
        assert!(avg.iter().all(|v| *v >= 0.0), "{avg:?}");
    }
}
