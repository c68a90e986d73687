//! `sessions.json` (README, "Files"): read on start, written atomically.
//!
//! Besides the §3 fields it names the journal generations it covers:
//! `"covers_through_generation": N` means it holds every record of every
//! journal up to generation N, so those are never replayed over it (and
//! are deleted if a crash left them). A snapshot without the field (the
//! first release's) covers nothing: every journal is replayed.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use shared::ids::validate_id;
use shared::protocol::Session;

/// The only snapshot format version this build reads and writes.
pub const SNAPSHOT_VERSION: u64 = 1;

/// The sessions of a store, by id.
pub type Sessions = BTreeMap<String, Arc<Session>>;

/// A snapshot as read.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub sessions: Sessions,
    /// Its size in bytes (0 when there is none).
    pub bytes: u64,
    /// Every journal up to this generation is in it; `None` for a snapshot
    /// of the first release, or none at all.
    pub covers_through_generation: Option<u64>,
}

/// Why a snapshot could not be used. The file is left exactly as it was.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read it: {0}")]
    Io(#[source] io::Error),
    /// Not a readable version-1 snapshot; `offset` is the byte where
    /// reading failed.
    #[error("unreadable at byte {offset}: {reason}")]
    Damaged { offset: u64, reason: String },
    /// A version this build does not read.
    #[error(
        "it has format version {0}, and this worker reads version {v} (written by a newer \
         release?)",
        v = SNAPSHOT_VERSION
    )]
    UnknownVersion(serde_json::Value),
}

#[derive(Deserialize)]
struct SnapshotFile {
    version: serde_json::Value,
    #[serde(default)]
    covers_through_generation: Option<u64>,
    sessions: BTreeMap<String, Session>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: serde_json::Value,
}

/// The byte offset of serde_json's (line, column) in `bytes`.
fn byte_offset(bytes: &[u8], err: &serde_json::Error) -> u64 {
    let (line, column) = (err.line(), err.column());
    if line == 0 {
        return 0;
    }
    let mut start = 0usize;
    for _ in 1..line {
        match bytes[start..].iter().position(|b| *b == b'\n') {
            Some(p) => start += p + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(bytes.len()) as u64
}

/// Parses snapshot bytes, checking version and ids.
pub fn parse(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let damaged = |offset: u64, reason: String| SnapshotError::Damaged { offset, reason };
    let file: SnapshotFile = match serde_json::from_slice(bytes) {
        Ok(f) => f,
        Err(e) => {
            // A version other than 1 is reported as such, whatever else fails.
            if let Ok(v) = serde_json::from_slice::<VersionOnly>(bytes) {
                if v.version != serde_json::json!(SNAPSHOT_VERSION) {
                    return Err(SnapshotError::UnknownVersion(v.version));
                }
            }
            return Err(damaged(byte_offset(bytes, &e), e.to_string()));
        }
    };
    if file.version != serde_json::json!(SNAPSHOT_VERSION) {
        return Err(SnapshotError::UnknownVersion(file.version));
    }
    let mut sessions = Sessions::new();
    for (key, session) in file.sessions {
        if key != session.id {
            return Err(damaged(
                0,
                format!("session {key:?} has id {:?}", session.id),
            ));
        }
        if let Err(why) = validate_id(&key) {
            return Err(damaged(0, format!("session {key:?}: {why}")));
        }
        sessions.insert(key, Arc::new(session));
    }
    Ok(Snapshot {
        sessions,
        bytes: bytes.len() as u64,
        covers_through_generation: file.covers_through_generation,
    })
}

/// Reads `path`; a missing file is an empty store that covers nothing.
pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Snapshot::default()),
        Err(e) => Err(SnapshotError::Io(e)),
    }
}

/// Writes the snapshot document for `sessions` (in id order) to `w`,
/// without the generations it covers.
pub fn write_to<'a, W: Write>(
    w: &mut W,
    sessions: impl IntoIterator<Item = &'a Arc<Session>>,
) -> io::Result<()> {
    write_covering(w, None, sessions)
}

/// Writes the snapshot document for `sessions`, saying that it holds
/// every journal up to generation `covers` (see the module doc).
pub fn write_covering<'a, W: Write>(
    w: &mut W,
    covers: Option<u64>,
    sessions: impl IntoIterator<Item = &'a Arc<Session>>,
) -> io::Result<()> {
    write!(w, "{{\"version\":{SNAPSHOT_VERSION},")?;
    if let Some(generation) = covers {
        write!(w, "\"covers_through_generation\":{generation},")?;
    }
    w.write_all(b"\"sessions\":{")?;
    for (i, s) in sessions.into_iter().enumerate() {
        if i > 0 {
            w.write_all(b",\n")?;
        } else {
            w.write_all(b"\n")?;
        }
        serde_json::to_writer(&mut *w, &s.id)?;
        w.write_all(b":")?;
        serde_json::to_writer(&mut *w, &**s)?;
    }
    w.write_all(b"\n}}\n")?;
    Ok(())
}

/// Replaces `path` atomically with a snapshot of `sessions` that holds
/// every journal up to generation `covers`; returns its size.
pub fn save(path: &Path, sessions: &[Arc<Session>], covers: u64) -> io::Result<u64> {
    shared::fsutil::atomic_write(path, |w| write_covering(w, Some(covers), sessions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn session(id: &str, data: &str) -> Arc<Session> {
        Arc::new(Session {
            id: id.into(),
            data: RawValue::from_string(data.into()).unwrap(),
            created_at: "2026-11-24T06:00:00.123Z".into(),
            updated_at: "2026-11-24T06:05:00.456Z".into(),
        })
    }

    #[test]
    fn round_trip_keeps_data_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        let items = vec![
            session("a", r#"{"nested": [1, 2.5, "é\n"], "n": null}"#),
            session("b:c@d", "42"),
        ];
        save(&path, &items, 7).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(loaded.covers_through_generation, Some(7));
        let back = loaded.sessions;
        assert_eq!(back.len(), 2);
        assert_eq!(back["a"].data.get(), items[0].data.get());
        assert_eq!(back["b:c@d"].created_at, "2026-11-24T06:00:00.123Z");
        // Any JSON parser reads it as the §3 document.
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["covers_through_generation"], 7);
        assert_eq!(v["sessions"]["a"]["id"], "a");
        assert_eq!(v["sessions"]["a"]["data"]["nested"][1], 2.5);
    }

    #[test]
    fn empty_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        save(&path, &[], 1).unwrap();
        assert!(load(&path).unwrap().sessions.is_empty());
        let missing = load(&dir.path().join("missing.json")).unwrap();
        assert!(missing.sessions.is_empty());
        assert_eq!(missing.covers_through_generation, None);
        // Without the field (as `write_to` and the first release write it).
        let mut plain = Vec::new();
        write_to(&mut plain, &[]).unwrap();
        assert_eq!(plain, b"{\"version\":1,\"sessions\":{\n}}\n");
        assert_eq!(parse(&plain).unwrap().covers_through_generation, None);
    }

    #[test]
    fn damage_is_reported_with_an_offset() {
        let good = br#"{"version":1,"sessions":{"a":{"id":"a","data":1,"created_at":"x","updated_at":"y"}}}"#;
        for cut in [0, 1, 10, good.len() - 1] {
            match parse(&good[..cut]) {
                Err(SnapshotError::Damaged { offset, .. }) => assert!(offset <= cut as u64),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(b"\0\0\0\0"),
            Err(SnapshotError::Damaged { offset: 0, .. })
        ));
        assert!(matches!(
            parse(br#"{"version":2,"sessions":{"a":"new shape"}}"#),
            Err(SnapshotError::UnknownVersion(_))
        ));
        assert!(matches!(
            parse(br#"{"version":1,"sessions":{"a":{"id":"b","data":1,"created_at":"x","updated_at":"y"}}}"#),
            Err(SnapshotError::Damaged { .. })
        ));
        match parse(b"{\"version\":1,\n\"sessions\":{\"a\":tru}}") {
            Err(SnapshotError::Damaged { offset, .. }) => {
                assert!((28..=34).contains(&offset), "{offset}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_first_release_format_still_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sessions-v1.json");
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.covers_through_generation, None, "covers nothing");
        let sessions = loaded.sessions;
        assert_eq!(sessions.len(), 3);
        assert_eq!(sessions["user-1"].created_at, "2026-11-24T06:00:00.123Z");
        let data: serde_json::Value = serde_json::from_str(sessions["user-1"].data.get()).unwrap();
        assert_eq!(data["messages"][0]["role"], "user");
    }
}
