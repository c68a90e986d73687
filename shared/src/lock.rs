//! One owner per role and data directory: an exclusive `flock` on a lock
//! file (`worker.lock`, `supervisor.lock`).
//!
//! The lock dies with the process (SIGKILL included), so a stale lock file
//! is never an obstacle. The holder writes its pid into the file so a
//! refusal can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Held for as long as the process owns its role; released on drop or death.
pub struct PidLock {
    _lock: Flock<File>,
}

impl PidLock {
    /// The lock's fd (handed over when the supervisor re-executes itself).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }
}

/// Takes the lock at `path` for `who` ("worker", "supervisor") or says
/// which pid holds it.
pub fn acquire(path: &Path, who: &str) -> io::Result<PidLock> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            lock.set_len(0)?;
            lock.rewind()?;
            writeln!(lock, "{}", std::process::id())?;
            Ok(PidLock { _lock: lock })
        }
        Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                format!("another {who}")
            } else {
                format!("another {who} (pid {pid})")
            };
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{who} already owns this data directory ({})",
                    path.display()
                ),
            ))
        }
        Err((_, errno)) => Err(io::Error::from(errno)),
    }
}

/// The pid recorded in a lock file if a live process holds that lock.
pub fn holder(path: &Path) -> Option<u32> {
    let file = OpenOptions::new().read(true).open(path).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => None,
        Err((mut file, _)) => {
            let mut pid = String::new();
            file.read_to_string(&mut pid).ok()?;
            pid.trim().parse().ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert_eq!(holder(&path), None);
        let first = acquire(&path, "worker").unwrap();
        let err = acquire(&path, "worker").err().expect("second lock refused");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(holder(&path), Some(std::process::id()));
        drop(first);
        assert_eq!(holder(&path), None);
        acquire(&path, "worker").unwrap();
    }
}
