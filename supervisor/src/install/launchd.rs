//! The launchd agent: `~/Library/LaunchAgents/<label>.plist`, loaded into
//! the user's GUI domain with `launchctl bootstrap` (no sudo).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::runner::Runner;
use super::templates::{self, xml_escape, xml_unescape};
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

/// The file launchd sends the supervisor's stdout and stderr to (panics,
/// errors before its own log is open): directly in `~/Library/Logs`, which
/// every macOS account has. A file in a directory that may be missing
/// (the log directory, once deleted) would make launchd refuse to start
/// the job (exit status 78) with nothing left running to recreate it.
pub fn output_path(home: &Path) -> PathBuf {
    home.join("Library/Logs/second-brain.launchd.log")
}

/// Creates the output file (mode 0600; launchd would make it readable by
/// all) and its directory if missing; never truncates it.
pub fn prepare_output(path: &Path) -> Result<(), InstallError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        super::files::ensure_dir(dir, false)?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| InstallError::Failed(format!("cannot create {}: {e}", path.display())))
}

/// How long to wait before the one retry of a bootstrap that failed with
/// error 5, once `launchctl print` no longer finds the old agent.
const BOOTSTRAP_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where to look when bootstrap keeps failing with error 5.
const LOGIN_ITEMS_HELP: &str = "The agent may be switched off in System Settings > General > \
     Login Items (switch it on there, then run `supervisor install` again)";

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
    let supervisor = escape_path(&service.supervisor)?;
    let output = escape_path(&service.output_log)?;
    let stop_budget = (crate::DEFAULT_STOP_TIMEOUT_MS / 1000).to_string();
    let exit_timeout = EXIT_TIMEOUT_SECS.to_string();
    let open_files = shared::fdlimit::WANTED_OPEN_FILES.to_string();
    templates::fill(
        templates::PLIST,
        &[
            ("LABEL", LABEL),
            ("SUPERVISOR", &supervisor),
            ("STOP_BUDGET_SECS", &stop_budget),
            ("EXIT_TIMEOUT_SECS", &exit_timeout),
            ("OPEN_FILES", &open_files),
            ("OUTPUT_PATH", &output),
            ("ENVIRONMENT", &environment),
        ],
    )
    .map_err(InstallError::Failed)
}

/// The text between the first `open` and the `close` after it, and what
/// follows.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<(&'a str, &'a str)> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some((
        &text[start..start + len],
        &text[start + len + close.len()..],
    ))
}

/// What an installed plist runs and the environment it sets, read back
/// (the twin of [`render`]; a plist as install writes it, not any plist):
/// the first of `ProgramArguments` and the `EnvironmentVariables`, in
/// order.
pub fn read(plist: &str) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let mut text = String::with_capacity(plist.len());
    let mut rest = plist;
    while let Some((before, after)) = rest.split_once("<!--") {
        text.push_str(before);
        rest = after.split_once("-->").map(|(_, a)| a).unwrap_or("");
    }
    text.push_str(rest);
    let (_, after) = between(&text, "<key>ProgramArguments</key>", "<array>")
        .ok_or("it has no ProgramArguments")?;
    let (array, _) = between(after, "", "</array>").ok_or("its ProgramArguments is not closed")?;
    let (program, _) =
        between(array, "<string>", "</string>").ok_or("its ProgramArguments is empty")?;
    let mut env = Vec::new();
    if let Some((_, after)) = between(&text, "<key>EnvironmentVariables</key>", "<dict>") {
        let (mut dict, _) =
            between(after, "", "</dict>").ok_or("its EnvironmentVariables is not closed")?;
        while let Some((key, after)) = between(dict, "<key>", "</key>") {
            let (value, after) = between(after, "<string>", "</string>")
                .ok_or_else(|| format!("{key} has no string value"))?;
            env.push((xml_unescape(key), xml_unescape(value)));
            dict = after;
        }
    }
    Ok((PathBuf::from(xml_unescape(program.trim())), env))
}

fn domain() -> String {
    format!("gui/{}", nix::unistd::getuid())
}

/// `gui/<uid>/<label>`: the agent as launchctl names it.
pub fn service_target() -> String {
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
/// that was switched off), bootstrap. A bootstrap failing with error 5
/// ("Input/output error", also what launchd says while the old job is
/// still going away) is tried once more after the old agent is gone.
pub fn load(runner: &Runner, plist: &Path) -> Result<(), InstallError> {
    let target = service_target();
    bootout(runner, &target)?;
    if !runner.dry_run {
        wait_until_unloaded(&target)?;
    }
    runner.must("launchctl", &["enable", &target])?;
    let domain = domain();
    let plist = plist.to_string_lossy();
    let args = ["bootstrap", domain.as_str(), &plist];
    let first = runner.run("launchctl", &args)?;
    if first.success {
        return Ok(());
    }
    if first.code != Some(5) {
        return Err(InstallError::Unreachable(first.failure("launchctl", &args)));
    }
    println!("(bootstrap: {}; trying once more)", first.stderr);
    wait_until_unloaded(&target)?;
    std::thread::sleep(BOOTSTRAP_RETRY_PAUSE);
    let second = runner.run("launchctl", &args)?;
    if second.success {
        return Ok(());
    }
    Err(InstallError::Unreachable(format!(
        "`{}` failed twice ({}): {}. {LOGIN_ITEMS_HELP}; `launchctl print {target}` shows \
         what launchd knows of it",
        super::runner::shell_words("launchctl", &args),
        second.status,
        second.stderr
    )))
}

/// Stops and unloads the agent, then removes its plist.
pub fn unload(runner: &Runner, plist: &Path) -> Result<(), InstallError> {
    let target = service_target();
    bootout(runner, &target)?;
    super::files::remove(plist, runner.dry_run)?;
    Ok(())
}

/// Starts the installed agent: `kickstart` when launchd has it loaded
/// (nothing happens if it is running), else `enable` and `bootstrap`, as
/// after a `stop`.
pub fn start(runner: &Runner, plist: &Path) -> Result<(), InstallError> {
    let target = service_target();
    if loaded(&target) {
        return runner.must("launchctl", &["kickstart", &target]);
    }
    runner.must("launchctl", &["enable", &target])?;
    let plist = plist.to_string_lossy();
    runner.must("launchctl", &["bootstrap", &domain(), &plist])
}

/// Stops the agent by unloading it (`bootout`): launchd would restart a
/// killed `KeepAlive` job at once. It is loaded again at the next login
/// or by `start`. Nothing is run when it is not loaded.
pub fn stop(runner: &Runner) -> Result<bool, InstallError> {
    let target = service_target();
    if !loaded(&target) {
        return Ok(false);
    }
    runner.must("launchctl", &["bootout", &target])?;
    Ok(true)
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
            output_log: output_path(Path::new("/Users/a&b")),
            env: vec![
                ("PATH".into(), "/opt/homebrew/bin:/usr/bin".into()),
                ("RUST_LOG".into(), "info,worker=debug".into()),
                ("SECOND_BRAIN_BRANCH".into(), "<main>".into()),
            ],
        };
        let plist = render(&service).unwrap();
        assert!(plist.contains("<string>/Users/a&amp;b/.second-brain/bin/supervisor</string>"));
        assert!(plist.contains(
            "<key>StandardErrorPath</key>\n    <string>/Users/a&amp;b/Library/Logs/second-brain.launchd.log</string>"
        ));
        assert!(plist.contains("<key>WorkingDirectory</key>\n    <string>/</string>"));
        assert!(plist.contains(
            "        <key>SECOND_BRAIN_BRANCH</key>\n        <string>&lt;main&gt;</string>"
        ));
        assert!(plist.contains(&format!("<string>{LABEL}</string>")));
        assert!(plist.contains("<key>ExitTimeOut</key>\n    <integer>30</integer>"));
        assert!(!plist.contains("{{"));
        let (program, env) = read(&plist).unwrap();
        assert_eq!(program, service.supervisor);
        assert_eq!(env, service.env, "read back as written");
        let bad = Service {
            env: vec![("X".into(), "bell\u{7}".into())],
            ..service
        };
        assert!(render(&bad).unwrap_err().to_string().contains('X'));
    }
}
