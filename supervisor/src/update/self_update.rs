//! The supervisor's own update, after a commit that changed it deployed:
//! the new binary is tried first (`--version`, with a deadline), then the
//! actor hands everything over to it with `execve`. One that cannot
//! happen now (the worker is not ready, a signal came first) is kept and
//! tried again once the worker is ready; one whose binary cannot run is
//! dropped, and the running supervisor stays. Either way `status` says so
//! (`update.self_update`).

use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tracing::{error, info};

use super::releases::Releases;
use super::Updater;
use crate::actor::handover::ReExecError;
use crate::exe::own_exe;

/// Waits until the worker is ready for a self-update; `true` if the actor
/// is gone (then it never will be).
pub(super) async fn settled(rx: &mut Option<watch::Receiver<bool>>) -> bool {
    match rx {
        Some(rx) => rx.wait_for(|ready| *ready).await.is_err(),
        None => std::future::pending().await,
    }
}

/// `binary --version`, off the async runtime's thread.
async fn try_binary(binary: &Path) -> Result<String, String> {
    let bin = binary.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::trial::try_supervisor(&bin, crate::trial::TRY_TIMEOUT)
    })
    .await
    .unwrap_or_else(|e| Err(format!("the check of {} failed: {e}", binary.display())))
}

impl Updater {
    /// The supervisor binaries in use: the running one, then the one
    /// waiting to replace it, if any (last).
    pub(super) fn supervisors_in_use(&self) -> Vec<PathBuf> {
        own_exe()
            .ok()
            .into_iter()
            .chain(self.reexec.clone())
            .collect()
    }

    /// Tries a newly installed supervisor; if it runs, it replaces this
    /// one once the poll is answered. `Err`: why not (also in status).
    pub(super) async fn prepare_self_update(&mut self, binary: PathBuf) -> Result<(), String> {
        match try_binary(&binary).await {
            Ok(version) => {
                info!(binary = %binary.display(), version = %version, "the new supervisor runs");
                self.reexec = Some(binary);
                self.set(|v| v.self_update = None);
                Ok(())
            }
            Err(e) => Err(self.self_update_failed(&binary, &e)),
        }
    }

    fn self_update_failed(&mut self, binary: &Path, why: &str) -> String {
        let text = format!(
            "the new supervisor {} cannot run ({why}); the running supervisor stays",
            binary.display()
        );
        error!(binary = %binary.display(), error = %why, "not replacing the supervisor");
        self.set(|v| {
            v.self_update = Some(text.clone());
            v.last_error = Some(text.clone());
        });
        text
    }

    /// Asks the actor to re-execute `binary`. On success this process
    /// image is gone. If the worker is not ready it is kept for later;
    /// if it cannot run, the reason shows in status.
    pub(super) async fn re_exec(&mut self, binary: PathBuf) {
        // Tried again: it may have changed (or gone) while it waited.
        if let Err(e) = try_binary(&binary).await {
            self.self_update_failed(&binary, &e);
            return;
        }
        let mut view = self.view.borrow().clone();
        view.self_update = None;
        let releases = Releases::of(&self.cfg.data_dir);
        let tried = binary.clone();
        let before_exec = Box::new(move || releases.mark_tried(&tried));
        match self.actor.re_exec(binary.clone(), view, before_exec).await {
            Ok(Err(ReExecError::NotNow(why))) => {
                info!(binary = %binary.display(), reason = %why, "the supervisor replaces itself once the worker is ready");
                let text = format!(
                    "waiting to replace the supervisor with {} ({why}); it happens once the \
                     worker is ready",
                    binary.display()
                );
                self.set(|v| v.self_update = Some(text));
                self.reexec = Some(binary);
            }
            Ok(Err(ReExecError::Failed(e))) => {
                self.self_update_failed(&binary, &e);
            }
            // Replaced (never answered), or the actor is gone.
            Ok(Ok(())) | Err(_) => {}
        }
    }
}
