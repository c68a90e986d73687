//! `git` and `cargo` as the service finds them: on the PATH its file
//! gives it (launchd's own has neither `~/.cargo/bin` nor Homebrew), run
//! with its environment.

use std::process::Command;

use super::{Check, Context, DEADLINE};
use crate::tools;

/// What to do when `tool` is not on the service's PATH.
fn install_advice(tool: &str) -> &'static str {
    match tool {
        "git" => {
            "install git (on a Mac `xcode-select --install`, or Homebrew), then run \
             `supervisor install` again"
        }
        _ => "install Rust with rustup (https://rustup.rs), then run `supervisor install` again",
    }
}

/// 3. `tool --version` runs, within the deadline, as the service would
///    run it.
pub fn tool(ctx: &Context, tool: &'static str) -> Check {
    let path = &ctx.service_path;
    let Ok(found) = which::which_in(tool, Some(path), "/") else {
        return Check::fail(
            tool,
            format!("not found on the service's PATH ({path})"),
            install_advice(tool),
        );
    };
    let mut cmd = Command::new(&found);
    cmd.arg("--version").envs(ctx.service_env());
    match tools::version_of(cmd, &found, DEADLINE) {
        Ok(version) => Check::pass(tool, format!("{version} ({})", found.display())),
        Err(f) => Check::fail(tool, f.what, f.todo),
    }
}
