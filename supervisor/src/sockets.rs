//! Binding the two sockets the supervisor owns for its whole life.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

/// Pending connections the kernel keeps while no worker accepts (during a
/// restart). Set explicitly: macOS defaults to 128.
pub const BACKLOG: i32 = 1024;

/// Removes a leftover socket file; refuses to remove anything else.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A listening Unix socket at `path` (mode 0600, CLOEXEC, blocking: each
/// worker sets its own mode on its copy).
pub fn bind_listener(path: &Path) -> io::Result<OwnedFd> {
    remove_stale(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot bind {}: {e}", path.display()),
        )
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    listen(&fd, Backlog::new(BACKLOG).expect("1024 is a valid backlog"))?;
    Ok(fd)
}

/// The control socket, as a tokio listener.
pub fn bind_control(path: &Path) -> io::Result<tokio::net::UnixListener> {
    let fd = bind_listener(path)?;
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    std_listener.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(std_listener)
}
