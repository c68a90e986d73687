//! Why an update did not happen, and whose fault that is.
//!
//! Only a commit at fault is held (not tried again until a person asks):
//! the compiler rejects our own crates, the commit's manifest or lock file
//! is unusable, or its worker does not start, become ready or survive
//! probation. Everything else (no network, a full disk, too many open
//! files, a tool that cannot start, a busy staging area, a build killed
//! by a signal or a timeout) is the machine's state at that moment: it is
//! tried again at later polls, with backoff, and shown in `status`.
//!
//! `Display` is the whole message for a person (it includes the cause);
//! `source()` gives the typed cause (an `io::Error`) for code that needs it.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use super::cargo_log::Cause;

/// An update step that failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// `cargo build` ran and failed; `cause` says whether our code is to blame.
    #[error("cargo build failed ({status}){}: {tail}", cause.explain())]
    Build {
        cause: Cause,
        status: String,
        tail: String,
    },
    /// The new worker did not start, become ready or survive probation.
    #[error("{0}")]
    Worker(String),
    /// A program (git, cargo) could not be started at all.
    #[error("{program}: cannot start: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    /// A program ran past its deadline; its process group was killed.
    #[error("{program}: timed out after {} s; killed it", after.as_secs())]
    TimedOut { program: String, after: Duration },
    /// A file operation of the updater itself.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A git command ran and failed (fetch, checkout, ...).
    #[error("git {args} failed ({status}): {tail}")]
    Git {
        args: String,
        status: String,
        tail: String,
    },
    /// Another build kept the staging area for too long.
    #[error("the staging area {} was still locked by another build after {} s", path.display(), waited.as_secs())]
    StagingLocked { path: PathBuf, waited: Duration },
    /// Cut short by something else (a restart, a stop, the branch moving).
    #[error("{0}")]
    Interrupted(String),
    /// The system refused access (EPERM): `inner`, with what that likely
    /// means under `path` (macOS privacy protection).
    #[error("{}", crate::tools::explain_denied(inner.to_string(), path))]
    Denied {
        #[source]
        inner: Box<UpdateError>,
        path: PathBuf,
    },
}

impl UpdateError {
    /// Whether the commit itself is at fault, so it is held.
    pub fn holds_commit(&self) -> bool {
        match self {
            UpdateError::Build { cause, .. } => cause.is_the_commits_fault(),
            UpdateError::Worker(_) => true,
            _ => false,
        }
    }

    /// `self`, marked as refused by the system under `path` when its
    /// message says "Operation not permitted".
    pub fn explain_denied(self, path: &std::path::Path) -> UpdateError {
        if matches!(self, UpdateError::Denied { .. }) || !crate::tools::is_denied(&self.to_string())
        {
            return self;
        }
        UpdateError::Denied {
            inner: Box::new(self),
            path: path.to_path_buf(),
        }
    }

    pub fn io(what: impl Into<String>, source: io::Error) -> UpdateError {
        UpdateError::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::is_exhaustion;
    use nix::libc;

    #[test]
    fn only_our_compile_errors_and_failing_workers_hold_a_commit() {
        let build = |cause| UpdateError::Build {
            cause,
            status: "exit status: 101".into(),
            tail: "x".into(),
        };
        assert!(build(Cause::OurCode).holds_commit());
        assert!(build(Cause::Manifest).holds_commit());
        for cause in [
            Cause::Offline,
            Cause::Exhausted,
            Cause::Killed,
            Cause::Dependency,
            Cause::Unknown,
        ] {
            assert!(!build(cause).holds_commit(), "{cause:?}");
        }
        assert!(UpdateError::Worker("died during its probation".into()).holds_commit());
        let not_held = [
            UpdateError::Spawn {
                program: "cargo build".into(),
                source: io::Error::from_raw_os_error(libc::EMFILE),
            },
            UpdateError::TimedOut {
                program: "cargo build".into(),
                after: Duration::from_secs(3600),
            },
            UpdateError::io(
                "cannot install the worker release",
                io::Error::from_raw_os_error(libc::ENOSPC),
            ),
            UpdateError::StagingLocked {
                path: "/s".into(),
                waited: Duration::from_secs(3600),
            },
            UpdateError::Interrupted("the branch moved while staging".into()),
        ];
        for e in not_held {
            assert!(!e.holds_commit(), "{e}");
        }
        // Refused by the system: never the commit's fault, even in a build.
        let denied = UpdateError::Build {
            cause: Cause::OurCode,
            status: "exit status: 101".into(),
            tail: "error: could not write: Operation not permitted".into(),
        }
        .explain_denied(std::path::Path::new("/Users/a/Documents/x"));
        assert!(!denied.holds_commit());
        assert!(
            denied.to_string().contains("privacy protection"),
            "{denied}"
        );
        assert!(
            denied.to_string().contains("/Users/a/Documents/x"),
            "{denied}"
        );
    }

    #[test]
    fn io_errors_that_exhaust_the_machine_are_told_apart() {
        for errno in [
            libc::ENOSPC,
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOMEM,
            libc::EAGAIN,
        ] {
            assert!(
                is_exhaustion(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::EPERM] {
            assert!(
                !is_exhaustion(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        let e = UpdateError::Spawn {
            program: "git fetch".into(),
            source: io::Error::from_raw_os_error(libc::EMFILE),
        };
        let source = std::error::Error::source(&e).expect("the io error is the source");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert!(is_exhaustion(io));
    }
}
