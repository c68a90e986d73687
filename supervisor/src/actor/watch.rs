//! Threads that watch a worker by pid and fd: its end (`waitpid`) and its
//! readiness line. Both work for a worker started before a re-exec.

use std::os::fd::OwnedFd;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::error;

use super::Event;

fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => format!("signal {sig} ({})", s.as_str()),
        Err(_) => format!("signal {sig}"),
    }
}

/// `exit code 3`, `signal 9 (SIGKILL)`.
pub fn describe_exit(status: &Result<WaitStatus, nix::Error>) -> String {
    match status {
        Ok(WaitStatus::Exited(_, code)) => format!("exit code {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => signal_name(*sig as i32),
        Ok(other) => format!("unknown ({other:?})"),
        Err(e) => format!("unknown (wait failed: {e})"),
    }
}

/// Waits for the worker `pid` on a thread and reports its end.
pub(super) fn watch_exit(pid: u32, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("worker-wait".into())
        .spawn(move || {
            let status = loop {
                match waitpid(Pid::from_raw(pid as i32), None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => break Ok(s),
                    // Stopped or continued: it has not ended.
                    Ok(_) => continue,
                    Err(e) => break Err(e),
                }
            };
            let _ = events.send(Event::Exited { generation, status });
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start a thread to wait for the worker");
    }
}

/// Reads `ready <pid> <commit>` from the readiness pipe on a thread and
/// reports it; nothing is reported if the pipe closes first.
pub(super) fn watch_ready(fd: OwnedFd, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("worker-ready".into())
        .spawn(move || {
            use std::io::Read;
            let mut pipe = std::fs::File::from(fd);
            let mut buf = Vec::with_capacity(128);
            let mut chunk = [0u8; 128];
            while !buf.contains(&b'\n') && buf.len() < 1024 {
                match pipe.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
            }
            if let Some(commit) = parse_ready(&buf) {
                let _ = events.send(Event::Ready { generation, commit });
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start a thread to wait for the worker's readiness");
    }
}

/// `ready <pid> <commit>`: `Some(commit)` (None if unknown) when well formed.
fn parse_ready(line: &[u8]) -> Option<Option<String>> {
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    if words.next() != Some("ready") {
        return None;
    }
    let _pid = words.next();
    let commit = words
        .next()
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from);
    Some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        let sha = "a".repeat(40);
        assert_eq!(
            parse_ready(format!("ready 12 {sha}\n").as_bytes()),
            Some(Some(sha))
        );
        assert_eq!(parse_ready(b"ready 12 unknown\n"), Some(None));
        assert_eq!(parse_ready(b"hello\n"), None);
    }
}
