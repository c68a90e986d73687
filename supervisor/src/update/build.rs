//! Building a staged commit with cargo, into a persistent target dir.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::info;

use super::cargo_log::CargoLog;
use super::command;
use super::error::UpdateError;

/// Where builds happen: a clone of the watched repository and its own
/// target dir beside it (never shared with another checkout: cargo#13259).
#[derive(Debug, Clone)]
pub struct Staging {
    pub root: PathBuf,
}

impl Staging {
    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }
    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }
    /// One record per running git or cargo process group (see `leftovers`).
    pub fn running(&self) -> PathBuf {
        self.root.join("running")
    }
    /// Where cargo puts the binaries of `profile`.
    pub fn out_dir(&self, profile: &str) -> PathBuf {
        let dir = if profile == "dev" { "debug" } else { profile };
        self.target().join(dir)
    }
}

/// `cargo build --locked --profile <profile> -p worker [-p supervisor]` in
/// the staging clone. Output lines go to the supervisor log; a failure
/// says whether our code is to blame (see `cargo_log`).
pub async fn cargo_build(
    cargo: &Path,
    staging: &Staging,
    profile: &str,
    sha: &str,
    with_supervisor: bool,
    timeout: Duration,
) -> Result<(), UpdateError> {
    let target = staging.target();
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("build"),
        OsStr::new("--locked"),
        OsStr::new("--profile"),
        OsStr::new(profile),
        OsStr::new("-p"),
        OsStr::new("worker"),
    ];
    if with_supervisor {
        args.extend([OsStr::new("-p"), OsStr::new("supervisor")]);
    }
    args.push(OsStr::new("--target-dir"));
    args.push(target.as_os_str());
    let mut cmd = command::command(cargo, &args, &staging.src());
    cmd.env("SECOND_BRAIN_COMMIT", sha)
        // Incremental even in release: a typical push rebuilds in about a
        // second instead of eight (measured by the update benchmark), at
        // the price of some cache in the staging target dir.
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true");
    let short = &sha[..12.min(sha.len())];
    let mut log = CargoLog::default();
    let done = command::run(cmd, timeout, |line| {
        info!(commit = short, "cargo: {line}");
        log.line(line);
    })
    .await?;
    if done.success() {
        return Ok(());
    }
    Err(UpdateError::Build {
        cause: log.cause(done.signal().is_some()),
        status: done.status.to_string(),
        tail: log.tail(),
    })
}

/// How long a build waits for another one using the same staging area.
pub const STAGING_LOCK_WAIT: Duration = Duration::from_secs(3600);

/// Held while a build uses the staging area, so two supervisors (or test
/// runs) sharing one never build in it at the same time.
pub async fn lock_staging(staging: &Staging) -> Result<shared::lock::PidLock, UpdateError> {
    let path = staging.root.join("build.lock");
    let started = std::time::Instant::now();
    loop {
        match shared::lock::acquire(&path, "build") {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() >= STAGING_LOCK_WAIT {
                    return Err(UpdateError::StagingLocked {
                        path: staging.root.clone(),
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                let what = format!("cannot lock the staging area ({})", path.display());
                return Err(UpdateError::io(what, e));
            }
        }
    }
}
