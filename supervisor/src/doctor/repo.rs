//! The watched repository: a git checkout with an `origin` that answers,
//! in time, with the watched branch; and, for a launchd agent, not in a
//! folder macOS privacy protection keeps agents out of.

use std::path::Path;

use super::{Check, Context, DEADLINE};
use crate::install::checks::protected_folder;
use crate::install::Manager;
use crate::update::git::Git;

const REPO: &str = "repository";

/// What to do when the repository setting itself is wrong.
const SET_REPO: &str = "set SECOND_BRAIN_REPO to your checkout of the service, then run \
     `supervisor install` again";

/// 4. The repository exists, is a git checkout, has an `origin`, and
///    `git ls-remote origin` finds the watched branch within the
///    deadline, run with the service's git and PATH.
pub fn reachable(ctx: &Context) -> Check {
    let Some(repo) = &ctx.repo else {
        return Check::fail(REPO, "no watched repository is set", SET_REPO);
    };
    if !repo.is_dir() {
        return Check::fail(REPO, format!("{} does not exist", repo.display()), SET_REPO);
    }
    let Ok(bin) = which::which_in("git", Some(&ctx.service_path), "/") else {
        return Check::fail(
            REPO,
            format!(
                "cannot look at {}: git is not on the service's PATH",
                repo.display()
            ),
            "install git, then run `supervisor install` again",
        );
    };
    let git = Git {
        bin,
        timeout: DEADLINE,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Check::fail(
                REPO,
                format!("cannot start the async runtime: {e}"),
                "try again",
            )
        }
    };
    runtime.block_on(ask_origin(ctx, &git, repo))
}

async fn ask_origin(ctx: &Context, git: &Git, repo: &Path) -> Check {
    let shown = repo.display();
    if let Err(e) = git.run(repo, &["rev-parse", "--git-dir"]).await {
        return Check::fail(
            REPO,
            format!("{shown} is not a git checkout: {e}"),
            SET_REPO,
        );
    }
    let url = match git.run(repo, &["remote", "get-url", "origin"]).await {
        Ok(url) => url,
        Err(_) => {
            return Check::fail(
                REPO,
                format!("{shown} has no remote named origin"),
                format!("add it: `git -C {shown} remote add origin URL`"),
            )
        }
    };
    let path = [("PATH", ctx.service_path.as_str())];
    let branch = &ctx.branch;
    match git.ls_remote(repo, branch, &path).await {
        Ok(Some(sha)) => Check::pass(
            REPO,
            format!(
                "{shown}: origin {url} has {branch} at {}",
                &sha[..12.min(sha.len())]
            ),
        ),
        Ok(None) => Check::fail(
            REPO,
            format!("origin {url} of {shown} has no branch {branch}"),
            format!(
                "push {branch} there, or set SECOND_BRAIN_BRANCH to the branch to watch and run \
                 `supervisor install` again"
            ),
        ),
        Err(e) => Check::fail(
            REPO,
            format!("origin {url} of {shown} cannot be reached: {e}"),
            format!(
                "fix the URL, the network or your credentials until `git -C {shown} ls-remote \
                 origin` works without asking anything"
            ),
        ),
    }
}

/// 5. For a launchd agent: neither the repository, nor the data or log
///    directory, is in a folder macOS privacy protection keeps background
///    agents out of (git would get "Operation not permitted" there).
pub fn privacy(ctx: &Context) -> Check {
    const NAME: &str = "privacy protection";
    if ctx.manager != Manager::Launchd {
        return Check::pass(
            NAME,
            "does not apply: only macOS keeps launchd agents out of folders",
        );
    }
    let data = ctx.data_dir.root();
    let mut paths = vec![("data directory", data), ("log directory", &ctx.log_dir)];
    if let Some(repo) = &ctx.repo {
        paths.insert(0, ("watched repository", repo.as_path()));
    }
    for (what, path) in paths {
        if let Some(folder) = protected_folder(path, &ctx.home) {
            return Check::fail(
                NAME,
                format!(
                    "the {what} {} is in {folder}, which macOS keeps background agents out of",
                    path.display()
                ),
                "move it elsewhere (e.g. under ~/src), or grant the supervisor Full Disk Access \
                 in System Settings > Privacy & Security, then run `supervisor install` again",
            );
        }
    }
    Check::pass(
        NAME,
        "the repository, data and log directories are outside the folders macOS keeps agents out of",
    )
}
