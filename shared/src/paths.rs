//! The data directory (INTERFACE §3) and what lives in it.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The data directory and the names of the files the processes keep there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The session snapshot.
    pub fn sessions_json(&self) -> PathBuf {
        self.root.join("sessions.json")
    }

    /// The session API socket.
    pub fn worker_sock(&self) -> PathBuf {
        self.root.join("worker.sock")
    }

    /// The supervisor's control socket.
    pub fn supervisor_sock(&self) -> PathBuf {
        self.root.join("supervisor.sock")
    }

    /// The lock a worker holds while it owns the store.
    pub fn worker_lock(&self) -> PathBuf {
        self.root.join("worker.lock")
    }

    /// The lock a supervisor holds while it runs.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.root.join("supervisor.lock")
    }

    /// Where the worker's journal files live.
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// Where damaged or torn bytes are set aside, never deleted.
    pub fn damaged_dir(&self) -> PathBuf {
        self.root.join("damaged")
    }

    /// Creates the directory (0700) if missing and tightens its mode if not.
    ///
    /// Refuses a directory owned by another user: its sessions are not ours.
    pub fn ensure(&self) -> io::Result<()> {
        ensure_private_dir(&self.root)
    }

    /// The uid that owns the data directory; only it may connect.
    pub fn owner_uid(&self) -> io::Result<u32> {
        Ok(fs::metadata(&self.root)?.uid())
    }
}

/// Creates `dir` (and parents) with mode 0700, or sets 0700 on an existing one.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create directory {}: {e}", dir.display()),
            ))
        }
    }
    let meta = fs::metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && me != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {}, not to this user (uid {me})",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
