//! The clock: nothing the store wrote is stamped later than now. A clock
//! set back (or one that ran ahead when the store wrote) gives new
//! sessions `updated_at` times older than those already stored.
//!
//! Read cheaply: the `updated_at` of the newest journal's last put (the
//! tail of one file; a put record ends with its `updated_at`), and the
//! modification times of that journal and of `sessions.json`, which the
//! kernel stamps with the same clock.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Check, Context};
use crate::status::human_duration;

/// A timestamp up to this far ahead of now is clock drift, not a problem.
pub const TOLERANCE: Duration = Duration::from_secs(60);

/// How much of a journal's end is read: past its preallocated zeros
/// (1 MiB at most) to the last records.
const TAIL_LIMIT: u64 = 4 * 1024 * 1024;

/// How far before the last written byte the last `updated_at` is looked for.
const RECORD_WINDOW: usize = 64 * 1024;

const FIELD: &[u8] = br#""updated_at":""#;

/// The newest file in `dir` (by modification time), temp files left out.
fn newest_file(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".tmp-"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| (e.path(), meta.modified().ok()))
        })
        .filter_map(|(p, t)| Some((p, t?)))
        .max_by_key(|(_, t)| *t)
}

/// The `updated_at` of the last put record in `journal`: found in the
/// bytes before its preallocated zeros.
pub fn last_updated_at(journal: &Path) -> Option<String> {
    let mut file = File::open(journal).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL_LIMIT);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.take(TAIL_LIMIT).read_to_end(&mut tail).ok()?;
    let end = tail.iter().rposition(|b| *b != 0)? + 1;
    let window = &tail[end.saturating_sub(RECORD_WINDOW)..end];
    let at = window.windows(FIELD.len()).rposition(|w| w == FIELD)? + FIELD.len();
    let value = &window[at..];
    let close = value.iter().position(|b| *b == b'"')?;
    String::from_utf8(value[..close].to_vec()).ok()
}

/// The newest timestamp the store left: (time, where it was read).
fn newest_stamp(ctx: &Context) -> Option<(SystemTime, String)> {
    let mut found = Vec::new();
    if let Some((journal, modified)) = newest_file(&ctx.data_dir.journal_dir()) {
        let name = journal.display().to_string();
        if let Some(text) = last_updated_at(&journal) {
            if let Some(t) = shared::time::parse_rfc3339(&text) {
                found.push((t, format!("the last write's updated_at in {name}")));
            }
        }
        found.push((modified, format!("the modification time of {name}")));
    }
    let snapshot = ctx.data_dir.sessions_json();
    if let Ok(modified) = std::fs::metadata(&snapshot).and_then(|m| m.modified()) {
        found.push((
            modified,
            format!("the modification time of {}", snapshot.display()),
        ));
    }
    found.into_iter().max_by_key(|(t, _)| *t)
}

/// How to set the clock right on this system.
#[cfg(target_os = "macos")]
const SET_CLOCK: &str =
    "turn on \"Set time and date automatically\" in System Settings > General > Date & Time";
#[cfg(not(target_os = "macos"))]
const SET_CLOCK: &str = "turn on network time (`timedatectl set-ntp true`)";

/// 12. Nothing in the store is stamped later than now.
pub fn clock(ctx: &Context) -> Check {
    const NAME: &str = "clock";
    let now = SystemTime::now();
    let shown_now = shared::time::rfc3339(now);
    let Some((newest, source)) = newest_stamp(ctx) else {
        return Check::pass(
            NAME,
            format!("now {shown_now}; the store has written nothing yet to compare"),
        );
    };
    let shown = shared::time::rfc3339(newest);
    match newest.duration_since(now) {
        Ok(ahead) if ahead > TOLERANCE => Check::fail(
            NAME,
            format!(
                "now {shown_now}, but {source} is {shown}, {} in the future: the clock is behind \
                 (or was ahead when the store wrote)",
                human_duration(ahead.as_secs())
            ),
            SET_CLOCK,
        ),
        _ => Check::pass(
            NAME,
            format!("now {shown_now}; the store's newest timestamp ({source}) is {shown}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal's bytes: a header, records, then preallocated zeros.
    fn journal(records: &[&str]) -> Vec<u8> {
        let mut bytes = b"SBJRNL\x02\0".to_vec();
        bytes.extend([0u8; 16]);
        for r in records {
            bytes.extend((r.len() as u32).to_le_bytes());
            bytes.extend([7u8; 4]);
            bytes.extend(r.as_bytes());
        }
        bytes.extend(vec![0u8; 1024 * 1024]);
        bytes
    }

    #[test]
    fn the_last_puts_own_updated_at_is_found_past_the_zeros() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("j");
        let put = |id: &str, at: &str| {
            format!(
                r#"{{"put":{{"id":"{id}","data":{{"updated_at":"1999-01-01T00:00:00Z"}},"updated_at":"{at}"}}}}"#
            )
        };
        let first = put("a", "2026-01-01T00:00:00.000Z");
        let second = put("b", "2026-01-02T00:00:00.000Z");
        std::fs::write(&path, journal(&[&first, &second, r#"{"del":"a"}"#])).unwrap();
        assert_eq!(
            last_updated_at(&path).as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        std::fs::write(&path, journal(&[])).unwrap();
        assert_eq!(last_updated_at(&path), None);
    }

    #[test]
    fn a_store_stamped_in_the_future_fails_the_check() {
        let tmp = tempfile::tempdir().unwrap();
        let data = shared::paths::DataDir::new(tmp.path());
        std::fs::create_dir(data.journal_dir()).unwrap();
        let ctx = || super::super::settings::test_context(data.clone());
        assert!(clock(&ctx()).ok, "nothing written yet");
        let record = r#"{"put":{"id":"a","data":1,"updated_at":"2999-01-01T00:00:00.000Z"}}"#;
        std::fs::write(data.journal_dir().join("1.journal"), journal(&[record])).unwrap();
        let check = clock(&ctx());
        assert!(!check.ok, "{check:?}");
        assert!(
            check.detail.contains("2999-01-01T00:00:00.000Z"),
            "{check:?}"
        );
        assert!(check.detail.contains("in the future"), "{check:?}");
        let past = r#"{"put":{"id":"a","data":1,"updated_at":"2020-01-01T00:00:00.000Z"}}"#;
        std::fs::write(data.journal_dir().join("1.journal"), journal(&[past])).unwrap();
        assert!(clock(&ctx()).ok);
    }
}
