//! Version 2: every group commit is one framed batch.
//!
//! Batch: a 24-byte header, then its records.
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0..8   | length of the records that follow, `u64` LE |
//! | 8..12  | number of records, `u32` LE (at least 1) |
//! | 12..20 | sequence number, `u64` LE: 1 for the first batch of a file, then +1 |
//! | 20..24 | CRC-32 of bytes 0..20 ++ the records, `u32` LE |
//!
//! A batch is written with one write and one sync, and a power cut may keep
//! any subset of that write's sectors, so a batch is valid only whole: its
//! checksum covers all of it. Reading stops at the first batch that is not
//! the valid next one. What follows decides what that means: if a valid
//! batch with a sequence number at least the expected one comes later in
//! the file, acknowledged batches lie beyond the damage (corruption);
//! otherwise the damage is the last write, never acknowledged (a torn
//! tail). A later batch cannot be a leftover of an earlier use of the same
//! bytes: a journal is preallocated with zeros and only appended to, and a
//! torn tail is zeroed before anything is appended after it.

use std::ops::Range;

use super::records::{record_at, tail_after};
use super::{Scan, Tail, HEADER_LEN};

pub const BATCH_HEADER_LEN: usize = 24;

/// A later batch whose sequence number is this far past the expected one
/// is not taken for a real batch (it would take 2^32 commits).
const SEQ_WINDOW: u64 = 1 << 32;

/// Starts a batch in `buf`: room for the header, which
/// [`seal`] fills in once the records are appended.
pub fn start_batch(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0u8; BATCH_HEADER_LEN]);
}

/// Fills in the header of `batch` ([`start_batch`] plus `count` records):
/// one checksum pass over its bytes.
pub fn seal(batch: &mut [u8], count: u32, seq: u64) {
    assert!(
        batch.len() > BATCH_HEADER_LEN && count > 0,
        "an empty batch"
    );
    let len = (batch.len() - BATCH_HEADER_LEN) as u64;
    batch[0..8].copy_from_slice(&len.to_le_bytes());
    batch[8..12].copy_from_slice(&count.to_le_bytes());
    batch[12..20].copy_from_slice(&seq.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&batch[..20]);
    hasher.update(&batch[BATCH_HEADER_LEN..]);
    batch[20..24].copy_from_slice(&hasher.finalize().to_le_bytes());
}

/// A batch whose header and checksum are valid.
struct Found {
    count: u32,
    /// Where its records are.
    body: Range<usize>,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The valid batch at `at` whose sequence number `seq_ok` accepts, if any.
/// The cheap checks come first: a search calls this at every offset.
fn batch_at(bytes: &[u8], at: usize, seq_ok: impl Fn(u64) -> bool) -> Option<Found> {
    let head = bytes.get(at..at.checked_add(BATCH_HEADER_LEN)?)?;
    if !seq_ok(u64_at(head, 12)) {
        return None;
    }
    let count = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    let len = u64_at(head, 0);
    let start = at + BATCH_HEADER_LEN;
    if count == 0 || len == 0 || len > (bytes.len() - start) as u64 {
        return None;
    }
    let body = start..start + len as usize;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head[..20]);
    hasher.update(&bytes[body.clone()]);
    let crc = u32::from_le_bytes(head[20..24].try_into().expect("4 bytes"));
    (hasher.finalize() == crc).then_some(Found { count, body })
}

/// Appends the payload ranges of a valid batch's records to `out`; on a
/// mismatch (which its checksum says was written so) says what is wrong.
fn split(bytes: &[u8], found: &Found, out: &mut Vec<Range<usize>>) -> Result<(), &'static str> {
    let mut at = found.body.start;
    for _ in 0..found.count {
        match record_at(bytes, at) {
            Some(payload) if payload.end <= found.body.end => {
                at = payload.end;
                out.push(payload);
            }
            _ => return Err("a batch with a valid checksum holds an unreadable record"),
        }
    }
    if at != found.body.end {
        return Err("a batch with a valid checksum is longer than its records");
    }
    Ok(())
}

/// Reads every batch after the header of a version 2 journal's bytes.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = HEADER_LEN.min(bytes.len());
    let mut seq = 1u64;
    while let Some(found) = batch_at(bytes, at, |s| s == seq) {
        let before = records.len();
        if let Err(reason) = split(bytes, &found, &mut records) {
            records.truncate(before);
            return Scan {
                records,
                end: at,
                next_seq: seq,
                tail: Tail::BadBatch { offset: at, reason },
            };
        }
        at = found.body.end;
        seq += 1;
    }
    let end = at;
    let later = |s: u64| s >= seq && s - seq < SEQ_WINDOW;
    Scan {
        records,
        end,
        next_seq: seq,
        tail: tail_after(bytes, end, |o| batch_at(bytes, o, later).is_some()),
    }
}
