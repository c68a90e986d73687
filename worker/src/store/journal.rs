//! The journal: an append-only file of checksummed records.
//!
//! File layout: a 24-byte header, then records, then zeros (the file is
//! preallocated by writing zeros, so an `fdatasync` after an append flushes
//! data only, never a size change).
//!
//! Header: magic `SBJRNL` (6 bytes), format version `u16` LE, generation
//! `u64` LE, CRC-32 of the previous 16 bytes `u32` LE, 4 zero bytes.
//!
//! Record: payload length `u32` LE, CRC-32 of (length bytes ++ payload)
//! `u32` LE, payload. A length of 0 marks the end: the zero tail.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 6] = b"SBJRNL";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 8;
/// No record is larger than this; a length above it is damage.
pub const MAX_RECORD_LEN: usize = 8 * 1024 * 1024;

/// Encodes the file header for `generation`.
pub fn encode_header(generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..6].copy_from_slice(MAGIC);
    h[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&h[..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// What the first bytes of a journal file say.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A valid header of a version this build reads.
    Valid { generation: u64 },
    /// Empty or all zeros: created, never used; nothing acknowledged is in it.
    Blank,
    /// A valid header of another format version.
    UnknownVersion(u16),
    /// Anything else.
    Damaged,
}

/// Reads the header of a whole journal file's bytes.
pub fn decode_header(bytes: &[u8]) -> Header {
    if bytes.iter().all(|b| *b == 0) {
        return Header::Blank;
    }
    if bytes.len() < HEADER_LEN || &bytes[..6] != MAGIC {
        return Header::Damaged;
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&bytes[..16]) {
        return Header::Damaged;
    }
    let version = u16::from_le_bytes(bytes[6..8].try_into().expect("2 bytes"));
    if version != FORMAT_VERSION {
        return Header::UnknownVersion(version);
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    Header::Valid { generation }
}

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
fn record_at(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let head = bytes.get(at..at + RECORD_HEADER_LEN)?;
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

/// How the records of a journal end.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// The records end at the end of the file or where only zeros follow.
    Clean,
    /// Unreadable bytes `from..to` follow the last record and nothing valid
    /// comes after them: an append that never completed, so never
    /// acknowledged. Truncate it, keep the bytes aside.
    Torn { from: usize, to: usize },
    /// An unreadable record at `offset` with a valid one after it at
    /// `next_valid`: damage, not a torn append. Never guess past it.
    Corrupt { offset: usize, next_valid: usize },
}

/// The records of a journal (payload ranges into the bytes) and its tail.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<std::ops::Range<usize>>,
    /// Where the next record goes: just after the last valid one.
    pub end: usize,
    pub tail: Tail,
}

/// The index of the last non-zero byte, if any (a word at a time: the
/// zero tail of a preallocated journal is most of the file).
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
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

/// Reads every record after the header of a journal file's bytes.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = HEADER_LEN.min(bytes.len());
    while let Some(range) = record_at(bytes, at) {
        at = range.end;
        records.push(range);
    }
    let end = at;
    let rest = &bytes[end..];
    // The common case, a clean zero tail, is checked a word at a time.
    let tail = match last_nonzero(rest) {
        None => Tail::Clean,
        Some(last_nonzero) => {
            let to = end + last_nonzero + 1;
            match (end + 1..to).find(|&at| record_at(bytes, at).is_some()) {
                Some(next_valid) => Tail::Corrupt {
                    offset: end,
                    next_valid,
                },
                None => Tail::Torn { from: end, to },
            }
        }
    };
    Scan { records, end, tail }
}

/// The journal file being appended to.
pub struct JournalFile {
    pub path: PathBuf,
    pub generation: u64,
    file: File,
    /// Where the next record is written.
    pos: u64,
    /// How far the file is preallocated with zeros.
    allocated: u64,
    chunk: u64,
}

/// What [`JournalFile::create`] makes durable, in order: the new file's
/// bytes, then the directory entry that gives it its name.
pub(crate) enum Durable<'a> {
    File(&'a File),
    Dir(&'a Path),
}

/// The real syncs for [`Durable`] steps.
fn sync_for_real(step: Durable<'_>) -> io::Result<()> {
    match step {
        Durable::File(file) => shared::sync::full_sync(file),
        Durable::Dir(dir) => shared::fsutil::fsync_dir(dir),
    }
}

/// Writes zeros over `from..to` of `file` (not synced).
fn fill_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

impl JournalFile {
    /// Creates journal `generation` in `dir`, durably, and never visible
    /// under its name with a partial header:
    ///
    /// 1. a temp file `.tmp-<name>` (0600) gets the header and the first
    ///    chunk of zeros, and is synced;
    /// 2. it is renamed to its name (a journal there is never replaced);
    /// 3. `dir` is synced.
    ///
    /// A power cut before 2 completes leaves the temp file, which the next
    /// start removes (`recovery.rs`), or nothing; after 2, the name can only
    /// point at the bytes synced in 1, since a rename moves an entry, not
    /// data. Before 3 completes the entry itself may be lost, but nothing
    /// was written to the journal yet. On an error nothing is left behind.
    pub fn create(dir: &Path, generation: u64, chunk: u64) -> io::Result<JournalFile> {
        Self::create_with(dir, generation, chunk, &mut sync_for_real)
    }

    /// [`create`](Self::create) with the syncs passed in, so that tests
    /// can check what exists at each one.
    pub(crate) fn create_with(
        dir: &Path,
        generation: u64,
        chunk: u64,
        sync: &mut dyn FnMut(Durable<'_>) -> io::Result<()>,
    ) -> io::Result<JournalFile> {
        let name = file_name(generation);
        let path = dir.join(&name);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} already exists; a journal is never replaced",
                        path.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let tmp = dir.join(format!("{}{name}", shared::fsutil::TEMP_PREFIX));
        let allocated = (HEADER_LEN as u64 + 1).div_ceil(chunk.max(1)) * chunk.max(1);
        let mut renamed = false;
        let result = (|| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all_at(&encode_header(generation), 0)?;
            fill_zeros(&file, HEADER_LEN as u64, allocated)?;
            sync(Durable::File(&file))?;
            std::fs::rename(&tmp, &path)?;
            renamed = true;
            sync(Durable::Dir(dir))?;
            Ok(file)
        })();
        match result {
            Ok(file) => Ok(JournalFile {
                path,
                generation,
                file,
                pos: HEADER_LEN as u64,
                allocated,
                chunk,
            }),
            Err(e) => {
                // Nothing was written to it: take it back, so that a retry
                // can create this generation.
                let _ = std::fs::remove_file(if renamed { &path } else { &tmp });
                Err(e)
            }
        }
    }

    /// Opens an existing journal to append at `end` (after recovery).
    pub fn reopen(path: &Path, generation: u64, end: u64, chunk: u64) -> io::Result<JournalFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let allocated = file.metadata()?.len();
        Ok(JournalFile {
            path: path.to_path_buf(),
            generation,
            file,
            pos: end,
            allocated,
            chunk,
        })
    }

    /// Bytes of records and header written so far.
    pub fn written(&self) -> u64 {
        self.pos
    }

    /// Makes sure `extra` more bytes fit in the zero-filled area, writing
    /// and syncing another chunk of zeros if not. A failure here (a full
    /// disk) leaves the journal as it was.
    pub fn reserve(&mut self, extra: u64) -> io::Result<()> {
        let need = self.pos + extra;
        if need <= self.allocated {
            return Ok(());
        }
        let new_end = need.div_ceil(self.chunk).max(1) * self.chunk;
        fill_zeros(&self.file, self.allocated, new_end)?;
        shared::sync::full_sync(&self.file)?;
        self.allocated = new_end;
        Ok(())
    }

    /// Writes encoded records at the end and makes them durable.
    ///
    /// The caller has called [`reserve`](Self::reserve) for them. An error
    /// here means the journal can no longer be trusted to be durable.
    pub fn append_durable(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.pos)?;
        shared::sync::data_sync(&self.file)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

/// `0000000000000001.journal`.
pub fn file_name(generation: u64) -> String {
    format!("{generation:016x}.journal")
}

/// The generation a journal file name stands for, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".journal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = encode_header(7).to_vec();
        let mut starts = Vec::new();
        for p in payloads {
            starts.push(bytes.len());
            encode_record(p, &mut bytes);
        }
        (bytes, starts)
    }

    const PAYLOADS: [&[u8]; 3] = [
        b"{\"del\":\"a\"}",
        b"second record",
        b"the third and last one",
    ];

    #[test]
    fn header_round_trip_and_damage() {
        let h = encode_header(42);
        assert_eq!(decode_header(&h), Header::Valid { generation: 42 });
        assert_eq!(decode_header(&[]), Header::Blank);
        assert_eq!(decode_header(&[0; 100]), Header::Blank);
        let mut bad = h;
        bad[9] ^= 1;
        assert_eq!(decode_header(&bad), Header::Damaged);
        assert_eq!(decode_header(&h[..10]), Header::Damaged);
        assert_eq!(decode_header(b"garbage garbage garbage!"), Header::Damaged);
        let mut v2 = h;
        v2[6] = 2;
        let crc = crc32fast::hash(&v2[..16]);
        v2[16..20].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_header(&v2), Header::UnknownVersion(2));
    }

    #[test]
    fn clean_journal_with_and_without_zero_tail() {
        let (bytes, _) = journal(&PAYLOADS);
        let s = scan(&bytes);
        assert_eq!(s.records.len(), 3);
        assert_eq!(&bytes[s.records[2].clone()], PAYLOADS[2]);
        assert_eq!(s.end, bytes.len());
        assert_eq!(s.tail, Tail::Clean);
        let mut padded = bytes.clone();
        padded.resize(bytes.len() + 4096, 0);
        let s = scan(&padded);
        assert_eq!(
            (s.records.len(), s.end, s.tail),
            (3, bytes.len(), Tail::Clean)
        );
    }

    #[test]
    fn truncation_at_every_offset_of_the_last_record_is_a_torn_tail() {
        let (bytes, starts) = journal(&PAYLOADS);
        let last = starts[2];
        for cut in last..bytes.len() {
            for pad in [0usize, 4096] {
                let mut b = bytes[..cut].to_vec();
                b.resize(cut + pad, 0);
                let s = scan(&b);
                assert_eq!(s.records.len(), 2, "cut at {cut}");
                assert_eq!(s.end, last, "cut at {cut}");
                // Truncation inside the length field can leave only zeros.
                let nonzero = bytes[last..cut].iter().any(|x| *x != 0);
                let expected = if nonzero {
                    let to = last + bytes[last..cut].iter().rposition(|x| *x != 0).unwrap() + 1;
                    Tail::Torn { from: last, to }
                } else {
                    Tail::Clean
                };
                assert_eq!(s.tail, expected, "cut at {cut} pad {pad}");
            }
        }
    }

    #[test]
    fn bit_flips_in_the_last_record_are_a_torn_tail() {
        let (bytes, starts) = journal(&PAYLOADS);
        let last = starts[2];
        for at in last..bytes.len() {
            for bit in [0, 3, 7] {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                let s = scan(&b);
                assert_eq!(s.records.len(), 2, "flip at {at}");
                assert!(
                    matches!(s.tail, Tail::Torn { from, .. } if from == last),
                    "flip at {at}: {:?}",
                    s.tail
                );
            }
        }
    }

    #[test]
    fn a_bad_record_followed_by_good_ones_is_corruption() {
        let (bytes, starts) = journal(&PAYLOADS);
        // Flip bits in the length, the checksum and the payload of record 0 and 1.
        for rec in 0..2 {
            for at in [starts[rec], starts[rec] + 5, starts[rec] + 9] {
                let mut b = bytes.clone();
                b[at] ^= 0x10;
                let s = scan(&b);
                assert_eq!(s.records.len(), rec, "flip at {at}");
                match s.tail {
                    Tail::Corrupt { offset, next_valid } => {
                        assert_eq!(offset, starts[rec]);
                        assert_eq!(next_valid, starts[rec + 1]);
                    }
                    other => panic!("flip at {at}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn zeroed_record_in_the_middle_is_corruption() {
        let (mut bytes, starts) = journal(&PAYLOADS);
        bytes[starts[1]..starts[2]].fill(0);
        let s = scan(&bytes);
        assert_eq!(s.records.len(), 1);
        assert_eq!(
            s.tail,
            Tail::Corrupt {
                offset: starts[1],
                next_valid: starts[2]
            }
        );
    }

    #[test]
    fn garbage_after_the_records_is_torn() {
        let (mut bytes, _) = journal(&PAYLOADS);
        let end = bytes.len();
        bytes.extend_from_slice(&[0xff; 100]);
        bytes.extend_from_slice(&[0; 100]);
        let s = scan(&bytes);
        assert_eq!(
            s.tail,
            Tail::Torn {
                from: end,
                to: end + 100
            }
        );
    }

    #[test]
    fn last_nonzero_finds_the_last_set_byte_anywhere() {
        assert_eq!(last_nonzero(&[]), None);
        assert_eq!(last_nonzero(&[0; 37]), None);
        for len in [1usize, 7, 8, 9, 16, 37, 64] {
            for at in 0..len {
                let mut b = vec![0u8; len];
                b[at] = 1;
                if at > 0 {
                    b[0] = 9;
                }
                assert_eq!(last_nonzero(&b), Some(at), "len {len} at {at}");
            }
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(26), "000000000000001a.journal");
        assert_eq!(parse_file_name("000000000000001a.journal"), Some(26));
        assert_eq!(parse_file_name("1a.journal"), None);
        assert_eq!(parse_file_name("000000000000001a.journal.torn"), None);
    }

    #[test]
    fn created_journal_is_preallocated_and_appends_land() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = JournalFile::create(dir.path(), 3, 4096).unwrap();
        assert_eq!(std::fs::metadata(&j.path).unwrap().len(), 4096);
        let mut rec = Vec::new();
        encode_record(b"hello", &mut rec);
        j.reserve(rec.len() as u64).unwrap();
        j.append_durable(&rec).unwrap();
        let big = vec![b'x'; 5000];
        let mut rec2 = Vec::new();
        encode_record(&big, &mut rec2);
        j.reserve(rec2.len() as u64).unwrap();
        j.append_durable(&rec2).unwrap();
        let bytes = std::fs::read(&j.path).unwrap();
        assert_eq!(bytes.len(), 8192);
        assert_eq!(decode_header(&bytes), Header::Valid { generation: 3 });
        let s = scan(&bytes);
        assert_eq!(s.records.len(), 2);
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(s.end as u64, j.written());
    }
}
