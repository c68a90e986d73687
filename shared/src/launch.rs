//! How the supervisor starts a worker: the one place for what both sides
//! of a launch must agree on.
//!
//! A worker started by the supervisor finds, before its first thread:
//!
//! | fd | what | environment |
//! |---|---|---|
//! | [`LISTEN_FD`] (3) | the listening socket, which the supervisor keeps across workers | `LISTEN_FDS=1` (systemd's convention; `LISTEN_PID` and `LISTEN_FDNAMES` unset) |
//! | [`READY_FD`] (4) | write end of the ready pipe | `SECOND_BRAIN_READY_FD=4` |
//! | [`PARENT_FD`] (5) | read end of the parent pipe | `SECOND_BRAIN_PARENT_FD=5` |
//!
//! and takes each fd only if its variable is set, then removes the
//! variables so that nothing it starts inherits them. A worker run by hand
//! has none of them and binds its socket itself.
//!
//! - **The ready pipe** carries [`Report`] lines, worker to supervisor:
//!   first `ready <pid> <commit>` once the worker serves, written together
//!   with the store's health (`store <json>`), then one health line at
//!   every change of the store's state. A worker that predates health
//!   reports closes the pipe after its ready line.
//! - **The parent pipe** carries nothing: the supervisor keeps its write
//!   end open while it runs, so its EOF tells the worker the supervisor is
//!   gone, however it died.

use std::os::fd::RawFd;

use crate::health::StoreHealth;

/// The inherited listening socket.
pub const LISTEN_FD: RawFd = 3;
/// The write end of the ready pipe.
pub const READY_FD: RawFd = 4;
/// The read end of the parent pipe.
pub const PARENT_FD: RawFd = 5;

/// How many sockets start at [`LISTEN_FD`]; the worker takes exactly 1.
pub const LISTEN_FDS_ENV: &str = "LISTEN_FDS";
/// systemd's: the pid the sockets are meant for. Never set for a worker.
pub const LISTEN_PID_ENV: &str = "LISTEN_PID";
/// systemd's: names of the sockets. Never set for a worker.
pub const LISTEN_FDNAMES_ENV: &str = "LISTEN_FDNAMES";
/// The fd number of the ready pipe's write end.
pub const READY_FD_ENV: &str = "SECOND_BRAIN_READY_FD";
/// The fd number of the parent pipe's read end.
pub const PARENT_FD_ENV: &str = "SECOND_BRAIN_PARENT_FD";

/// Every variable of a launch: what a worker started by hand (a test, a
/// bench) must not inherit from its parent's environment.
pub const LAUNCH_ENV: [&str; 5] = [
    LISTEN_FDS_ENV,
    LISTEN_PID_ENV,
    LISTEN_FDNAMES_ENV,
    READY_FD_ENV,
    PARENT_FD_ENV,
];

/// The word that starts a ready line.
const READY_WORD: &str = "ready";
/// The word that starts a health line.
const STORE_WORD: &str = "store";

/// One line on the ready pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `ready <pid> <commit>`: the worker serves. `commit` is the
    /// 40-hex-digit commit it was built from, `None` if unknown (written
    /// as `unknown`).
    Ready { pid: u32, commit: Option<String> },
    /// `store <json>`: the store's health now (`shared::health`).
    Store(StoreHealth),
}

impl Report {
    /// The line, newline included. A health line stays one line whatever
    /// its error text holds (JSON escapes newlines).
    pub fn to_line(&self) -> String {
        match self {
            Report::Ready { pid, commit } => {
                let commit = commit.as_deref().unwrap_or("unknown");
                format!("{READY_WORD} {pid} {commit}\n")
            }
            Report::Store(health) => {
                let json = serde_json::to_string(health).expect("a health report serializes");
                format!("{STORE_WORD} {json}\n")
            }
        }
    }

    /// The report a line carries; `None` for anything else. A commit that
    /// is not 40 hex digits reads as unknown.
    pub fn parse(line: &[u8]) -> Option<Report> {
        let line = std::str::from_utf8(line).ok()?.trim_end();
        let (word, rest) = line.split_once(' ')?;
        match word {
            READY_WORD => {
                let mut words = rest.split_whitespace();
                let pid = words.next()?.parse().ok()?;
                let commit = words
                    .next()
                    .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(String::from);
                Some(Report::Ready { pid, commit })
            }
            STORE_WORD => serde_json::from_str(rest).ok().map(Report::Store),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::StoreState;

    #[test]
    fn ready_lines_round_trip_and_an_unknown_commit_reads_as_none() {
        let sha = "a".repeat(40);
        let ready = Report::Ready {
            pid: 12,
            commit: Some(sha.clone()),
        };
        assert_eq!(ready.to_line(), format!("ready 12 {sha}\n"));
        assert_eq!(Report::parse(ready.to_line().as_bytes()), Some(ready));
        let unknown = Report::Ready {
            pid: 12,
            commit: None,
        };
        assert_eq!(unknown.to_line(), "ready 12 unknown\n");
        assert_eq!(Report::parse(b"ready 12 unknown\n"), Some(unknown));
        assert_eq!(Report::parse(b"hello\n"), None);
        assert_eq!(Report::parse(b"ready\n"), None);
        assert_eq!(Report::parse(b"ready x abc\n"), None);
    }

    #[test]
    fn health_lines_round_trip_and_stay_one_line() {
        let h = StoreHealth {
            state: StoreState::Degraded,
            last_error: Some("a write to /d/j failed\n(Input/output error)".into()),
            since: "2026-12-02T14:00:00.000Z".into(),
        };
        let line = Report::Store(h.clone()).to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.starts_with("store {"), "{line}");
        assert!(line.contains(r#""state":"degraded""#), "{line}");
        assert_eq!(Report::parse(line.as_bytes()), Some(Report::Store(h)));
        let ok = StoreHealth::ok_now();
        let line = Report::Store(ok.clone()).to_line();
        assert_eq!(Report::parse(line.as_bytes()), Some(Report::Store(ok)));
        assert_eq!(Report::parse(b"store {nonsense\n"), None);
    }
}
