//! Which worker binary to run, and building it when there is none.
//!
//! In order: `--worker-bin` / `SECOND_BRAIN_WORKER_BIN`; the deployed
//! release in the data directory (`update::releases`, if its worker
//! binary exists); `worker` next to the supervisor's
//! own executable; otherwise `cargo build` of the worker in the checkout
//! the supervisor was built from, into the supervisor's own target dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use shared::paths::DataDir;
use tracing::info;

use crate::exe::own_exe;
use crate::update::releases::{self, Releases};

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
    if let Some((_, bin)) = Releases::of(dir).deployed() {
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

/// Re-executes the deployed release's supervisor if this is another
/// binary (so a restart after a self-update runs the updated code), once
/// it has answered `--version`. Returns only if it did not (`Some(error)`
/// if it tried and failed; also kept in `releases::NOT_EXECUTED`).
pub fn exec_deployed_supervisor(dir: &DataDir) -> Option<String> {
    let error = exec_deployed(dir)?;
    let _ = releases::NOT_EXECUTED.set(format!(
        "the deployed supervisor was not started: {error}; this one runs instead"
    ));
    Some(error)
}

fn exec_deployed(dir: &DataDir) -> Option<String> {
    let target = Releases::of(dir).deployed_supervisor()?;
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
