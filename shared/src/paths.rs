//! The data directory and what lives in it (README, "Files").

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

    /// The installed releases; their layout is the supervisor's
    /// (`supervisor/src/update/releases.rs`).
    pub fn releases_dir(&self) -> PathBuf {
        self.root.join("releases")
    }

    /// Where updates are built, unless configured elsewhere.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// Commits that failed to build or to run, not tried again.
    pub fn held_commits(&self) -> PathBuf {
        self.root.join("held-commits.json")
    }

    /// The binaries `supervisor install` copies for the service to run.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Creates the directory (0700) if missing and tightens its mode if not.
    ///
    /// Refuses a directory owned by another user: its sessions are not ours.
    pub fn ensure(&self) -> io::Result<()> {
        ensure_private_dir(&self.root)
    }

    /// Refuses a data directory whose socket paths are too long for a Unix
    /// socket on this system (see [`check_socket_path`]).
    pub fn check_socket_paths(&self) -> io::Result<()> {
        check_socket_path(&self.worker_sock())?;
        check_socket_path(&self.supervisor_sock())
    }

    /// The uid that owns the data directory; only it may connect.
    pub fn owner_uid(&self) -> io::Result<u32> {
        Ok(fs::metadata(&self.root)?.uid())
    }
}

/// The longest path a Unix socket may have on this system, in bytes:
/// `sun_path` less its closing NUL (107 on Linux, 103 on macOS).
pub fn max_socket_path() -> usize {
    // SAFETY: sockaddr_un is plain bytes and numbers; all zeroes is valid.
    let addr: nix::libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.len() - 1
}

/// An error naming `path`, its length, the limit and what to do, if
/// `path` is too long to bind or connect to as a Unix socket.
pub fn check_socket_path(path: &Path) -> io::Result<()> {
    let len = path.as_os_str().len();
    let max = max_socket_path();
    if len <= max {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the socket path {} is {len} bytes long, more than the {max} bytes a Unix \
             socket path may have on this system; choose a shorter data directory \
             (--data-dir or SECOND_BRAIN_DATA_DIR)",
            path.display()
        ),
    ))
}

/// Creates `dir` (and parents) with mode 0700, durably (each new level's
/// parent is synced: [`crate::fsutil::create_dir_all_durable`]), or sets
/// 0700 on an existing one. Refuses a directory owned by another user.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    crate::fsutil::create_dir_all_durable(dir, 0o700)?;
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
