//! Threads that watch a worker by pid and fd: its end (`waitpid`), its
//! readiness line and then its store health reports. All work for a
//! worker started before a re-exec.

use std::os::fd::OwnedFd;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::error;

use shared::health::StoreHealth;
use shared::launch::Report;

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

/// The longest line read from the readiness pipe; a longer one ends the
/// reading (a worker never writes one).
const MAX_REPORT_LINE: u64 = 64 * 1024;

/// Reads the readiness pipe on a thread until it closes: `ready <pid>
/// <commit>` is reported as [`Event::Ready`], each `store …` line
/// as [`Event::Store`] (`shared::launch::Report`). A worker that predates health
/// reports closes the pipe after its ready line.
fn watch_ready(fd: OwnedFd, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let spawned = std::thread::Builder::new()
        .name("worker-ready".into())
        .spawn(move || {
            use std::io::{BufRead, Read};
            let mut pipe = std::io::BufReader::new(std::fs::File::from(fd));
            let mut line = Vec::with_capacity(256);
            loop {
                line.clear();
                match pipe
                    .by_ref()
                    .take(MAX_REPORT_LINE)
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) => return,
                    Ok(_) if !line.ends_with(b"\n") => return,
                    Ok(_) => {}
                    // (read_until itself retries an interrupted read.)
                    Err(_) => return,
                }
                let event = match Report::parse(&line) {
                    // The store's health comes with it (one write): both
                    // reach the actor as one event.
                    Some(Report::Ready { commit, .. }) => {
                        let store = match pipe.buffer().contains(&b'\n') {
                            true => read_health(&mut pipe),
                            false => None,
                        };
                        Event::Ready {
                            generation,
                            commit,
                            store,
                        }
                    }
                    Some(Report::Store(health)) => Event::Store { generation, health },
                    None => continue,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start a thread to wait for the worker's readiness");
    }
}

/// The health on the next line of `pipe`, if it is a health line.
fn read_health(pipe: &mut impl std::io::BufRead) -> Option<StoreHealth> {
    let mut line = Vec::new();
    pipe.read_until(b'\n', &mut line).ok()?;
    match Report::parse(&line)? {
        Report::Store(health) => Some(health),
        Report::Ready { .. } => None,
    }
}

/// Watches the readiness pipe `fd` ([`watch_ready`]) through a duplicate,
/// and returns `fd` for the actor to keep (and to hand over on a re-exec):
/// the thread closes its duplicate when the pipe ends, so the number held
/// stays this pipe's. If no duplicate can be made, the thread reads `fd`
/// itself and `None` is returned: a re-exec then cannot hand the reports
/// over, and status shows the store unknown until the next worker.
pub(super) fn watch_reports(
    fd: OwnedFd,
    generation: u64,
    events: mpsc::UnboundedSender<Event>,
) -> Option<OwnedFd> {
    match fd.try_clone() {
        Ok(reader) => {
            watch_ready(reader, generation, events);
            Some(fd)
        }
        Err(e) => {
            error!(error = %e, "cannot keep the worker's readiness pipe for a re-exec");
            watch_ready(fd, generation, events);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_brings_the_health_written_with_it_and_changes_follow() {
        use shared::health::StoreState;
        use std::io::Write;
        let (r, w) = shared::fd::pipe().expect("a pipe");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let kept = watch_reports(r, 7, tx).expect("the fd is kept");
        let mut w = std::fs::File::from(w);
        let ok = StoreHealth::ok_now();
        let ready = format!("ready 12 unknown\n{}", Report::Store(ok.clone()).to_line());
        w.write_all(ready.as_bytes()).unwrap();
        let degraded = StoreHealth {
            state: StoreState::Degraded,
            last_error: Some("disk on fire".into()),
            since: ok.since.clone(),
        };
        w.write_all(b"noise\n").unwrap();
        w.write_all(Report::Store(degraded.clone()).to_line().as_bytes())
            .unwrap();
        drop(w);
        match rx.blocking_recv() {
            Some(Event::Ready {
                generation: 7,
                commit: None,
                store: Some(h),
            }) => assert_eq!(h, ok),
            _ => panic!("not a ready event with the health"),
        }
        match rx.blocking_recv() {
            Some(Event::Store {
                generation: 7,
                health,
            }) => assert_eq!(health, degraded),
            _ => panic!("not a health event"),
        }
        assert!(rx.blocking_recv().is_none(), "the thread ends at EOF");
        drop(kept);
    }
}
