//! The service itself: its file is installed and its manager has loaded
//! it, and the binaries it runs are there and run.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{access, AccessFlags};

use super::{Check, Context, DEADLINE};
use crate::install::{launchd, systemd, Manager};
use crate::tools::{run_bounded, VersionFailure, VersionRun};

/// `program args…` with the deadline: how it ended, or why it did not.
fn bounded(program: &str, args: &[&str]) -> Result<VersionRun, String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_bounded(cmd, DEADLINE).map_err(|f| failure(program, &f))
}

/// Why a bounded run gave no answer, naming `program`.
fn failure(program: &str, f: &VersionFailure) -> String {
    match f {
        VersionFailure::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("`{program}` is not on PATH")
        }
        VersionFailure::Spawn(e) => format!("`{program}` cannot start: {e}"),
        VersionFailure::Wait(e) => format!("`{program}` failed: {e}"),
        VersionFailure::TimedOut => format!(
            "`{program}` did not answer within {} s; killed it",
            DEADLINE.as_secs()
        ),
    }
}

/// 1. The service file is there and the manager has it: `launchctl
///    print` knows the agent, or `systemctl --user is-enabled` says
///    enabled.
pub fn installed(ctx: &Context) -> Check {
    const NAME: &str = "service";
    let path = ctx.unit_path.display();
    let unit = match &ctx.installed {
        None => {
            return Check::fail(
                NAME,
                format!("not installed for {} (no {path})", ctx.manager.name()),
                "run `supervisor install`",
            )
        }
        Some(Err(e)) => return Check::fail(NAME, e, "run `supervisor install` to write it again"),
        Some(Ok(unit)) => unit,
    };
    match unit.manager {
        Manager::Launchd => {
            let target = launchd::service_target();
            match bounded("launchctl", &["print", &target]) {
                Ok(run) if run.status.success() => {
                    Check::pass(NAME, format!("launchd agent {target} loaded from {path}"))
                }
                Ok(run) => Check::fail(
                    NAME,
                    format!(
                        "{path} is installed but launchd has not loaded it (`launchctl print \
                         {target}`: {})",
                        run.first().unwrap_or("no output")
                    ),
                    "run `supervisor install` again to load it",
                ),
                Err(e) => Check::fail(
                    NAME,
                    format!("{path} is installed but launchd cannot be asked: {e}"),
                    "run this in a terminal of your own GUI login on the Mac",
                ),
            }
        }
        Manager::Systemd => {
            let unit_name = systemd::UNIT_NAME;
            match bounded("systemctl", &["--user", "is-enabled", unit_name]) {
                Ok(run) if run.status.success() && run.first() == Some("enabled") => Check::pass(
                    NAME,
                    format!("systemd user unit {unit_name} enabled ({path})"),
                ),
                Ok(run) => {
                    let said = run.first().unwrap_or("no output").to_string();
                    let advice = if said.contains("bus") {
                        "log in normally, or run `loginctl enable-linger $USER` and set \
                         XDG_RUNTIME_DIR=/run/user/$(id -u), then try again"
                    } else {
                        "run `systemctl --user enable --now second-brain`"
                    };
                    Check::fail(
                        NAME,
                        format!(
                            "{path} is installed but systemd does not have it enabled \
                             (`systemctl --user is-enabled {unit_name}`: {said})"
                        ),
                        advice,
                    )
                }
                Err(e) => Check::fail(
                    NAME,
                    format!("{path} is installed but systemd cannot be asked: {e}"),
                    "run this where your systemd user instance runs (a normal login)",
                ),
            }
        }
    }
}

/// Whether `path` is an executable file of ours that answers `--version`
/// as `name`: its version line, or what is wrong.
fn runs_as(path: &Path, name: &str) -> Result<String, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{shown} is missing"))
        }
        Err(e) => return Err(format!("{shown} cannot be read: {e}")),
        Ok(m) if !m.is_file() => return Err(format!("{shown} is not a file")),
        Ok(_) => {}
    }
    access(path, AccessFlags::X_OK).map_err(|e| format!("{shown} is not executable ({e})"))?;
    let mut cmd = Command::new(path);
    cmd.arg("--version");
    let run = run_bounded(cmd, DEADLINE).map_err(|f| failure(&format!("{shown} --version"), &f))?;
    match run.first() {
        Some(line) if run.status.success() && line.starts_with(&format!("{name} ")) => {
            Ok(line.to_string())
        }
        other => Err(format!(
            "`{shown} --version` did not answer as the {name} ({}: {})",
            run.status,
            other.unwrap_or("no output")
        )),
    }
}

/// 2. The supervisor the service file names and the worker beside it
///    (which it runs until an update deploys another) exist, are
///    executable, and answer `--version`.
pub fn binaries(ctx: &Context) -> Check {
    const NAME: &str = "binaries";
    let supervisor: PathBuf = match ctx.unit() {
        Some(unit) => unit.supervisor.clone(),
        None => ctx.data_dir.bin_dir().join("supervisor"),
    };
    let worker = supervisor.with_file_name("worker");
    let checked = runs_as(&supervisor, "supervisor")
        .and_then(|_| runs_as(&worker, "worker"))
        .map(|version| {
            format!(
                "{} and {} run ({version})",
                supervisor.display(),
                worker.display()
            )
        });
    match checked {
        Ok(detail) => Check::pass(NAME, detail),
        Err(e) => Check::fail(
            NAME,
            e,
            "run `supervisor install` again: it copies both binaries there",
        ),
    }
}
