//! Which worker binary to run, and building it when there is none.
//!
//! In order: `--worker-bin` / `SECOND_BRAIN_WORKER_BIN`; the deployed
//! release in the data directory (`releases/DEPLOYED` names a commit whose
//! `releases/<commit>/worker` exists); `worker` next to the supervisor's
//! own executable; otherwise `cargo build` of the worker in the checkout
//! the supervisor was built from, into the supervisor's own target dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use shared::paths::DataDir;
use tracing::info;

/// The release directory of the data directory.
pub fn releases_dir(dir: &DataDir) -> PathBuf {
    dir.root().join("releases")
}

/// The commit named by `releases/DEPLOYED`, if its worker binary exists.
pub fn deployed_release(dir: &DataDir) -> Option<(String, PathBuf)> {
    let releases = releases_dir(dir);
    let commit = std::fs::read_to_string(releases.join("DEPLOYED")).ok()?;
    let commit = commit.trim();
    let valid = commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return None;
    }
    let bin = releases.join(commit).join("worker");
    bin.is_file().then(|| (commit.to_string(), bin))
}

/// `worker` beside the running supervisor executable.
pub fn sibling_worker() -> Option<PathBuf> {
    let exe = own_exe().ok()?;
    let bin = exe.parent()?.join("worker");
    bin.is_file().then_some(bin)
}

/// The worker to start now (looked up again at every start).
pub fn resolve(explicit: Option<&Path>, dir: &DataDir) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some((_, bin)) = deployed_release(dir) {
        return Some(bin);
    }
    sibling_worker()
}

/// The workspace this supervisor was built from, if it is still there.
pub fn source_checkout() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    root.join("Cargo.toml").is_file().then_some(root)
}

pub use crate::tools::find_tool;

/// This program's own executable with every symlink resolved. Started
/// through a link (`~/bin/supervisor -> …/target/release/supervisor`),
/// `current_exe` names the link on macOS, and the sibling worker and the
/// target dir would be looked for beside the link.
pub fn own_exe() -> std::io::Result<PathBuf> {
    std::env::current_exe().map(|raw| resolve_exe(&raw))
}

/// `raw` with its symlinks resolved; `raw` itself if that fails (e.g. the
/// file was replaced since this process started).
pub fn resolve_exe(raw: &Path) -> PathBuf {
    std::fs::canonicalize(raw).unwrap_or_else(|_| raw.to_path_buf())
}

/// Whether `path` is inside `dir`, comparing resolved paths (one of them
/// may come from [`own_exe`], the other from a data dir set through a
/// symlink, as `/var` is on macOS).
pub fn is_inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || resolve_exe(path).starts_with(resolve_exe(dir))
}

/// Builds the worker next to the supervisor (same profile, same target
/// dir) so a fresh clone runs with one command. Blocking; output goes to
/// the supervisor's stderr and log.
pub fn build_sibling_worker() -> Result<PathBuf, String> {
    let checkout = source_checkout().ok_or(
        "no worker binary next to the supervisor, and the checkout it was built from is gone; \
         pass --worker-bin or build the worker with `cargo build --release -p worker`",
    )?;
    let cargo = crate::tools::usable("cargo", false)
        .map_err(|e| format!("no worker binary found, and cargo cannot build one: {e}"))?;
    let exe = own_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let profile_dir = exe.parent().ok_or("my executable has no directory")?;
    let target_dir = profile_dir
        .parent()
        .ok_or("my executable is not in a cargo target dir")?;
    let mut cmd = std::process::Command::new(cargo);
    crate::signals::unblocked(&mut cmd)
        .current_dir(&checkout)
        .args([
            "build",
            "--locked",
            "-p",
            "worker",
            "--bin",
            "worker",
            "--target-dir",
        ])
        .arg(target_dir)
        .stdin(Stdio::null());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    info!(checkout = %checkout.display(), "no worker binary yet: building it");
    let status = cmd.status().map_err(|e| {
        crate::tools::explain_denied(format!("cannot run cargo build: {e}"), &checkout)
    })?;
    if !status.success() {
        return Err(format!("cargo build of the worker failed ({status})"));
    }
    sibling_worker().ok_or_else(|| {
        format!(
            "cargo build finished but {} has no worker binary",
            profile_dir.display()
        )
    })
}

/// Written beside a release's supervisor once it has run for a while
/// after a self-update: only such a supervisor is started again later.
pub const PROVEN_MARKER: &str = "supervisor-proven";

/// The supervisor binary of the deployed release: the release's own if the
/// commit changed the supervisor, else the one that release recorded. A
/// release supervisor that has not proven itself (it crashed soon after
/// its self-update) is not chosen, so a bad one cannot crash-loop.
pub fn deployed_supervisor(dir: &DataDir) -> Option<PathBuf> {
    let (commit, _) = deployed_release(dir)?;
    let release = releases_dir(dir).join(&commit);
    let own = release.join("supervisor");
    let candidate = if own.is_file() {
        own
    } else {
        let recorded = std::fs::read_to_string(release.join("supervisor-path")).ok()?;
        PathBuf::from(recorded.trim())
    };
    let in_releases = is_inside(&candidate, &releases_dir(dir));
    let proven = candidate.with_file_name(PROVEN_MARKER).is_file();
    (candidate.is_file() && (!in_releases || proven)).then_some(candidate)
}

/// Written beside a release's supervisor just before the first exec of it:
/// a supervisor neither proven nor tried is a self-update that never
/// happened (the service stopped while it waited), tried at the next start.
pub const TRIED_MARKER: &str = "supervisor-tried";

/// The deployed release's own supervisor if it was never run: not this
/// one, not proven, not tried.
pub fn untried_supervisor(dir: &DataDir) -> Option<PathBuf> {
    let (commit, _) = deployed_release(dir)?;
    let own = releases_dir(dir).join(commit).join("supervisor");
    let fresh = own.is_file()
        && !own.with_file_name(PROVEN_MARKER).exists()
        && !own.with_file_name(TRIED_MARKER).exists();
    let me = own_exe().ok()?;
    (fresh && resolve_exe(&own) != me).then_some(own)
}

/// Notes that `binary`, a release's supervisor, is about to run.
pub fn mark_tried(dir: &DataDir, binary: &Path) {
    if is_inside(binary, &releases_dir(dir)) {
        let _ = shared::fsutil::atomic_write(&binary.with_file_name(TRIED_MARKER), |_| Ok(()));
    }
}

/// Marks the running supervisor, if it is a release's, as proven.
pub fn mark_proven(dir: &DataDir) {
    let Ok(me) = own_exe() else {
        return;
    };
    if is_inside(&me, &releases_dir(dir)) {
        let marker = me.with_file_name(PROVEN_MARKER);
        if !marker.exists() {
            let _ = shared::fsutil::atomic_write(&marker, |_| Ok(()));
        }
    }
}

/// Why this start did not run the deployed release's supervisor, if it
/// tried (for `status`: see [`exec_deployed_supervisor`]).
pub static NOT_EXECUTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Re-executes the deployed release's supervisor if this is another
/// binary (so a restart after a self-update runs the updated code), once
/// it has answered `--version`. Returns only if it did not (`Some(error)`
/// if it tried and failed; also kept in [`NOT_EXECUTED`]).
pub fn exec_deployed_supervisor(dir: &DataDir) -> Option<String> {
    let error = exec_deployed(dir)?;
    let _ = NOT_EXECUTED.set(format!(
        "the deployed supervisor was not started: {error}; this one runs instead"
    ));
    Some(error)
}

fn exec_deployed(dir: &DataDir) -> Option<String> {
    let target = deployed_supervisor(dir)?;
    let me = own_exe().ok()?;
    let same = match (std::fs::canonicalize(&target), std::fs::canonicalize(&me)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return None;
    }
    if let Err(e) = crate::trial::try_supervisor(&target, crate::trial::TRY_TIMEOUT) {
        return Some(format!("{} cannot run: {e}", target.display()));
    }
    let err = std::process::Command::new(&target)
        .args(std::env::args_os().skip(1))
        .exec();
    Some(format!("{}: {err}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_to_the_executable_resolves_to_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let real_dir = tmp.path().join("target/release");
        std::fs::create_dir_all(&real_dir).unwrap();
        std::fs::write(real_dir.join("supervisor"), "s").unwrap();
        let link_dir = tmp.path().join("home/bin");
        std::fs::create_dir_all(&link_dir).unwrap();
        let link = link_dir.join("supervisor");
        std::os::unix::fs::symlink(real_dir.join("supervisor"), &link).unwrap();
        let resolved = resolve_exe(&link);
        assert_eq!(
            resolved.parent(),
            Some(real_dir.canonicalize().unwrap().as_path())
        );
        // Gone since: the path as it was given.
        let gone = tmp.path().join("replaced");
        assert_eq!(resolve_exe(&gone), gone);
        // A data dir reached through a link contains the resolved path.
        let data_link = tmp.path().join("data-link");
        std::os::unix::fs::symlink(tmp.path().join("target"), &data_link).unwrap();
        assert!(is_inside(&resolved, &data_link));
        assert!(!is_inside(&resolved, &link_dir));
    }

    #[test]
    fn only_a_proven_release_supervisor_is_started_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let sha = "a".repeat(40);
        let release = releases_dir(&dir).join(&sha);
        std::fs::create_dir_all(&release).unwrap();
        std::fs::write(release.join("worker"), "w").unwrap();
        std::fs::write(releases_dir(&dir).join("DEPLOYED"), format!("{sha}\n")).unwrap();
        // No supervisor of its own, none recorded: nothing to start.
        assert_eq!(deployed_supervisor(&dir), None);
        // Its own supervisor, not yet proven: not started.
        std::fs::write(release.join("supervisor"), "s").unwrap();
        assert_eq!(deployed_supervisor(&dir), None);
        std::fs::write(release.join(PROVEN_MARKER), "").unwrap();
        assert_eq!(deployed_supervisor(&dir), Some(release.join("supervisor")));
        // A recorded supervisor outside the releases needs no marker.
        std::fs::remove_file(release.join("supervisor")).unwrap();
        let installed = tmp.path().join("bin-supervisor");
        std::fs::write(&installed, "s").unwrap();
        std::fs::write(
            release.join("supervisor-path"),
            format!("{}\n", installed.display()),
        )
        .unwrap();
        assert_eq!(deployed_supervisor(&dir), Some(installed));
    }
}
