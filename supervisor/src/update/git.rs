//! The git steps of an update, through the `git` CLI.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{self, Finished};

/// How long one git command may take before its process group is killed.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// The git executable and how to run it.
#[derive(Debug, Clone)]
pub struct Git {
    pub bin: PathBuf,
    pub timeout: Duration,
}

impl Git {
    /// Runs git in `dir`; the trimmed stdout+stderr on success. An
    /// "Operation not permitted" failure says what that likely means.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> Result<String, String> {
        self.run_in(dir, args)
            .await
            .map_err(|e| crate::tools::explain_denied(e, dir))
    }

    async fn run_in(&self, dir: &Path, args: &[&str]) -> Result<String, String> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let cmd = command::command(&self.bin, &args, dir);
        let done: Finished = command::run(cmd, self.timeout, |_| {}).await.map_err(|e| {
            format!(
                "git {}: {e}",
                args.first()
                    .map(|a| a.to_string_lossy())
                    .unwrap_or_default()
            )
        })?;
        if done.success {
            Ok(done.output.trim().to_string())
        } else {
            Err(format!(
                "git {} failed ({}): {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                done.status,
                done.tail(3)
            ))
        }
    }

    /// Fetches `branch` from `origin` into `refs/remotes/origin/<branch>`
    /// (forced: a force-pushed branch is followed) and returns its sha.
    pub async fn fetch(&self, repo: &Path, branch: &str) -> Result<String, String> {
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.run(repo, &["fetch", "--no-tags", "--quiet", "origin", &refspec])
            .await?;
        self.rev_parse(repo, &format!("refs/remotes/origin/{branch}"))
            .await
    }

    /// The full sha `rev` names.
    pub async fn rev_parse(&self, repo: &Path, rev: &str) -> Result<String, String> {
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .run(repo, &["rev-parse", "--verify", "--quiet", &spec])
            .await?;
        let sha = out.lines().last().unwrap_or("").trim().to_string();
        if is_sha(&sha) {
            Ok(sha)
        } else {
            Err(format!("git rev-parse {rev}: unexpected answer {out:?}"))
        }
    }

    /// Puts `staging` (a clone of ours) at exactly `sha` of `repo`'s
    /// `refs/remotes/origin/<branch>`, with a clean tree.
    pub async fn prepare_staging(
        &self,
        staging: &Path,
        repo: &Path,
        branch: &str,
        sha: &str,
    ) -> Result<(), String> {
        if !staging.join(".git").exists() {
            std::fs::create_dir_all(staging)
                .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
            self.run(staging, &["init", "--quiet"]).await?;
        }
        let repo_arg = repo.to_string_lossy();
        let refspec = format!("+refs/remotes/origin/{branch}:refs/staging/tip");
        self.run(
            staging,
            &["fetch", "--no-tags", "--quiet", &repo_arg, &refspec],
        )
        .await?;
        let tip = self.rev_parse(staging, "refs/staging/tip").await?;
        if tip != sha {
            return Err(format!("the branch moved while staging ({tip} instead of {sha}); trying again at the next poll"));
        }
        self.run(
            staging,
            &["checkout", "--quiet", "--force", "--detach", sha],
        )
        .await?;
        self.run(staging, &["clean", "-ffdxq"]).await?;
        Ok(())
    }

    /// Paths that differ between two commits in `repo`, or None if either
    /// commit is unknown there.
    pub async fn changed_paths(&self, repo: &Path, from: &str, to: &str) -> Option<Vec<String>> {
        let out = self
            .run(repo, &["diff", "--name-only", from, to])
            .await
            .ok()?;
        Some(out.lines().map(str::to_string).collect())
    }

    /// Why the watched checkout is not fast-forwarded to `deployed`, or
    /// `None` after fast-forwarding it (or when it is already there).
    pub async fn pull(
        &self,
        repo: &Path,
        branch: &str,
        deployed: &str,
    ) -> Result<Option<String>, String> {
        let head_branch = self
            .run(repo, &["symbolic-ref", "--quiet", "--short", "HEAD"])
            .await
            .unwrap_or_default();
        if head_branch != branch {
            let on = if head_branch.is_empty() {
                "a detached HEAD".to_string()
            } else {
                format!("branch {head_branch}")
            };
            return Ok(Some(format!(
                "the checkout is on {on}, not {branch}; left alone"
            )));
        }
        let head = self.rev_parse(repo, "HEAD").await?;
        if head == deployed {
            return Ok(None);
        }
        let dirty = self.run(repo, &["status", "--porcelain"]).await?;
        if !dirty.is_empty() {
            return Ok(Some(
                "the checkout has uncommitted changes; left alone".into(),
            ));
        }
        if self
            .run(repo, &["merge-base", "--is-ancestor", &head, deployed])
            .await
            .is_err()
        {
            return Ok(Some(format!(
                "the checkout's {branch} ({}) is not behind the deployed commit; left alone",
                &head[..12.min(head.len())]
            )));
        }
        self.run(repo, &["merge", "--ff-only", "--quiet", deployed])
            .await?;
        Ok(None)
    }
}

/// Whether `s` is a full 40-hex commit id.
pub fn is_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
