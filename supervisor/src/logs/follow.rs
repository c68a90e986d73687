//! `supervisor logs --follow`: after the backlog, the lines appended to
//! each process's newest daily file, read every [`POLL`]. A line is printed
//! once its newline is there. When a newer day's file appears, the old one
//! is read to its end first. A file deleted under the follower (retention)
//! is read on through the open handle; one replaced under the same name is
//! read from its start. SIGINT, SIGTERM and a closed stdout end it cleanly.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::daily;
use super::line::{self, Format, Line, Source};
use super::tail::Cursor;

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// A longer line without a newline is printed in pieces of this size.
const MAX_PENDING: usize = 1024 * 1024;

/// Follows the daily files of some processes from where their backlog ended.
pub struct Follower {
    dir: PathBuf,
    tracked: Vec<Tracked>,
}

/// One process's files.
struct Tracked {
    source: Source,
    /// The day of the file being read; none until one exists.
    day: Option<String>,
    /// That file, open, with its device and inode.
    file: Option<(File, (u64, u64))>,
    /// How far it has been read.
    offset: u64,
    /// Bytes read after the last newline.
    pending: Vec<u8>,
    /// The sort time of the last line printed.
    last_at: Option<SystemTime>,
}

impl Follower {
    pub fn new(dir: &Path, cursors: Vec<Cursor>) -> Follower {
        let tracked = cursors
            .into_iter()
            .map(|c| Tracked {
                source: c.source,
                day: c.day,
                file: None,
                offset: c.offset,
                pending: Vec::new(),
                last_at: c.at,
            })
            .collect();
        Follower {
            dir: dir.to_path_buf(),
            tracked,
        }
    }

    /// The whole lines written since the last call, in time order.
    pub fn poll(&mut self) -> Vec<Line> {
        self.tracked
            .iter_mut()
            .map(|t| t.poll(&self.dir))
            .fold(Vec::new(), line::merge)
    }
}

impl Tracked {
    fn poll(&mut self, dir: &Path) -> Vec<Line> {
        let mut out = Vec::new();
        // A directory that cannot be listed (not created yet) has no newer day.
        let days = daily::days(dir, self.source.prefix()).unwrap_or_default();
        loop {
            self.read_new(dir, &mut out);
            let newer = days
                .iter()
                .find(|(day, _)| self.day.as_ref().is_none_or(|current| day > current));
            let Some((day, _)) = newer else {
                return out;
            };
            // The writer has moved on: the old file is complete.
            self.finish(&mut out);
            self.day = Some(day.clone());
            self.file = None;
            self.offset = 0;
        }
    }

    /// Reads the current file from `offset` to its end.
    fn read_new(&mut self, dir: &Path, out: &mut Vec<Line>) {
        let Some(day) = &self.day else { return };
        let path = daily::path(dir, self.source.prefix(), day);
        // A missing path: deleted by retention; the open handle still reads.
        if let Ok(meta) = fs::metadata(&path) {
            let id = (meta.dev(), meta.ino());
            if self.file.as_ref().is_none_or(|(_, open)| *open != id) {
                if let Ok(file) = File::open(&path) {
                    if self.file.is_some() {
                        // Replaced by another file of the same name.
                        self.finish(out);
                        self.offset = 0;
                    }
                    self.file = Some((file, id));
                }
            }
        }
        let Some((file, id)) = self.file.take() else {
            return;
        };
        if file.metadata().is_ok_and(|m| m.len() < self.offset) {
            // Cut shorter than what was read: it starts over.
            self.offset = 0;
            self.pending.clear();
        }
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = file.read_at(&mut buf, self.offset) {
            self.offset += n as u64;
            self.take(&buf[..n], out);
        }
        self.file = Some((file, id));
    }

    /// Splits `bytes` into lines, keeping a last one without its newline.
    fn take(&mut self, bytes: &[u8], out: &mut Vec<Line>) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..nl]);
            self.emit(out);
            rest = &rest[nl + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() >= MAX_PENDING {
            self.emit(out);
        }
    }

    /// Prints what is left of a file that will not grow any more.
    fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.pending.is_empty() {
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut Vec<Line>) {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        let line = Line::new(self.source, text, self.last_at);
        self.last_at = line.at;
        out.push(line);
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM end [`follow`] at its next poll, instead
/// of killing the process.
pub fn catch_stop_signals() -> nix::Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// Whether stdout's reader is gone (a pipe whose reader exited, a hung-up
/// terminal), found without writing to it.
fn stdout_closed() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdout = io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    let gone = PollFlags::POLLERR | PollFlags::POLLHUP;
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0].revents().is_some_and(|r| r.intersects(gone))
}

/// Prints what `follower` finds until a stop signal, or until stdout is
/// closed. A write error (EPIPE included) is returned.
pub fn follow(mut follower: Follower, format: Format, out: &mut dyn Write) -> io::Result<()> {
    while !STOP.load(Ordering::SeqCst) {
        for line in follower.poll() {
            writeln!(out, "{}", line::render(&line, format))?;
        }
        out.flush()?;
        if stdout_closed() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn append(dir: &Path, name: &str, text: &str) {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    fn worker_at(day: Option<&str>, offset: u64) -> Follower {
        Follower {
            dir: PathBuf::new(),
            tracked: vec![Tracked {
                source: Source::Worker,
                day: day.map(String::from),
                file: None,
                offset,
                pending: Vec::new(),
                last_at: None,
            }],
        }
    }

    fn poll(f: &mut Follower, dir: &Path) -> Vec<String> {
        f.dir = dir.to_path_buf();
        f.poll().into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn new_lines_after_the_cursor_and_half_lines_once_complete() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), "worker.2026-12-01.log", "old\n");
        let mut f = worker_at(Some("2026-12-01"), 4);
        assert!(poll(&mut f, dir.path()).is_empty());
        append(dir.path(), "worker.2026-12-01.log", "one\ntw");
        assert_eq!(poll(&mut f, dir.path()), ["one"]);
        assert!(poll(&mut f, dir.path()).is_empty(), "no half line");
        append(dir.path(), "worker.2026-12-01.log", "o\n");
        assert_eq!(poll(&mut f, dir.path()), ["two"]);
    }

    #[test]
    fn a_newer_day_is_read_after_the_rest_of_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), "worker.2026-12-01.log", "a\n");
        let mut f = worker_at(Some("2026-12-01"), 2);
        append(dir.path(), "worker.2026-12-01.log", "b\nunfinished");
        append(dir.path(), "worker.2026-12-02.log", "c\n");
        append(dir.path(), "worker.2026-12-03.log", "d\n");
        assert_eq!(poll(&mut f, dir.path()), ["b", "unfinished", "c", "d"]);
        append(dir.path(), "worker.2026-12-03.log", "e\n");
        assert_eq!(poll(&mut f, dir.path()), ["e"]);
    }

    #[test]
    fn first_file_deleted_and_replaced_files_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        // No file yet: the first one is read from its start.
        let mut f = worker_at(None, 0);
        assert!(poll(&mut f, dir.path().join("missing").as_path()).is_empty());
        append(dir.path(), "worker.2026-12-01.log", "first\n");
        assert_eq!(poll(&mut f, dir.path()), ["first"]);
        // Deleted (retention): nothing breaks, the next day is followed.
        fs::remove_file(dir.path().join("worker.2026-12-01.log")).unwrap();
        assert!(poll(&mut f, dir.path()).is_empty());
        append(dir.path(), "worker.2026-12-02.log", "second\n");
        assert_eq!(poll(&mut f, dir.path()), ["second"]);
        // Replaced under the same name: read from its start.
        fs::remove_file(dir.path().join("worker.2026-12-02.log")).unwrap();
        append(dir.path(), "worker.2026-12-02.log", "again, and longer\n");
        assert_eq!(poll(&mut f, dir.path()), ["again, and longer"]);
        // Truncated: read from its start too.
        fs::write(dir.path().join("worker.2026-12-02.log"), "cut\n").unwrap();
        assert_eq!(poll(&mut f, dir.path()), ["cut"]);
    }

    #[test]
    fn both_processes_are_interleaved_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Follower::new(
            dir.path(),
            Source::ALL
                .iter()
                .map(|&source| Cursor {
                    source,
                    day: None,
                    offset: 0,
                    at: None,
                })
                .collect(),
        );
        append(
            dir.path(),
            "worker.2026-12-01.log",
            "2026-12-01T00:00:02Z w\npanic text\n",
        );
        append(
            dir.path(),
            "supervisor.2026-12-01.log",
            "2026-12-01T00:00:01Z s1\n2026-12-01T00:00:03Z s3\n",
        );
        assert_eq!(
            poll(&mut f, dir.path()),
            [
                "2026-12-01T00:00:01Z s1",
                "2026-12-01T00:00:02Z w",
                "panic text",
                "2026-12-01T00:00:03Z s3"
            ]
        );
    }
}
