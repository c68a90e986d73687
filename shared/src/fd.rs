//! Close-on-exec pipes and Unix sockets on every platform we build for,
//! and a listen backlog that the kernel clamps instead of us panicking.
//!
//! Linux creates a pipe or socket close-on-exec in one call (`pipe2`,
//! `SOCK_CLOEXEC`). Apple has neither: there the fd is created first and
//! marked with `fcntl(F_SETFD, FD_CLOEXEC)` right after. A child forked by
//! another thread between the two calls would inherit the fd.
//!
//! Where the product uses these, that gap cannot be hit: the supervisor
//! creates these fds and starts every child (workers, git, cargo) from its
//! one runtime thread, and its other threads (log copiers, pid watchers)
//! never fork. The worker starts no children at all. In a multi-threaded
//! test process the gap exists, as it does for every socket and pipe that
//! std itself creates on Apple; the cost there is a child that briefly
//! holds an extra pipe end, which can only delay an EOF until it exits.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD)?);
    let flags = if on {
        flags | FdFlag::FD_CLOEXEC
    } else {
        flags - FdFlag::FD_CLOEXEC
    };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// A pipe whose two ends are close-on-exec: `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    return marked::pipe();
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// A blocking, close-on-exec Unix stream socket, neither bound nor
/// connected.
pub fn unix_stream_socket() -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    return marked::unix_stream_socket();
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        Ok(socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?)
    }
}

/// The portable forms, Apple's only ones: create the fd, then mark it
/// close-on-exec. Built everywhere, so that the tests run them on Linux
/// too.
#[cfg_attr(
    not(any(target_os = "macos", target_os = "ios", test)),
    allow(dead_code)
)]
mod marked {
    use super::*;

    pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe()?;
        set_cloexec(r.as_fd(), true)?;
        set_cloexec(w.as_fd(), true)?;
        Ok((r, w))
    }

    pub fn unix_stream_socket() -> io::Result<OwnedFd> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )?;
        set_cloexec(fd.as_fd(), true)?;
        Ok(fd)
    }
}

/// `listen(2)` with any backlog: the kernel clamps it to its own maximum
/// (`kern.ipc.somaxconn` on macOS, 128 by default; `net.core.somaxconn` on
/// Linux). nix's `Backlog::new` instead rejects values at or above the
/// compile-time `SOMAXCONN`, which is 128 on Apple and on musl.
pub fn listen(fd: &impl AsFd, backlog: i32) -> io::Result<()> {
    let backlog = backlog.max(1);
    // SAFETY: a plain syscall on an fd we borrow; no memory is passed.
    let rc = unsafe { nix::libc::listen(fd.as_fd().as_raw_fd(), backlog) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn cloexec(fd: BorrowedFd<'_>) -> bool {
        let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).expect("F_GETFD");
        FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
    }

    #[test]
    fn pipe_ends_are_cloexec_and_connected() {
        // This platform's form, and the create-then-mark one Apple uses.
        for (r, w) in [pipe().unwrap(), marked::pipe().unwrap()] {
            assert!(cloexec(r.as_fd()) && cloexec(w.as_fd()));
            std::fs::File::from(w).write_all(b"hi").unwrap();
            let mut got = String::new();
            std::fs::File::from(r).read_to_string(&mut got).unwrap();
            assert_eq!(got, "hi");
        }
    }

    #[test]
    fn cloexec_can_be_cleared_and_set() {
        let (r, _w) = pipe().unwrap();
        set_cloexec(r.as_fd(), false).unwrap();
        assert!(!cloexec(r.as_fd()));
        set_cloexec(r.as_fd(), true).unwrap();
        assert!(cloexec(r.as_fd()));
    }

    #[test]
    fn a_backlog_above_somaxconn_is_accepted_and_serves() {
        use nix::sys::socket::{bind, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        // This platform's form, and the create-then-mark one Apple uses.
        let sockets = [
            unix_stream_socket().unwrap(),
            marked::unix_stream_socket().unwrap(),
        ];
        for (i, fd) in sockets.into_iter().enumerate() {
            let path = dir.path().join(format!("s{i}.sock"));
            assert!(cloexec(fd.as_fd()));
            bind(fd.as_raw_fd(), &UnixAddr::new(&path).unwrap()).unwrap();
            // Far above any SOMAXCONN: clamped by the kernel, never an error.
            listen(&fd, i32::MAX).unwrap();
            let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let listener = std::os::unix::net::UnixListener::from(fd);
            listener.accept().unwrap();
        }
    }
}
