//! Binding the two sockets the supervisor owns for its whole life.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::sys::socket::{bind, UnixAddr};

/// Pending connections the kernel keeps while no worker accepts (during a
/// restart). Asked for explicitly; the kernel clamps it to its own maximum
/// (`kern.ipc.somaxconn`, 128 by default on macOS; 4096 on recent Linux).
pub const BACKLOG: i32 = 1024;

/// A listening Unix socket at `path` (mode 0600, CLOEXEC, blocking: each
/// worker sets its own mode on its copy).
pub fn bind_listener(path: &Path) -> io::Result<OwnedFd> {
    shared::fsutil::remove_stale_socket(path)?;
    shared::paths::check_socket_path(path)?;
    let fd = shared::fd::unix_stream_socket()?;
    let addr = UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind {}: {e}", path.display()),
        )
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    shared::fd::listen(&fd, BACKLOG)?;
    Ok(fd)
}

/// The control socket, as a tokio listener.
pub fn bind_control(path: &Path) -> io::Result<tokio::net::UnixListener> {
    let fd = bind_listener(path)?;
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    std_listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_listener)
}
