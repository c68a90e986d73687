//! The open-file limit (`RLIMIT_NOFILE`). launchd, Terminal and many CI
//! runners start processes with a soft limit of 256 open files, which a
//! worker serving a few hundred clients reaches quickly. Both binaries call
//! [`raise`] first thing, then [`FdLimit::log`] once logging is set up.

use nix::errno::Errno;
use nix::sys::resource::{getrlimit, rlim_t, setrlimit, Resource, RLIM_INFINITY};

/// The soft limit both binaries ask for (or the hard limit, if lower).
///
/// macOS refuses a soft limit above `OPEN_MAX` (10240) with `EINVAL`, even
/// when the hard limit is unlimited. The launchd agent's plist asks for the
/// same number (`SoftResourceLimits`/`NumberOfFiles`), so the agent starts
/// with it and [`raise`] has nothing to do there.
pub const WANTED_OPEN_FILES: u64 = 10240;

/// Below this many open files, [`FdLimit::log`] warns: the worker would
/// refuse clients long before its `--max-connections` default (1024).
pub const USEFUL_OPEN_FILES: u64 = 1024;

/// The open-file limit a process ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before [`raise`] (`u64::MAX`: unlimited).
    pub before: u64,
    /// The soft limit in force now (`u64::MAX`: unlimited).
    pub soft: u64,
    /// The hard limit (`u64::MAX`: unlimited): the soft limit's ceiling for
    /// a process without privileges.
    pub hard: u64,
    /// Why the limit could not be read or raised, if that happened.
    pub error: Option<Errno>,
}

fn to_u64(limit: rlim_t) -> u64 {
    if limit == RLIM_INFINITY {
        u64::MAX
    } else {
        limit
    }
}

/// The soft limits to try, best first: min(hard, [`WANTED_OPEN_FILES`]),
/// then halves of it (a Mac whose `kern.maxfilesperproc` was set lower
/// rejects the first), never one at or below `soft`. Empty when the soft
/// limit is already high enough: it is never lowered.
pub fn candidates(soft: rlim_t, hard: rlim_t) -> Vec<rlim_t> {
    let wanted = if hard == RLIM_INFINITY {
        WANTED_OPEN_FILES
    } else {
        hard.min(WANTED_OPEN_FILES)
    };
    let mut out = Vec::new();
    if soft == RLIM_INFINITY {
        return out;
    }
    let mut next = wanted;
    while next > soft {
        out.push(next);
        next /= 2;
    }
    out
}

/// Raises this process's soft open-file limit to min(hard limit,
/// [`WANTED_OPEN_FILES`]) and returns what it ended with. Never lowers it,
/// never touches the hard limit. Children inherit the result.
pub fn raise() -> FdLimit {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            return FdLimit {
                before: 0,
                soft: 0,
                hard: 0,
                error: Some(e),
            }
        }
    };
    let mut limit = FdLimit {
        before: to_u64(soft),
        soft: to_u64(soft),
        hard: to_u64(hard),
        error: None,
    };
    for wanted in candidates(soft, hard) {
        match setrlimit(Resource::RLIMIT_NOFILE, wanted, hard) {
            Ok(()) => {
                limit.soft = to_u64(wanted);
                limit.error = None;
                break;
            }
            Err(e) => limit.error = Some(e),
        }
    }
    limit
}

impl FdLimit {
    /// Logs the limit: `info` normally, `warn` when it stays below
    /// [`USEFUL_OPEN_FILES`] or could not be raised.
    pub fn log(&self) {
        let show = |n: u64| {
            if n == u64::MAX {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        let (soft, hard, before) = (show(self.soft), show(self.hard), show(self.before));
        if self.soft < USEFUL_OPEN_FILES {
            let why = match self.error {
                Some(e) => format!("raising it failed: {e}"),
                None => format!("the hard limit is {hard}"),
            };
            tracing::warn!(
                "the open-file limit stays at {soft} ({why}), so fewer clients can be served \
                 at once; raise the hard limit to at least {USEFUL_OPEN_FILES} (`ulimit -Hn`, \
                 launchd HardResourceLimits, systemd LimitNOFILE)"
            );
        } else if let Some(e) = self.error {
            tracing::warn!(soft = %soft, hard = %hard, error = %e, "could not raise the open-file limit further");
        } else {
            tracing::info!(soft = %soft, hard = %hard, was = %before, "open-file limit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_wanted_number_when_the_hard_limit_allows() {
        assert_eq!(
            candidates(256, RLIM_INFINITY),
            [10240, 5120, 2560, 1280, 640, 320]
        );
        assert_eq!(candidates(256, 1_048_576)[0], 10240);
        assert_eq!(candidates(1024, 20000), [10240, 5120, 2560, 1280]);
    }

    #[test]
    fn stops_at_the_hard_limit() {
        assert_eq!(candidates(256, 4096), [4096, 2048, 1024, 512]);
        assert_eq!(candidates(256, 300), [300]);
        assert!(candidates(256, 256).is_empty());
    }

    #[test]
    fn never_lowers_a_soft_limit_that_is_higher() {
        assert!(candidates(10240, RLIM_INFINITY).is_empty());
        assert!(candidates(65536, RLIM_INFINITY).is_empty());
        assert!(candidates(RLIM_INFINITY, RLIM_INFINITY).is_empty());
    }

    #[test]
    fn raise_reaches_the_wanted_limit_or_the_hard_one() {
        let limit = raise();
        assert_eq!(limit.error, None, "{limit:?}");
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        assert_eq!(to_u64(soft), limit.soft);
        assert_eq!(to_u64(hard), limit.hard);
        assert!(limit.soft >= limit.before);
        assert!(limit.soft >= limit.hard.min(WANTED_OPEN_FILES), "{limit:?}");
    }
}
