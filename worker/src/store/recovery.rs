//! Restore on start: snapshot plus journal replay, with damage handled so
//! that nothing acknowledged is lost and nothing unreadable is overwritten.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shared::fsutil::{fsync_dir, remove_leftover_temps};
use shared::paths::DataDir;

use super::journal::{self, Header, JournalFile, Tail};
use super::record::JournalOp;
use super::snapshot::{self, Sessions, SnapshotError};

/// Why the store refuses to open. Every file named here is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another worker holds the lock, or the directory is unusable.
    #[error("{what}: {error}")]
    Io {
        what: String,
        #[source]
        error: io::Error,
    },
    /// `sessions.json` cannot be read.
    #[error(
        "{} is {error}. It was not changed. Restore it from a backup, or move it away to \
         start without those sessions.",
        path.display()
    )]
    Snapshot {
        path: PathBuf,
        #[source]
        error: SnapshotError,
    },
    /// A journal file is damaged in a way that could hide acknowledged writes.
    #[error(
        "journal {} is damaged at byte {offset}: {reason}. It was not changed; records after \
         that point may hold acknowledged writes. Copy it somewhere safe, then move it away \
         to start without them.",
        path.display()
    )]
    Journal {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> OpenError {
    let what = what.into();
    move |error| OpenError::Io { what, error }
}

/// What a start found and did, for the log.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub sessions: usize,
    pub snapshot_bytes: u64,
    pub journals: usize,
    pub replayed_records: usize,
    /// Files and byte ranges set aside in `damaged/`.
    pub set_aside: Vec<String>,
    pub temps_removed: Vec<String>,
    /// Journals `sessions.json` covers, left by a crash: removed unread.
    pub covered_removed: Vec<String>,
    pub elapsed: Duration,
}

/// The restored state and the journal to append to.
pub struct Recovered {
    pub sessions: Sessions,
    pub journal: JournalFile,
    pub report: RecoveryReport,
}

struct JournalPlan {
    path: PathBuf,
    generation: u64,
    bytes: Vec<u8>,
    kind: PlanKind,
}

enum PlanKind {
    /// No record can be in it: set aside with this suffix and reason.
    Blank {
        suffix: &'static str,
        why: &'static str,
    },
    Records {
        scan: journal::Scan,
        version: u16,
    },
}

/// Reads snapshot and journals; refuses on damage before changing anything.
pub fn recover(dir: &DataDir, chunk: u64) -> Result<Recovered, OpenError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    let journal_dir = dir.journal_dir();
    shared::paths::ensure_private_dir(&journal_dir)
        .map_err(io_err(format!("cannot create {}", journal_dir.display())))?;
    // Creating `journal/` synced the data directory, but a run killed
    // between its mkdir and that sync left the entry to the page cache;
    // one sync per start makes sure every write of this run is reachable.
    fsync_dir(dir.root()).map_err(io_err(format!("cannot sync {}", dir.root().display())))?;
    for d in [dir.root(), journal_dir.as_path()] {
        let removed =
            remove_leftover_temps(d).map_err(io_err(format!("cannot clean {}", d.display())))?;
        report.temps_removed.extend(removed);
    }

    let snapshot_path = dir.sessions_json();
    let snapshot = snapshot::load(&snapshot_path).map_err(|error| OpenError::Snapshot {
        path: snapshot_path.clone(),
        error,
    })?;
    report.snapshot_bytes = snapshot.bytes;
    let covers = snapshot.covers_through_generation;
    let mut sessions = snapshot.sessions;

    // Read and judge every journal first; change nothing until all are fine.
    let mut plans = Vec::new();
    let mut covered = Vec::new();
    // A new journal must come after every generation the snapshot covers.
    let mut max_generation = covers.unwrap_or(0);
    for (generation, path) in list_journals(&journal_dir)? {
        max_generation = max_generation.max(generation);
        if covers.is_some_and(|c| generation <= c) {
            // Its records are all in the snapshot (a crash kept the file
            // after the snapshot replaced it). Replaying it could bring
            // back what a later, lost journal changed: never read it.
            covered.push(path);
            continue;
        }
        let bytes = fs::read(&path).map_err(io_err(format!("cannot read {}", path.display())))?;
        let kind = match journal::decode_header(&bytes) {
            Header::Blank => PlanKind::Blank {
                suffix: "blank",
                why: "never used",
            },
            // A header that was never completely written, with nothing
            // after it: a generation cut off while it was being created
            // (releases before the temp-file-and-rename creation could
            // leave one). No record can have been acknowledged in it.
            // With anything after the header it is damage: refuse.
            Header::Damaged
                if bytes[journal::HEADER_LEN.min(bytes.len())..]
                    .iter()
                    .all(|b| *b == 0) =>
            {
                PlanKind::Blank {
                    suffix: "torn-header",
                    why: "its header was never completely written; no records",
                }
            }
            Header::Damaged => {
                return Err(OpenError::Journal {
                    path,
                    offset: 0,
                    reason: "the file header is not a journal header".into(),
                })
            }
            Header::UnknownVersion(v) => {
                return Err(OpenError::Journal {
                    path,
                    offset: 6,
                    reason: format!(
                        "format version {v}; this worker reads versions {} and {}",
                        journal::FORMAT_VERSION_1,
                        journal::FORMAT_VERSION
                    ),
                })
            }
            Header::Valid { generation: g, .. } if g != generation => {
                return Err(OpenError::Journal {
                    path,
                    offset: 8,
                    reason: format!("the header says generation {g}, the name {generation}"),
                })
            }
            Header::Valid { version, .. } => {
                let scan = journal::scan(&bytes, version);
                let what = if version == journal::FORMAT_VERSION_1 {
                    "record"
                } else {
                    "batch"
                };
                match scan.tail {
                    Tail::Corrupt { offset, next_valid } => {
                        return Err(OpenError::Journal {
                            path,
                            offset: offset as u64,
                            reason: format!(
                            "an unreadable {what} with a valid one after it at byte {next_valid}"
                        ),
                        })
                    }
                    Tail::BadBatch { offset, reason } => {
                        return Err(OpenError::Journal {
                            path,
                            offset: offset as u64,
                            reason: reason.into(),
                        })
                    }
                    Tail::Clean | Tail::Torn { .. } => {}
                }
                PlanKind::Records { scan, version }
            }
        };
        plans.push(JournalPlan {
            path,
            generation,
            bytes,
            kind,
        });
    }

    // Replay in generation order. A record is a whole new state of one id,
    // so replaying records the snapshot already holds changes nothing.
    for plan in &plans {
        let PlanKind::Records { scan, .. } = &plan.kind else {
            continue;
        };
        for range in &scan.records {
            let op: JournalOp =
                serde_json::from_slice(&plan.bytes[range.clone()]).map_err(|e| {
                    OpenError::Journal {
                        path: plan.path.clone(),
                        offset: (range.start - journal::RECORD_HEADER_LEN) as u64,
                        reason: format!(
                            "a record with a valid checksum is not a journal entry: {e}"
                        ),
                    }
                })?;
            match op {
                JournalOp::Put(r) => {
                    super::record::apply_put(
                        &mut sessions,
                        r.id,
                        r.data,
                        r.updated_at,
                        r.created_at,
                    );
                }
                JournalOp::Del(id) => {
                    sessions.remove(&id);
                }
            }
            report.replayed_records += 1;
        }
    }
    report.journals = plans.len();
    report.sessions = sessions.len();

    // Now repair: remove covered journals, set torn tails and blank files
    // aside, then pick the journal.
    remove_covered(dir, covered, &mut report)?;
    let damaged_dir = dir.damaged_dir();
    let mut append_to = None;
    for plan in plans {
        match plan.kind {
            PlanKind::Blank { suffix, why } => {
                shared::paths::ensure_private_dir(&damaged_dir)
                    .map_err(io_err(format!("cannot create {}", damaged_dir.display())))?;
                let name = plan.path.file_name().expect("journal files have names");
                let aside = damaged_dir.join(format!("{}.{suffix}", name.to_string_lossy()));
                fs::rename(&plan.path, &aside)
                    .and_then(|_| fsync_dir(&damaged_dir))
                    .and_then(|_| fsync_dir(&journal_dir))
                    .map_err(io_err(format!("cannot set aside {}", plan.path.display())))?;
                report
                    .set_aside
                    .push(format!("{} ({why})", aside.display()));
            }
            PlanKind::Records { scan, version } => {
                if let Tail::Torn { from, to } = scan.tail {
                    let aside =
                        set_aside_torn(&damaged_dir, &plan.path, &plan.bytes[from..to], from)
                            .map_err(io_err(format!(
                                "cannot set aside the torn tail of {}",
                                plan.path.display()
                            )))?;
                    report.set_aside.push(format!(
                        "{} ({} torn bytes from offset {from} of {})",
                        aside.display(),
                        to - from,
                        plan.path.display()
                    ));
                }
                // Only a version 2 journal is appended to; after a version 1
                // one a new generation starts.
                append_to = (version == journal::FORMAT_VERSION).then_some((
                    plan.path,
                    plan.generation,
                    scan.end as u64,
                    scan.next_seq,
                ));
            }
        }
    }

    let journal = match append_to {
        Some((path, generation, end, next_seq)) if generation == max_generation => {
            JournalFile::reopen(&path, generation, end, next_seq, chunk)
                .map_err(io_err(format!("cannot open {}", path.display())))?
        }
        _ => JournalFile::create(&journal_dir, max_generation + 1, chunk).map_err(io_err(
            format!("cannot create a journal in {}", journal_dir.display()),
        ))?,
    };
    report.elapsed = started.elapsed();
    Ok(Recovered {
        sessions,
        journal,
        report,
    })
}

/// Deletes the journals `sessions.json` covers. The snapshot goes first:
/// its rename is made durable (its writer may have died before syncing the
/// directory), so that no power cut can keep the deletions without it.
fn remove_covered(
    dir: &DataDir,
    covered: Vec<PathBuf>,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    if covered.is_empty() {
        return Ok(());
    }
    fsync_dir(dir.root()).map_err(io_err(format!("cannot sync {}", dir.root().display())))?;
    for path in covered {
        fs::remove_file(&path).map_err(io_err(format!("cannot remove {}", path.display())))?;
        report.covered_removed.push(path.display().to_string());
    }
    let journal_dir = dir.journal_dir();
    fsync_dir(&journal_dir).map_err(io_err(format!("cannot sync {}", journal_dir.display())))
}

/// The journal files in `dir`, by generation.
pub fn list_journals(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OpenError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(io_err(format!("cannot list {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("cannot list {}", dir.display())))?;
        if let Some(generation) = journal::parse_file_name(&entry.file_name().to_string_lossy()) {
            out.push((generation, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Copies the torn bytes to `damaged/`, durably, then zeroes them in place.
fn set_aside_torn(
    damaged_dir: &Path,
    journal: &Path,
    torn: &[u8],
    from: usize,
) -> io::Result<PathBuf> {
    shared::paths::ensure_private_dir(damaged_dir)?;
    let name = journal.file_name().expect("journal files have names");
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let aside = damaged_dir.join(format!(
        "{}.torn-at-{from}-{millis}",
        name.to_string_lossy()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)?;
    f.write_all(torn)?;
    shared::sync::full_sync(&f)?;
    fsync_dir(damaged_dir)?;
    let j = fs::OpenOptions::new().write(true).open(journal)?;
    j.write_all_at(&vec![0u8; torn.len()], from as u64)?;
    shared::sync::data_sync(&j)?;
    Ok(aside)
}
