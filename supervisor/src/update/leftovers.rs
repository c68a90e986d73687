//! git and cargo left running by a supervisor that died without cleaning
//! up (SIGKILL, an abort, a crash).
//!
//! Each command runs in a process group of its own (see `command`), which
//! the supervisor kills on a timeout or when an update is cancelled. A
//! supervisor that dies at once cannot: launchd kills only the job's own
//! process group, Linux without systemd nothing at all, so a build would
//! run on for minutes. So every running command leaves a small record,
//! `<staging>/running/<pgid>` (written after the spawn: a supervisor killed
//! in between leaves no record), removed when the command ends, and the next
//! supervisor to start kills the groups whose supervisor is gone.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shared::procs;
use tracing::{info, warn};

use super::build::Staging;

/// Where this process records its running commands (set once, at start).
static RECORDS: OnceLock<Records> = OnceLock::new();

struct Records {
    dir: PathBuf,
    /// This supervisor: its pid and its program as `ps` names it.
    owner: u32,
    owner_program: String,
}

/// Kills what a dead supervisor left running in the staging area, then
/// records this supervisor's commands there from now on. Called once,
/// when the updater starts, before anything uses the staging area.
pub fn start(staging: &Staging) {
    let dir = staging.running();
    let me = std::process::id();
    let checked = kill_leftovers(&dir, me);
    for killed in &checked.killed {
        warn!(
            pgid = killed.pgid,
            program = %killed.program,
            supervisor = killed.owner,
            "killed a process group left running by a supervisor that is gone"
        );
    }
    if checked.records > 0 {
        info!(
            records = checked.records,
            killed = checked.killed.len(),
            dir = %dir.display(),
            "checked the records of running commands"
        );
    }
    let owner_program = match procs::ps(me) {
        Ok(Some(p)) => p.comm,
        _ => std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    };
    let _ = RECORDS.set(Records {
        dir,
        owner: me,
        owner_program,
    });
}

/// One running command's record; removed when dropped.
pub struct Record {
    path: PathBuf,
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!(path = %self.path.display(), error = %e, "cannot remove a process group record");
            }
        }
    }
}

/// Records that the process group `pgid`, led by `program`, runs for this
/// supervisor. `None` before [`start`] or when the record cannot be written
/// (logged: the command runs anyway, it is only not cleaned up after a
/// crash).
pub fn record(pgid: u32, program: &Path) -> Option<Record> {
    let records = RECORDS.get()?;
    let path = records.dir.join(pgid.to_string());
    let program = program.file_name()?.to_string_lossy();
    let text = format!(
        "supervisor={}\nsupervisor_program={}\nprogram={program}\n",
        records.owner, records.owner_program
    );
    // One small write(2), whole or absent after a SIGKILL (the page cache
    // keeps it). No fsync: a power cut that loses it ends the group too.
    let written = fs::create_dir_all(&records.dir).and_then(|()| {
        let mut f = fs::File::create(&path)?;
        f.write_all(text.as_bytes())
    });
    match written {
        Ok(()) => Some(Record { path }),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot record a running command's process group");
            None
        }
    }
}

/// What [`kill_leftovers`] found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Records read (kept or not).
    pub records: usize,
    pub killed: Vec<Killed>,
}

/// A process group killed at start.
#[derive(Debug, PartialEq)]
pub struct Killed {
    pub pgid: u32,
    pub program: String,
    pub owner: u32,
}

struct Entry {
    owner: u32,
    owner_program: String,
    program: String,
}

/// `key=value` lines; `supervisor_program` may be empty (unknown).
fn parse(text: &str) -> Option<Entry> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(Entry {
        owner: field("supervisor")?.parse().ok()?,
        owner_program: field("supervisor_program")?,
        program: field("program").filter(|p| !p.is_empty())?,
    })
}

/// Whether the supervisor that wrote a record still runs: its pid is
/// alive and runs the same program (else the pid was reused). When `ps`
/// cannot tell, it counts as running: its groups are then left alone.
fn owner_runs(e: &Entry) -> bool {
    match procs::ps(e.owner) {
        Ok(Some(p)) => {
            !p.zombie()
                && (e.owner_program.is_empty() || procs::same_program(&p.comm, &e.owner_program))
        }
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Kills the process groups recorded in `dir` whose supervisor is gone
/// (`me`, the caller, counts as gone: a record of its own pid comes from
/// before a re-exec or from a dead process that had the same pid), and
/// removes their records.
pub fn kill_leftovers(dir: &Path, me: u32) -> Checked {
    let mut checked = Checked::default();
    let Ok(entries) = fs::read_dir(dir) else {
        return checked;
    };
    for entry in entries.flatten() {
        checked.records += 1;
        let path = entry.path();
        let name = entry.file_name();
        let Some(pgid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            warn!(path = %path.display(), "removing a file that is not a process group record");
            let _ = fs::remove_file(&path);
            continue;
        };
        let Some(e) = fs::read_to_string(&path).ok().and_then(|t| parse(&t)) else {
            // Empty while another supervisor writes it, or damaged: whose
            // group it is cannot be told, so it is never killed.
            if !procs::group_exists(pgid) {
                let _ = fs::remove_file(&path);
            }
            continue;
        };
        if e.owner != me && owner_runs(&e) {
            continue; // a live supervisor's command, sharing this staging area
        }
        match may_kill(pgid, &e.program) {
            Some(true) => {
                if killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL).is_ok() {
                    checked.killed.push(Killed {
                        pgid,
                        program: e.program,
                        owner: e.owner,
                    });
                }
            }
            Some(false) => {}
            // `ps` cannot tell: keep the record, try at the next start.
            None => continue,
        }
        let _ = fs::remove_file(&path);
    }
    checked
}

/// Whether the group `pgid` is still the one a record describes, led by
/// `program`. A pgid is the pid of the process that created the group, and
/// no new process gets that pid while the group has a member: so a group
/// that exists is ours unless its leader is alive and runs another program
/// (the group ended, its pid was reused, and that new process made a group
/// of its own). A leader that exited with members left (cargo's compilers)
/// leaves the group ours. (Between this check and the kill lie a few
/// milliseconds, far too few for a group to end and its id to come round
/// again.) `None` when `ps` cannot tell.
fn may_kill(pgid: u32, program: &str) -> Option<bool> {
    if !procs::group_exists(pgid) {
        return Some(false);
    }
    match procs::ps(pgid) {
        Ok(Some(leader)) if !leader.zombie() => {
            let same = procs::same_program(&leader.comm, program);
            if !same {
                info!(pgid, recorded = program, now = %leader.comm, "a recorded process group id is now another program's; left alone");
            }
            Some(same)
        }
        Ok(_) => Some(true),
        Err(e) => {
            warn!(pgid, error = %e, "cannot tell who leads a recorded process group; left alone");
            None
        }
    }
}

#[cfg(test)]
mod tests;
