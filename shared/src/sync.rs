//! File syncs that work on every volume.
//!
//! On Apple systems a plain `fsync` hands the data to the drive but does not
//! flush the drive's cache; `fcntl(F_FULLFSYNC)` does, and it is what Rust's
//! `sync_all`/`sync_data` use there. SMB shares, exFAT, NTFS, FUSE volumes
//! and some external disks reject it (ENOTSUP, EINVAL, ENOTTY), so a store
//! built on `sync_all` could not sync at all there. Like SQLite, libuv and
//! Go, [`full_sync`] and [`data_sync`] then step down a ladder of methods:
//!
//! - Apple: `F_FULLFSYNC`, then `F_BARRIERFSYNC`, then `fsync`;
//! - elsewhere: `fdatasync`, then `fsync` for [`data_sync`]; `fsync` for
//!   [`full_sync`]. (This twin lets the tests force the fallback on Linux.)
//!
//! A method is left only when the call says it is not supported here
//! ([`unsupported`]). Any other error is returned as it is and nothing else
//! is tried: after a failed sync the kernel may already have dropped the
//! dirty pages, so a "successful" second method would prove nothing.
//!
//! The method that worked is remembered for the whole process (the data
//! directory is one volume), so later syncs go straight to it, and it is
//! logged once. A ladder only ever steps down.
//!
//! For the store benchmark's flush model only, [`BENCH_DELAY_ENV`] makes
//! every successful sync hold its thread a while longer, as a slower disk
//! would (a Mac's `F_FULLFSYNC` takes about 17 ms); see [`bench_pause`].

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use nix::libc;

/// One way to ask the system to make a file durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Apple: writes the data and flushes the drive's cache.
    FullFsync,
    /// Apple: writes the data and orders it after earlier writes, without
    /// flushing the drive's cache.
    BarrierFsync,
    /// Writes the data and the metadata needed to read it back.
    Fdatasync,
    /// Writes the data and all metadata.
    Fsync,
}

impl Method {
    /// The name `stats` and the log use.
    pub fn name(self) -> &'static str {
        match self {
            Method::FullFsync => "F_FULLFSYNC",
            Method::BarrierFsync => "F_BARRIERFSYNC",
            Method::Fdatasync => "fdatasync",
            Method::Fsync => "fsync",
        }
    }

    /// What a fallback to this method means for durability, for the log.
    fn caveat(self) -> &'static str {
        if cfg!(target_vendor = "apple") {
            match self {
                Method::BarrierFsync => {
                    "writes reach the drive in order, but the drive's cache is not \
                     flushed: a power cut can lose the last acknowledged writes"
                }
                _ => {
                    "writes reach the drive, but its cache is not flushed and may \
                     reorder them: a power cut can lose or tear the last acknowledged \
                     writes"
                }
            }
        } else {
            "every sync also writes metadata the data does not need: durability is \
             the same, syncs are slower"
        }
    }

    /// Makes one system call.
    fn call(self, fd: RawFd) -> io::Result<()> {
        let result = match self {
            #[cfg(target_vendor = "apple")]
            Method::FullFsync => nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_FULLFSYNC).map(drop),
            #[cfg(target_vendor = "apple")]
            Method::BarrierFsync => {
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_BARRIERFSYNC).map(drop)
            }
            // Not in any ladder off Apple; "unsupported" if ever asked.
            #[cfg(not(target_vendor = "apple"))]
            Method::FullFsync | Method::BarrierFsync => Err(nix::errno::Errno::ENOTSUP),
            Method::Fdatasync => nix::unistd::fdatasync(fd),
            Method::Fsync => nix::unistd::fsync(fd),
        };
        result.map_err(io::Error::from)
    }
}

/// Whether `error` says the method is not supported for this file (so the
/// next one may be tried), as opposed to a sync that failed.
///
/// ENOTSUP/EOPNOTSUPP: SMB shares (Go's fallback, golang/go#64215). EINVAL:
/// FUSE volumes (macfuse#79), and what Linux answers for files that cannot
/// be synced. ENOTTY: exFAT and external USB disks (restic#4016, libuv#1579).
pub fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == libc::ENOTSUP
            || code == libc::EOPNOTSUPP
            || code == libc::EINVAL
            || code == libc::ENOTTY
    )
}

/// Methods from strongest to weakest and the one this process settled on.
pub struct Ladder {
    /// What the log calls these syncs.
    what: &'static str,
    steps: &'static [Method],
    /// 0 while no sync has succeeded, else the index of the method + 1.
    settled: AtomicU8,
}

impl Ladder {
    pub const fn new(what: &'static str, steps: &'static [Method]) -> Ladder {
        assert!(!steps.is_empty(), "a ladder needs a method");
        Ladder {
            what,
            steps,
            settled: AtomicU8::new(0),
        }
    }

    /// The method syncs settled on (the weakest that had to be used so
    /// far); `None` until one succeeded.
    pub fn method(&self) -> Option<Method> {
        match self.settled.load(Ordering::Acquire) {
            0 => None,
            n => Some(self.steps[n as usize - 1]),
        }
    }

    /// Syncs with the settled method, stepping down while a method is
    /// unsupported; `call` makes the system call. Returns the method used.
    pub fn sync_with(&self, mut call: impl FnMut(Method) -> io::Result<()>) -> io::Result<Method> {
        let start = (self.settled.load(Ordering::Acquire) as usize).saturating_sub(1);
        let mut rejected: Vec<(Method, io::Error)> = Vec::new();
        for (i, &method) in self.steps.iter().enumerate().skip(start) {
            let result = loop {
                match call(method) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            match result {
                Ok(()) => {
                    self.settle(i, &rejected);
                    return Ok(method);
                }
                Err(e) if unsupported(&e) && i + 1 < self.steps.len() => rejected.push((method, e)),
                Err(e) if rejected.is_empty() => return Err(e),
                Err(e) => {
                    let tried = describe(&rejected);
                    let msg = format!("{tried}; {} failed: {e}", method.name());
                    return Err(io::Error::new(e.kind(), msg));
                }
            }
        }
        unreachable!("the last step of a ladder returns")
    }

    /// Records that `steps[i]` works; the first to find it logs it.
    fn settle(&self, i: usize, rejected: &[(Method, io::Error)]) {
        let value = i as u8 + 1;
        if self.settled.fetch_max(value, Ordering::AcqRel) >= value {
            return;
        }
        let method = self.steps[i];
        if i == 0 {
            if self.steps.len() > 1 {
                tracing::info!(
                    method = method.name(),
                    "{} use {}",
                    self.what,
                    method.name()
                );
            }
            return;
        }
        // (Not reached without a rejected method: starting lower than the
        // first step means this step was settled already.)
        tracing::warn!(
            method = method.name(),
            "{} fall back to {} on this volume ({}): {}",
            self.what,
            method.name(),
            describe(rejected),
            method.caveat()
        );
    }
}

fn describe(rejected: &[(Method, io::Error)]) -> String {
    rejected
        .iter()
        .map(|(m, e)| format!("{} is not supported: {e}", m.name()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(target_vendor = "apple")]
static FULL: Ladder = Ladder::new(
    "file syncs",
    &[Method::FullFsync, Method::BarrierFsync, Method::Fsync],
);
#[cfg(not(target_vendor = "apple"))]
static FULL: Ladder = Ladder::new("full file syncs", &[Method::Fsync]);
#[cfg(not(target_vendor = "apple"))]
static DATA: Ladder = Ladder::new("data syncs", &[Method::Fdatasync, Method::Fsync]);

fn full_ladder() -> &'static Ladder {
    &FULL
}

/// Apple has one ladder for both: its `fdatasync` does not flush the
/// drive's cache either.
#[cfg(target_vendor = "apple")]
fn data_ladder() -> &'static Ladder {
    &FULL
}

#[cfg(not(target_vendor = "apple"))]
fn data_ladder() -> &'static Ladder {
    &DATA
}

/// Makes `file`'s data and metadata durable (what `sync_all` promises).
pub fn full_sync(file: &File) -> io::Result<()> {
    full_ladder().sync_with(|m| m.call(file.as_raw_fd()))?;
    bench_pause();
    Ok(())
}

/// Makes `file`'s data durable, with the metadata needed to read it back
/// (what `sync_data` promises).
pub fn data_sync(file: &File) -> io::Result<()> {
    data_ladder().sync_with(|m| m.call(file.as_raw_fd()))?;
    bench_pause();
    Ok(())
}

/// Microseconds every successful sync is held for, when set: a slow disk
/// for the store benchmark's flush model, never for real use (the worker
/// warns at start when it is set).
pub const BENCH_DELAY_ENV: &str = "SECOND_BRAIN_BENCH_SYNC_DELAY_US";

/// The delay [`BENCH_DELAY_ENV`] asks for, read once per process.
pub fn bench_delay() -> Option<std::time::Duration> {
    static DELAY: std::sync::OnceLock<Option<std::time::Duration>> = std::sync::OnceLock::new();
    *DELAY.get_or_init(|| {
        std::env::var(BENCH_DELAY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|us| *us > 0)
            .map(std::time::Duration::from_micros)
    })
}

/// Holds the calling thread for [`bench_delay`], if set: after the real
/// sync, on the thread that made it, so that to the program it is a
/// slower sync and nothing else (the benchmark's bare loop and its SQLite
/// writer call it after their own syncs).
pub fn bench_pause() {
    if let Some(d) = bench_delay() {
        std::thread::sleep(d);
    }
}

/// The method data syncs (every acknowledged write) use in this process,
/// by name; `None` until one has succeeded.
pub fn data_sync_method() -> Option<&'static str> {
    data_ladder().method().map(Method::name)
}

#[cfg(test)]
mod tests;
