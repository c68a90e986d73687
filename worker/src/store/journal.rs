//! The journal: an append-only file of checksummed records.
//!
//! File layout: a 24-byte header, then the records of every group commit,
//! then zeros (the file is preallocated by writing zeros, so an
//! `fdatasync` after an append flushes data only, never a size change).
//!
//! Header: magic `SBJRNL` (6 bytes), format version `u16` LE, generation
//! `u64` LE, CRC-32 of the previous 16 bytes `u32` LE, 4 zero bytes.
//!
//! Record (both versions): payload length `u32` LE, CRC-32 of (length
//! bytes ++ payload) `u32` LE, payload.
//!
//! Version 1 (the first release) is a plain sequence of records; a length
//! of 0 marks the end. Version 2, written since, frames each group commit
//! (one write, one sync) as a batch ([`batch`]), so that a power cut that
//! persists only some sectors of the last write reads as a torn tail. This
//! build reads both and appends only to version 2: a version 1 journal is
//! replayed, then left alone until a snapshot covers it.

mod batch;
mod records;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use batch::{start_batch, BATCH_HEADER_LEN};
pub use records::{encode_record, MAX_RECORD_LEN, RECORD_HEADER_LEN};

pub const MAGIC: &[u8; 6] = b"SBJRNL";
/// The version new journals are written in.
pub const FORMAT_VERSION: u16 = 2;
/// The first release's format: records without batch framing.
pub const FORMAT_VERSION_1: u16 = 1;
pub const HEADER_LEN: usize = 24;

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
    /// A valid header of a version this build reads (1 or 2).
    Valid { generation: u64, version: u16 },
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
    if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
        return Header::UnknownVersion(version);
    }
    let generation = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    Header::Valid {
        generation,
        version,
    }
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
    /// An unreadable record (version 1) or batch (version 2) at `offset`
    /// with a valid one after it at `next_valid`: damage, not a torn
    /// append. Never guess past it.
    Corrupt { offset: usize, next_valid: usize },
    /// A batch at `offset` whose checksum matches but whose records do not
    /// add up: it was written that way, so it is damage, not a torn append.
    BadBatch { offset: usize, reason: &'static str },
}

/// The records of a journal (payload ranges into the bytes) and its tail.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<std::ops::Range<usize>>,
    /// Where the next record (or batch) goes: just after the last valid one.
    pub end: usize,
    /// The sequence number of the next batch (version 2; 1 in version 1).
    pub next_seq: u64,
    pub tail: Tail,
}

/// Reads every record after the header of a journal file's bytes, in the
/// framing of `version` (from [`decode_header`]).
pub fn scan(bytes: &[u8], version: u16) -> Scan {
    if version == FORMAT_VERSION_1 {
        records::scan_v1(bytes)
    } else {
        batch::scan(bytes)
    }
}

/// The journal file being appended to.
pub struct JournalFile {
    pub path: PathBuf,
    pub generation: u64,
    file: File,
    /// Where the next batch is written.
    pos: u64,
    /// The sequence number of the next batch.
    next_seq: u64,
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
                next_seq: 1,
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

    /// Opens an existing version 2 journal to append batch `next_seq` at
    /// `end` (both from its [`Scan`], after recovery).
    pub fn reopen(
        path: &Path,
        generation: u64,
        end: u64,
        next_seq: u64,
        chunk: u64,
    ) -> io::Result<JournalFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let allocated = file.metadata()?.len();
        Ok(JournalFile {
            path: path.to_path_buf(),
            generation,
            file,
            pos: end,
            next_seq,
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

    /// Seals `batch` (built with [`start_batch`], then `count` records
    /// appended) as the next batch, writes it at the end with one write and
    /// makes it durable with one sync.
    ///
    /// The caller has called [`reserve`](Self::reserve) for it. An error
    /// here means the journal can no longer be trusted: the batch may be on
    /// disk, in part, or only in the page cache. Append nothing more to
    /// this file and never sync it again (see `writer.rs`).
    pub fn append_batch(&mut self, batch: &mut [u8], count: u32) -> io::Result<()> {
        batch::seal(batch, count, self.next_seq);
        self.file.write_all_at(batch, self.pos)?;
        shared::sync::data_sync(&self.file)?;
        self.pos += batch.len() as u64;
        self.next_seq += 1;
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
mod batch_tests;
#[cfg(test)]
mod tests;
