//! Where the worker listens, and the pipes it shares with a supervisor.
//!
//! Run by hand, the worker binds `worker.sock` itself. Started by the
//! supervisor, it inherits the listening socket, the ready pipe and the
//! parent pipe as `shared::launch` lays out.
//!
//! Run by hand, it never takes a socket that is in use: not while a
//! supervisor runs the service on the data directory (between two of its
//! workers the store lock is free, but `worker.sock` is the supervisor's
//! listening socket, and removing it leaves every later worker serving a
//! socket clients cannot reach by path), and not while anything accepts
//! connections on the path. Only a socket file nobody listens on is stale.

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use shared::launch::{
    LISTEN_FD, LISTEN_FDNAMES_ENV, LISTEN_FDS_ENV, LISTEN_PID_ENV, PARENT_FD_ENV, READY_FD_ENV,
};
use shared::paths::DataDir;

use nix::sys::socket::{getsockopt, sockopt};

/// How the worker gets its listening socket.
#[derive(Debug)]
pub enum ListenSource {
    /// Bind `path` (removing a stale socket file first); unlink it on exit.
    Bind(PathBuf),
    /// A listening socket inherited from the supervisor.
    Inherited(OwnedFd),
}

/// What the supervisor handed over, read from the environment once at
/// start (before any thread exists) and then removed from it so that
/// nothing the worker starts inherits it.
#[derive(Debug, Default)]
pub struct Inherited {
    pub listener: Option<OwnedFd>,
    pub ready: Option<OwnedFd>,
    pub parent: Option<OwnedFd>,
}

fn fd_from_env(name: &str) -> io::Result<Option<OwnedFd>> {
    let Some(raw) = std::env::var_os(name) else {
        return Ok(None);
    };
    std::env::remove_var(name);
    let fd: RawFd = raw
        .to_str()
        .and_then(|s| s.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}={raw:?} is not a file descriptor number above 2"),
            )
        })?;
    check_open(fd, name)?;
    // SAFETY: the supervisor opened this fd for us and nothing else owns it.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn check_open(fd: RawFd, what: &str) -> io::Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)
        .map(|_| ())
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what}: fd {fd} is not open: {e}"),
            )
        })
}

impl Inherited {
    /// Reads and clears the launch variables (`shared::launch`). Call
    /// before starting any thread.
    pub fn from_env() -> io::Result<Inherited> {
        let listener = match std::env::var_os(LISTEN_FDS_ENV) {
            None => None,
            Some(v) => {
                std::env::remove_var(LISTEN_FDS_ENV);
                std::env::remove_var(LISTEN_PID_ENV);
                std::env::remove_var(LISTEN_FDNAMES_ENV);
                if v != "1" {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "LISTEN_FDS={v:?}: the worker takes exactly one socket (LISTEN_FDS=1)"
                        ),
                    ));
                }
                check_open(LISTEN_FD, LISTEN_FDS_ENV)?;
                // SAFETY: LISTEN_FDS=1 hands us LISTEN_FD; nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FD) };
                let listening = getsockopt(&fd, sockopt::AcceptConn).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("LISTEN_FDS=1 but fd {LISTEN_FD} is not a socket: {e}"),
                    )
                })?;
                if !listening {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("LISTEN_FDS=1 but fd {LISTEN_FD} is not a listening socket"),
                    ));
                }
                Some(fd)
            }
        };
        Ok(Inherited {
            listener,
            ready: fd_from_env(READY_FD_ENV)?,
            parent: fd_from_env(PARENT_FD_ENV)?,
        })
    }
}

/// Why a worker run by hand must not serve `dir`: a supervisor holds the
/// data directory's lock (it owns `worker.sock` and starts its own
/// workers). Call before opening the store; `listen` checks the socket.
pub fn supervised(dir: &DataDir) -> Option<String> {
    let sock = dir.worker_sock();
    if let Some(pid) = shared::lock::holder(&dir.supervisor_lock()) {
        return Some(format!(
            "a supervisor (pid {pid}) runs the service on {} and owns {}; a worker run by \
             hand would take that socket from its clients. Use `supervisor status` and \
             `supervisor restart`, or stop the service first (kill -TERM {pid})",
            dir.root().display(),
            sock.display()
        ));
    }
    None
}

/// Why `sock` is not stale: something accepts connections on it.
fn live(sock: &Path) -> Option<String> {
    std::os::unix::net::UnixStream::connect(sock).ok()?;
    Some(format!(
        "{} accepts connections: another process serves it; stop that one first",
        sock.display()
    ))
}

/// A socket this worker bound: removed at exit only if the path still
/// names it (not a socket someone bound there since).
#[derive(Debug)]
pub struct Bound {
    pub path: PathBuf,
    id: (u64, u64),
}

impl Bound {
    pub fn remove_if_ours(self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => {
                let _ = fs::remove_file(&self.path);
            }
            _ => tracing::warn!(
                socket = %self.path.display(),
                "the socket path no longer names this worker's socket; left as it is"
            ),
        }
    }
}

/// A tokio listener from `source`; for `Bind`, the socket to remove at
/// exit. Binding refuses (`AddrInUse`) a path something listens on.
pub fn listen(source: ListenSource) -> io::Result<(tokio::net::UnixListener, Option<Bound>)> {
    match source {
        ListenSource::Inherited(fd) => {
            let std_listener = std::os::unix::net::UnixListener::from(fd);
            // tokio requires non-blocking mode (and panics in debug otherwise).
            std_listener.set_nonblocking(true)?;
            Ok((tokio::net::UnixListener::from_std(std_listener)?, None))
        }
        ListenSource::Bind(path) => {
            if let Some(why) = live(&path) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, why));
            }
            shared::fsutil::remove_stale_socket(&path)?;
            shared::paths::check_socket_path(&path)?;
            let listener = tokio::net::UnixListener::bind(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display()))
            })?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            let m = fs::symlink_metadata(&path)?;
            let id = (m.dev(), m.ino());
            Ok((listener, Some(Bound { path, id })))
        }
    }
}
