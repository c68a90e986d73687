//! One worker per data directory: an exclusive `flock` on `worker.lock`.
//!
//! The lock dies with the process (SIGKILL included), so a stale lock file
//! is never an obstacle. The holder writes its pid into the file so the
//! refusal can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Held for as long as the worker owns the store.
pub struct StoreLock {
    _lock: Flock<File>,
}

/// Takes the lock at `path` or says who holds it.
pub fn acquire(path: &Path) -> io::Result<StoreLock> {
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
            Ok(StoreLock { _lock: lock })
        }
        Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let who = if pid.is_empty() {
                "another worker".to_string()
            } else {
                format!("another worker (pid {pid})")
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
