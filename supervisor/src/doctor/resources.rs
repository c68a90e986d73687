//! What the machine gives the service: its private directories, room on
//! the disk, and enough open files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::statvfs::statvfs;
use shared::fdlimit::{FdLimit, USEFUL_OPEN_FILES};

use super::{Check, Context};

/// Below this much free space the data directory's disk fails the check.
pub const MIN_FREE_BYTES: u64 = 100 * 1024 * 1024;

/// ... or below this share of the disk, in percent.
pub const MIN_FREE_PERCENT: f64 = 1.0;

/// The directory at `path` exists, is ours, and its mode passes `private`
/// (given the permission bits); `want` names the mode for a person.
fn private_dir(
    name: &'static str,
    path: &Path,
    private: fn(u32) -> bool,
    want: &str,
    missing_advice: &str,
) -> Check {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::fail(name, format!("{shown} does not exist"), missing_advice)
        }
        Err(e) => {
            return Check::fail(
                name,
                format!("{shown} cannot be read: {e}"),
                "fix the permissions of its parent directories",
            )
        }
    };
    if !meta.is_dir() {
        return Check::fail(
            name,
            format!("{shown} is not a directory"),
            format!("move {shown} away; the service creates the directory"),
        );
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Check::fail(
            name,
            format!(
                "{shown} belongs to uid {}, not to you (uid {me})",
                meta.uid()
            ),
            format!("run `sudo chown -R {me} '{shown}'`"),
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if !private(mode) {
        return Check::fail(
            name,
            format!("{shown} has mode {mode:04o}, not {want}"),
            format!("run `chmod 700 '{shown}'`"),
        );
    }
    Check::pass(name, format!("{shown}, yours, mode {mode:04o}"))
}

/// 6a. The data directory exists, is ours and has mode 0700, as the
///     service creates it (its sessions are nobody else's).
pub fn data_dir(ctx: &Context) -> Check {
    private_dir(
        "data directory",
        ctx.data_dir.root(),
        |mode| mode == 0o700,
        "0700",
        "start the service, which creates it (`supervisor install` if it is not installed)",
    )
}

/// 6b. The log directory exists, is ours, and no one else may read it:
///     the service creates it with 0700, like the data directory.
pub fn log_dir(ctx: &Context) -> Check {
    private_dir(
        "log directory",
        &ctx.log_dir,
        |mode| mode & 0o700 == 0o700 && mode & 0o077 == 0,
        "0700 (only you may read it)",
        "start the service, which creates it (`supervisor install` if it is not installed)",
    )
}

/// `1.5 GiB`, `120 MiB`.
pub fn bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = n as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

/// 7. The disk of the data directory has at least [`MIN_FREE_BYTES`] and
///    [`MIN_FREE_PERCENT`] free: the worker refuses writes on a full disk,
///    and updates build there.
pub fn disk(ctx: &Context) -> Check {
    const NAME: &str = "disk space";
    // The data directory, or the nearest folder above it that exists.
    let Some(at) = ctx.data_dir.root().ancestors().find(|p| p.exists()) else {
        return Check::fail(
            NAME,
            "no part of the data directory's path exists",
            "create it",
        );
    };
    let stat = match statvfs(at) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot ask how full {} is: {e}", at.display()),
                "check that the disk is mounted",
            )
        }
    };
    // fsblkcnt_t is 32 bits on macOS, 64 on Linux.
    #[allow(clippy::unnecessary_cast)]
    let (free, total) = {
        let unit = stat.fragment_size() as u64;
        (
            stat.blocks_available() as u64 * unit,
            stat.blocks() as u64 * unit,
        )
    };
    let percent = if total == 0 {
        100.0
    } else {
        free as f64 * 100.0 / total as f64
    };
    let detail = format!(
        "{} free of {} ({percent:.1}%) at {}",
        bytes(free),
        bytes(total),
        at.display()
    );
    if free < MIN_FREE_BYTES || percent < MIN_FREE_PERCENT {
        Check::fail(
            NAME,
            format!(
                "only {detail}, under {} or {MIN_FREE_PERCENT}%",
                bytes(MIN_FREE_BYTES)
            ),
            "free space on that disk: a full disk stops the store's writes and the updates' builds",
        )
    } else {
        Check::pass(NAME, detail)
    }
}

/// 8. The open-file limit the service can reach: it raises its soft
///    limit to the hard one, up to 10240, as this command did at start,
///    and needs [`USEFUL_OPEN_FILES`] to serve its default number of
///    connections.
pub fn open_files(limit: &FdLimit) -> Check {
    const NAME: &str = "open files";
    let show = |n: u64| {
        if n == u64::MAX {
            "unlimited".to_string()
        } else {
            n.to_string()
        }
    };
    let detail = format!(
        "soft limit {} (was {}), hard limit {}; the service needs {USEFUL_OPEN_FILES}",
        show(limit.soft),
        show(limit.before),
        show(limit.hard)
    );
    if limit.soft >= USEFUL_OPEN_FILES {
        return Check::pass(NAME, detail);
    }
    let why = match limit.error {
        Some(e) => format!(", and raising it failed: {e}"),
        None => String::new(),
    };
    Check::fail(
        NAME,
        format!("{detail}{why}"),
        format!(
            "raise the hard limit to at least {USEFUL_OPEN_FILES} (`ulimit -Hn`, launchd \
             HardResourceLimits, systemd LimitNOFILE)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_open_file_limit_fails_and_names_the_numbers() {
        let low = FdLimit {
            before: 256,
            soft: 256,
            hard: 256,
            error: None,
        };
        let check = open_files(&low);
        assert!(!check.ok, "{check:?}");
        assert!(check.detail.contains("soft limit 256"), "{check:?}");
        let high = FdLimit {
            soft: 10240,
            hard: u64::MAX,
            ..low
        };
        let check = open_files(&high);
        assert!(check.ok, "{check:?}");
        assert!(check.detail.contains("hard limit unlimited"), "{check:?}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(100 * 1024 * 1024), "100 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
