//! The git steps of an update, through the `git` CLI.
//!
//! Two promises to the person whose checkout is watched:
//! - Their ssh setup is used as it is. Setting `GIT_SSH_COMMAND` would
//!   override their `core.sshCommand` and `GIT_SSH` (a key, an agent, a
//!   proxy); so ssh's `BatchMode` is added only when they set none of
//!   them. Either way no prompt can wait for an answer (see `command`).
//! - Every git command runs with `--no-optional-locks`: reading their
//!   checkout (`status`, `rev-parse`, …) never rewrites their index nor
//!   takes `index.lock` from under their own git commands. Only the
//!   fast-forward itself writes, as a `git merge` of theirs would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{self, Finished};
use super::error::UpdateError;

/// How long one git command may take before its process group is killed.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// The ssh command used when the person configured none: never asks.
const BATCH_SSH: &str = "ssh -o BatchMode=yes -o ConnectTimeout=20";

/// The git executable and how to run it.
#[derive(Debug, Clone)]
pub struct Git {
    pub bin: PathBuf,
    pub timeout: Duration,
}

impl Git {
    /// Runs git in `dir`; the trimmed stdout+stderr on success. An
    /// "Operation not permitted" failure says what that likely means.
    pub async fn run(&self, dir: &Path, args: &[&str]) -> Result<String, UpdateError> {
        self.run_env(dir, args, &[]).await
    }

    async fn run_env(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<String, UpdateError> {
        self.run_in(dir, args, env)
            .await
            .map_err(|e| e.explain_denied(dir))
    }

    async fn run_in(
        &self,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<String, UpdateError> {
        let all: Vec<&OsStr> = std::iter::once("--no-optional-locks")
            .chain(args.iter().copied())
            .map(OsStr::new)
            .collect();
        let mut cmd = command::command(&self.bin, &all, dir);
        cmd.envs(env.iter().copied());
        let done: Finished = command::run(cmd, self.timeout, |_| {}).await?;
        if done.success() {
            Ok(done.output.trim().to_string())
        } else {
            Err(UpdateError::Git {
                args: args.join(" "),
                status: done.status.to_string(),
                tail: done.tail(3),
            })
        }
    }

    /// `GIT_SSH_COMMAND` for a fetch from `repo`'s remote: [`BATCH_SSH`]
    /// when the person set no ssh command (environment or git config, as
    /// git itself would see it from `repo`), else nothing.
    pub async fn ssh_command(&self, repo: &Path) -> Option<&'static str> {
        let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if set("GIT_SSH_COMMAND") || set("GIT_SSH") {
            return None;
        }
        // Exit status 1, an error here, means "not set".
        match self
            .run(repo, &["config", "--get", "core.sshCommand"])
            .await
        {
            Ok(value) if !value.is_empty() => None,
            _ => Some(BATCH_SSH),
        }
    }

    /// Fetches `branch` from `origin` into `refs/remotes/origin/<branch>`
    /// (forced: a force-pushed branch is followed) and returns its sha.
    pub async fn fetch(&self, repo: &Path, branch: &str) -> Result<String, UpdateError> {
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let ssh = self.ssh_command(repo).await;
        let env: Vec<(&str, &str)> = ssh.map(|c| ("GIT_SSH_COMMAND", c)).into_iter().collect();
        let args = ["fetch", "--no-tags", "--quiet", "origin", &refspec];
        self.run_env(repo, &args, &env).await?;
        self.rev_parse(repo, &format!("refs/remotes/origin/{branch}"))
            .await
    }

    /// The sha of `branch` on `repo`'s `origin`, or `None` when origin has
    /// no such branch: `git ls-remote`, with the same ssh setup as
    /// [`Git::fetch`] and `env` added (`supervisor doctor` passes the
    /// service's PATH). Changes nothing in `repo`.
    pub async fn ls_remote(
        &self,
        repo: &Path,
        branch: &str,
        env: &[(&str, &str)],
    ) -> Result<Option<String>, UpdateError> {
        let ssh = self.ssh_command(repo).await;
        let mut all: Vec<(&str, &str)> = env.to_vec();
        all.extend(ssh.map(|c| ("GIT_SSH_COMMAND", c)));
        let head = format!("refs/heads/{branch}");
        let out = self
            .run_env(repo, &["ls-remote", "--heads", "origin", &head], &all)
            .await?;
        Ok(out.lines().find_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            (name == head && is_sha(sha)).then(|| sha.to_string())
        }))
    }

    /// The full sha `rev` names.
    pub async fn rev_parse(&self, repo: &Path, rev: &str) -> Result<String, UpdateError> {
        let spec = format!("{rev}^{{commit}}");
        let out = self
            .run(repo, &["rev-parse", "--verify", "--quiet", &spec])
            .await?;
        let sha = out.lines().last().unwrap_or("").trim().to_string();
        if is_sha(&sha) {
            Ok(sha)
        } else {
            Err(UpdateError::Git {
                args: format!("rev-parse {rev}"),
                status: "exit status: 0".into(),
                tail: format!("unexpected answer {out:?}"),
            })
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
    ) -> Result<(), UpdateError> {
        if !staging.join(".git").exists() {
            std::fs::create_dir_all(staging)
                .map_err(|e| UpdateError::io(format!("cannot create {}", staging.display()), e))?;
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
            return Err(UpdateError::Interrupted(format!(
                "the branch moved while staging ({tip} instead of {sha})"
            )));
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
    ) -> Result<Option<String>, UpdateError> {
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

#[cfg(test)]
mod tests;
