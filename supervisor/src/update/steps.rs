//! The steps of one update: build in staging, install, swap, pull, hold.

use std::path::PathBuf;
use std::time::Instant;

use tracing::{error, info, warn};

use super::error::UpdateError;
use super::git::Git;
use super::{backups, build, releases};
use super::{short, Outcome, Updater};
use crate::actor::DeployError;

impl Updater {
    pub(super) async fn build(
        &mut self,
        git: &Git,
        cargo: &std::path::Path,
        repo: &std::path::Path,
        sha: &str,
        deployed: Option<&str>,
    ) -> Result<Built, UpdateError> {
        self.step("building", Some(sha));
        std::fs::create_dir_all(&self.staging.root).map_err(|e| {
            UpdateError::io(format!("cannot create {}", self.staging.root.display()), e)
        })?;
        let _lock = build::lock_staging(&self.staging).await?;
        git.prepare_staging(&self.staging.src(), repo, &self.cfg.branch, sha)
            .await?;
        backups::exclude(&self.staging.target()).await;
        // Does this commit change the supervisor too? Compared with what
        // serves now; when that cannot be told, build it to be sure.
        let from = deployed
            .map(String::from)
            .or(shared::version::commit_or_null().map(String::from));
        let supervisor_changed = match from {
            Some(from) => match git.changed_paths(&self.staging.src(), &from, sha).await {
                Some(paths) => paths.iter().any(|p| touches_supervisor(p)),
                None => true,
            },
            None => false,
        };
        let started = Instant::now();
        info!(commit = short(sha), supervisor_changed, "building");
        build::cargo_build(
            cargo,
            &self.staging,
            &self.cfg.build_profile,
            sha,
            supervisor_changed,
            self.cfg.build_timeout,
        )
        .await
        .map_err(|e| e.explain_denied(&self.staging.root))?;
        info!(
            commit = short(sha),
            took_ms = started.elapsed().as_millis() as u64,
            "built"
        );
        let out = self.staging.out_dir(&self.cfg.build_profile);
        let worker = self
            .releases
            .install(sha, releases::WORKER, &out.join("worker"))
            .map_err(|e| UpdateError::io("cannot install the worker release", e))?;
        let supervisor = if supervisor_changed {
            Some(
                self.releases
                    .install(sha, releases::SUPERVISOR, &out.join("supervisor"))
                    .map_err(|e| UpdateError::io("cannot install the supervisor release", e))?,
            )
        } else {
            // Which supervisor goes with this release: the one running
            // now, or the one about to replace it.
            if let Some(me) = self.supervisors_in_use().pop() {
                let _ = self.releases.record_supervisor(sha, &me);
            }
            None
        };
        Ok(Built { worker, supervisor })
    }

    pub(super) async fn swap(
        &mut self,
        git: &Git,
        repo: &std::path::Path,
        sha: &str,
        built: Built,
    ) -> Outcome {
        self.step("swapping", Some(sha));
        match self.actor.deploy(sha.to_string(), built.worker).await {
            Ok(()) => {}
            Err(DeployError::Failed(e)) => {
                return self.not_deployed(sha, UpdateError::Worker(e), "rolled back")
            }
            Err(DeployError::Interrupted(e)) => {
                return self.not_deployed(sha, UpdateError::Interrupted(e), "not deployed")
            }
        }
        if let Err(e) = self.releases.set_deployed(sha) {
            error!(error = %e, "cannot record the deployed commit");
            return Outcome::Retry(format!(
                "{} serves, but recording it failed: {e}",
                short(sha)
            ));
        }
        if let Err(e) = self.releases.prune(sha, &self.supervisors_in_use()) {
            warn!(error = %e, "cannot delete old releases");
        }
        self.set(|v| v.deployed_commit = Some(sha.to_string()));
        self.pull(git, repo, sha).await;
        if let Some(bin) = built.supervisor {
            if let Err(e) = self.prepare_self_update(bin).await {
                return Outcome::Failed(format!("deployed {}, but {e}", short(sha)));
            }
            return Outcome::Deployed(format!(
                "deployed {}; the supervisor now replaces itself with it",
                short(sha)
            ));
        }
        Outcome::Deployed(format!("deployed {}", short(sha)))
    }

    pub(super) async fn pull(&self, git: &Git, repo: &std::path::Path, sha: &str) {
        let note = match git.pull(repo, &self.cfg.branch, sha).await {
            Ok(None) => None,
            Ok(Some(why)) => Some(why),
            Err(e) => Some(format!("fast-forward failed: {e}")),
        };
        if let Some(why) = &note {
            info!(checkout = %repo.display(), "not pulled: {why}");
        }
        self.set(|v| v.checkout = note);
    }

    /// `sha` did not deploy because of `e`: held if the commit is at
    /// fault, else tried again later (`what`: "not deployed", ...).
    pub(super) fn not_deployed(&mut self, sha: &str, e: UpdateError, what: &str) -> Outcome {
        let text = format!("{} {what}: {e}", short(sha));
        if e.holds_commit() {
            self.hold(sha, &e.to_string());
            Outcome::Failed(text)
        } else {
            Outcome::Retry(text)
        }
    }

    pub(super) fn hold(&mut self, sha: &str, why: &str) {
        warn!(commit = short(sha), reason = why, "holding commit");
        if let Err(e) = self.held.add(sha, why) {
            error!(error = %e, "cannot save the held commits");
        }
        let commits = self.held.commits();
        self.set(|v| v.held_commits = commits);
    }
}

pub(crate) struct Built {
    worker: PathBuf,
    supervisor: Option<PathBuf>,
}

/// Whether a changed path can change the supervisor binary.
pub(crate) fn touches_supervisor(path: &str) -> bool {
    path.starts_with("supervisor/")
        || path.starts_with("shared/")
        || path == "Cargo.lock"
        || path == "Cargo.toml"
}
