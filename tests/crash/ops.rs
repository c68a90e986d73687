//! Turns traced system calls into an ordered list of file system operations
//! below one root directory, plus the bytes exchanged with clients.
//!
//! Each traced run is one process (its threads share one fd table): fds
//! are followed through open, dup, fcntl(F_DUPFD), accept and close, with
//! file offsets shared between duplicates. Paths outside the root are
//! ignored. Ordering: a file operation counts where its call returned; a
//! send to a client counts where its call started (the client may read
//! the answer from then on), so an answer is never placed after the sync
//! that should have preceded it.

mod namespace;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::fs::{Fs, FsOp, Ino, ROOT};
use super::trace::Call;
use run::Run;

/// A place in the recorded history: which traced run, which trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub run: u16,
    pub line: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} line {}", self.run + 1, self.line)
    }
}

/// One file system operation, where it happened and what it was.
#[derive(Debug, Clone)]
pub struct TimedOp {
    pub pos: Pos,
    pub op: FsOp,
    /// For reports: the call and the path, e.g. `fsync d/journal`.
    pub what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The worker read these bytes from the client.
    Recv,
    /// The worker sent these bytes to the client.
    Send,
}

/// Bytes on one client connection.
#[derive(Debug, Clone)]
pub struct ClientIo {
    pub pos: Pos,
    pub conn: u32,
    pub dir: Dir,
    pub data: Vec<u8>,
}

/// The recorded history of every run, in order.
pub struct Timeline {
    pub(super) root: PathBuf,
    /// The root's state before the first run (all of it durable).
    pub initial: Fs,
    pub ops: Vec<TimedOp>,
    pub io: Vec<ClientIo>,
    /// Signals delivered to the process: where, and which.
    pub signals: Vec<(Pos, String)>,
    /// Lines the process wrote to its stderr (the log), where they started.
    pub log: Vec<(Pos, String)>,
    /// The page cache's view after the last run.
    pub fs: Fs,
    pub(super) names: HashMap<Ino, String>,
    pub(super) next_ino: Ino,
    pub(super) next_conn: u32,
    pub(super) runs: u16,
}

impl Timeline {
    /// A history rooted at `root`, whose durable state is `initial`.
    pub fn new(root: &Path, initial: Fs) -> Timeline {
        let next_ino = initial.nodes.keys().max().copied().unwrap_or(ROOT) + 1;
        let mut names = HashMap::from([(ROOT, String::new())]);
        let mut stack = vec![(ROOT, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for (name, ino) in initial.entries(dir).into_iter().flatten() {
                let path = format!("{prefix}{name}");
                stack.push((*ino, format!("{path}/")));
                names.insert(*ino, path);
            }
        }
        Timeline {
            root: root.to_path_buf(),
            fs: initial.clone(),
            initial,
            ops: Vec::new(),
            io: Vec::new(),
            signals: Vec::new(),
            log: Vec::new(),
            names,
            next_ino,
            next_conn: 0,
            runs: 0,
        }
    }

    /// Appends one traced run (a process with a fresh fd table).
    pub fn add_run(&mut self, calls: &[Call]) -> Result<(), String> {
        // Calls take effect where they return, except that a close frees
        // its fd number where it starts: another thread may get that
        // number (from accept4, say) while strace still shows the close
        // unfinished.
        let mut calls: Vec<&Call> = calls.iter().collect();
        calls.sort_by_key(|c| match c.name.as_str() {
            "close" | "close_range" => c.entry,
            _ => c.exit,
        });
        let mut run = Run::new(self);
        for call in calls {
            run.call(call)
                .map_err(|e| format!("trace line {}: {}: {e}", call.exit, call.name))?;
        }
        self.io.sort_by_key(|io| io.pos);
        self.runs += 1;
        Ok(())
    }

    pub(super) fn emit(&mut self, line: u32, op: FsOp, what: String) {
        let pos = Pos {
            run: self.runs,
            line,
        };
        match &op {
            FsOp::Create {
                parent, name, ino, ..
            } => {
                let path = self.child_path(*parent, name);
                self.names.insert(*ino, path);
            }
            FsOp::Rename {
                to, to_name, ino, ..
            } => {
                let path = self.child_path(*to, to_name);
                self.names.insert(*ino, path);
            }
            _ => {}
        }
        self.fs.apply(&op);
        self.ops.push(TimedOp { pos, op, what });
    }

    pub(super) fn child_path(&self, parent: Ino, name: &str) -> String {
        match self.names.get(&parent).map(String::as_str) {
            None | Some("") => name.to_string(),
            Some(p) => format!("{p}/{name}"),
        }
    }

    /// The path of `ino` relative to the root, for reports.
    pub fn name(&self, ino: Ino) -> &str {
        self.names.get(&ino).map(String::as_str).unwrap_or("?")
    }
}

#[cfg(test)]
mod tests;
