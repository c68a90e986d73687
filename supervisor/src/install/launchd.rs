//! The launchd agent: `~/Library/LaunchAgents/<label>.plist`, loaded into
//! the user's GUI domain with `launchctl bootstrap` (no sudo).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::runner::Runner;
use super::templates::{self, xml_escape};
use super::{InstallError, Service, EXIT_TIMEOUT_SECS};

/// The agent's reverse-DNS label.
pub const LABEL: &str = "dev.second-brain.supervisor";

/// What to do when launchctl is missing or refuses.
pub const UNREACHABLE_HELP: &str = "launchd agents exist only on macOS: run this in a terminal \
     of your own GUI login (not over ssh, not with sudo), then run `supervisor install` again; \
     elsewhere use `--manager systemd`";

/// `~/Library/LaunchAgents/dev.second-brain.supervisor.plist`.
pub fn plist_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"))
}

/// The files launchd sends the supervisor's stdout and stderr to (panics,
/// errors before its own log is open); launchd never rotates them.
pub fn output_paths(log_dir: &Path) -> (PathBuf, PathBuf) {
    (
        log_dir.join("launchd.stdout.log"),
        log_dir.join("launchd.stderr.log"),
    )
}

fn escape_path(p: &Path) -> Result<String, InstallError> {
    xml_escape(&p.to_string_lossy()).map_err(InstallError::Failed)
}

/// The plist for `service`.
pub fn render(service: &Service) -> Result<String, InstallError> {
    let mut environment = Vec::new();
    for (name, value) in &service.env {
        let value = xml_escape(value).map_err(|e| InstallError::Failed(format!("{name}: {e}")))?;
        environment.push(format!(
            "        <key>{}</key>\n        <string>{value}</string>",
            xml_escape(name).map_err(InstallError::Failed)?
        ));
    }
    let environment = environment.join("\n");
    let (stdout, stderr) = output_paths(&service.log_dir);
    let supervisor = escape_path(&service.supervisor)?;
    let stdout = escape_path(&stdout)?;
    let stderr = escape_path(&stderr)?;
    let working_directory = escape_path(&service.data_dir)?;
    let stop_budget = (crate::DEFAULT_STOP_TIMEOUT_MS / 1000).to_string();
    let exit_timeout = EXIT_TIMEOUT_SECS.to_string();
    templates::fill(
        templates::PLIST,
        &[
            ("LABEL", LABEL),
            ("SUPERVISOR", &supervisor),
            ("STOP_BUDGET_SECS", &stop_budget),
            ("EXIT_TIMEOUT_SECS", &exit_timeout),
            ("STDOUT_PATH", &stdout),
            ("STDERR_PATH", &stderr),
            ("WORKING_DIRECTORY", &working_directory),
            ("ENVIRONMENT", &environment),
        ],
    )
    .map_err(InstallError::Failed)
}

fn domain() -> String {
    format!("gui/{}", nix::unistd::getuid())
}

fn service_target() -> String {
    format!("{}/{LABEL}", domain())
}

/// Whether launchd still has the agent loaded (`launchctl print` succeeds).
fn loaded(target: &str) -> bool {
    Command::new("launchctl")
        .args(["print", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Waits until a booted-out agent is gone: bootout can return while the
/// old supervisor is still stopping, and bootstrap fails until it is.
fn wait_until_unloaded(target: &str) -> Result<(), InstallError> {
    let deadline = Instant::now() + Duration::from_secs(EXIT_TIMEOUT_SECS + 5);
    while loaded(target) {
        if Instant::now() >= deadline {
            return Err(InstallError::Failed(format!(
                "the previous {LABEL} did not stop within {} s; see `launchctl print {target}`",
                EXIT_TIMEOUT_SECS + 5
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Unloads the agent; failing when nothing is loaded, which is fine.
fn bootout(runner: &Runner, target: &str) -> Result<(), InstallError> {
    let bootout = runner.run("launchctl", &["bootout", target])?;
    if !bootout.success && !runner.dry_run {
        println!(
            "(bootout: {}; taken to mean the agent was not loaded)",
            bootout.stderr
        );
    }
    Ok(())
}

/// Replaces a loaded agent with the one in `plist`: bootout (failing when
/// nothing is loaded, which is fine), enable (bootstrap refuses an agent
/// that was switched off), bootstrap.
pub fn load(runner: &Runner, plist: &Path) -> Result<(), InstallError> {
    let target = service_target();
    bootout(runner, &target)?;
    if !runner.dry_run {
        wait_until_unloaded(&target)?;
    }
    runner.must("launchctl", &["enable", &target])?;
    runner.must(
        "launchctl",
        &["bootstrap", &domain(), &plist.to_string_lossy()],
    )
}

/// Stops and unloads the agent, then removes its plist.
pub fn unload(runner: &Runner, plist: &Path) -> Result<(), InstallError> {
    let target = service_target();
    bootout(runner, &target)?;
    super::files::remove(plist, runner.dry_run)?;
    Ok(())
}

/// What a person should know after installing on macOS.
pub fn after_install_note() {
    println!(
        "note: macOS 13 and later shows a \"Background Items Added\" notice; the agent can be \
         switched off in System Settings > General > Login Items. Restart it with \
         `launchctl kickstart -k {}`.",
        service_target()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_holds_escaped_absolute_values() {
        let service = Service {
            supervisor: "/Users/a&b/.second-brain/bin/supervisor".into(),
            data_dir: "/Users/a&b/.second-brain".into(),
            log_dir: "/Users/a&b/Library/Logs/second-brain".into(),
            env: vec![
                ("PATH".into(), "/opt/homebrew/bin:/usr/bin".into()),
                ("RUST_LOG".into(), "info,worker=debug".into()),
                ("SECOND_BRAIN_BRANCH".into(), "<main>".into()),
            ],
        };
        let plist = render(&service).unwrap();
        assert!(plist.contains("<string>/Users/a&amp;b/.second-brain/bin/supervisor</string>"));
        assert!(plist.contains(
            "<string>/Users/a&amp;b/Library/Logs/second-brain/launchd.stderr.log</string>"
        ));
        assert!(plist.contains(
            "        <key>SECOND_BRAIN_BRANCH</key>\n        <string>&lt;main&gt;</string>"
        ));
        assert!(plist.contains(&format!("<string>{LABEL}</string>")));
        assert!(plist.contains("<key>ExitTimeOut</key>\n    <integer>30</integer>"));
        assert!(!plist.contains("{{"));
        let bad = Service {
            env: vec![("X".into(), "bell\u{7}".into())],
            ..service
        };
        assert!(render(&bad).unwrap_err().to_string().contains('X'));
    }
}
