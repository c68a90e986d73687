//! Records, the unit of both journal versions, and version 1's scan.
//!
//! Record: payload length `u32` LE, CRC-32 of (length bytes ++ payload)
//! `u32` LE, payload. In version 1 records follow the header one after
//! another, and a length of 0 marks the end: the zero tail.

use std::ops::Range;

use super::{Scan, Tail, HEADER_LEN};

pub const RECORD_HEADER_LEN: usize = 8;
/// No record is larger than this; a length above it is damage.
pub const MAX_RECORD_LEN: usize = 8 * 1024 * 1024;

/// Appends one record (header and payload) to `out`.
pub fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_RECORD_LEN, "record over the limit");
    let len = (payload.len() as u32).to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Tries to read one valid record at `at`; its payload range if so.
pub fn record_at(bytes: &[u8], at: usize) -> Option<Range<usize>> {
    let head = bytes.get(at..at.checked_add(RECORD_HEADER_LEN)?)?;
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len == 0 || len > MAX_RECORD_LEN {
        return None;
    }
    let start = at + RECORD_HEADER_LEN;
    let payload = bytes.get(start..start + len)?;
    let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&head[..4]);
    hasher.update(payload);
    (hasher.finalize() == crc).then_some(start..start + len)
}

/// The index of the last non-zero byte, if any (a word at a time: the
/// zero tail of a preallocated journal is most of the file).
pub fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    const WORD: usize = std::mem::size_of::<u64>();
    let whole = bytes.len() - bytes.len() % WORD;
    if let Some(i) = bytes[whole..].iter().rposition(|b| *b != 0) {
        return Some(whole + i);
    }
    let mut words = bytes[..whole].chunks_exact(WORD);
    let last_word = words.rposition(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")) != 0)?;
    let at = last_word * WORD;
    let i = bytes[at..at + WORD].iter().rposition(|b| *b != 0)?;
    Some(at + i)
}

/// Reads every record after the header of a version 1 journal's bytes.
pub fn scan_v1(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = HEADER_LEN.min(bytes.len());
    while let Some(range) = record_at(bytes, at) {
        at = range.end;
        records.push(range);
    }
    let end = at;
    Scan {
        records,
        end,
        next_seq: 1,
        tail: tail_after(bytes, end, |at| record_at(bytes, at).is_some()),
    }
}

/// How a journal ends after its last readable unit (record or batch),
/// which ends at `end`: clean if only zeros follow (checked a word at a
/// time: the common case); corrupt if a readable unit (`readable`) starts
/// somewhere after `end` among the non-zero bytes; otherwise torn.
pub fn tail_after(bytes: &[u8], end: usize, readable: impl Fn(usize) -> bool) -> Tail {
    match last_nonzero(&bytes[end..]) {
        None => Tail::Clean,
        Some(last) => {
            let to = end + last + 1;
            match (end + 1..to).find(|&at| readable(at)) {
                Some(next_valid) => Tail::Corrupt {
                    offset: end,
                    next_valid,
                },
                None => Tail::Torn { from: end, to },
            }
        }
    }
}
