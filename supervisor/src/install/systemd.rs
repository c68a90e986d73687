//! The systemd user unit: `~/.config/systemd/user/second-brain.service`,
//! managed with `systemctl --user` (no root).

use std::path::{Path, PathBuf};

use super::runner::Runner;
use super::templates::{self, systemd_quote, systemd_words};
use super::{InstallError, Service, EXIT_TIMEOUT_SECS};

/// The unit's file name.
pub const UNIT_NAME: &str = "second-brain.service";

/// What to do when systemctl is missing or cannot reach the user manager.
pub const UNREACHABLE_HELP: &str = "A systemd user instance is needed: in a login session check \
     `systemctl --user status`; over ssh or su run `loginctl enable-linger $USER` and set \
     XDG_RUNTIME_DIR=/run/user/$(id -u), then run `supervisor install` again. Without systemd, \
     start `<data dir>/bin/supervisor run` from your own init system, or use `--manager launchd` \
     on macOS";

/// `~/.config/systemd/user/second-brain.service`: the user's own units,
/// where `systemctl --user` looks unless XDG_CONFIG_HOME moves it.
pub fn unit_path(home: &Path) -> PathBuf {
    home.join(".config/systemd/user").join(UNIT_NAME)
}

/// The unit for `service`.
pub fn render(service: &Service) -> Result<String, InstallError> {
    let exec_start = format!(
        "{} run",
        systemd_quote(&service.supervisor.to_string_lossy())
    );
    let environment = service
        .env
        .iter()
        .map(|(name, value)| format!("Environment={}", systemd_quote(&format!("{name}={value}"))))
        .collect::<Vec<_>>()
        .join("\n");
    let stop_budget = (crate::DEFAULT_STOP_TIMEOUT_MS / 1000).to_string();
    let exit_timeout = EXIT_TIMEOUT_SECS.to_string();
    templates::fill(
        templates::UNIT,
        &[
            ("UNIT_NAME", UNIT_NAME),
            ("EXEC_START", &exec_start),
            ("ENVIRONMENT", &environment),
            ("STOP_BUDGET_SECS", &stop_budget),
            ("EXIT_TIMEOUT_SECS", &exit_timeout),
        ],
    )
    .map_err(InstallError::Failed)
}

/// What an installed unit runs and the environment it sets, read back
/// (the twin of [`render`]): the program of `ExecStart=` and each
/// `NAME=value` of the `Environment=` lines, in order.
pub fn read(unit: &str) -> Result<(PathBuf, Vec<(String, String)>), String> {
    let mut program = None;
    let mut env = Vec::new();
    for line in unit.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("ExecStart=") {
            program = systemd_words(value)?.into_iter().next().map(PathBuf::from);
        } else if let Some(value) = line.strip_prefix("Environment=") {
            for word in systemd_words(value)? {
                if let Some((name, value)) = word.split_once('=') {
                    env.push((name.to_string(), value.to_string()));
                }
            }
        }
    }
    let program = program.ok_or("it has no ExecStart= line")?;
    Ok((program, env))
}

/// Makes systemd read the unit, enables it for the next logins and
/// (re)starts it now. `restart`, not `enable --now`: a second install must
/// replace a running supervisor with the binaries it just copied.
pub fn load(runner: &Runner) -> Result<(), InstallError> {
    runner.must("systemctl", &["--user", "daemon-reload"])?;
    runner.must("systemctl", &["--user", "enable", UNIT_NAME])?;
    runner.must("systemctl", &["--user", "restart", UNIT_NAME])
}

/// Stops and disables the unit, removes its file and tells systemd.
pub fn unload(runner: &Runner, unit: &Path) -> Result<(), InstallError> {
    runner.must("systemctl", &["--user", "disable", "--now", UNIT_NAME])?;
    super::files::remove(unit, runner.dry_run)?;
    runner.must("systemctl", &["--user", "daemon-reload"])
}

/// Starts the installed unit (nothing happens if it is running).
pub fn start(runner: &Runner) -> Result<(), InstallError> {
    runner.must("systemctl", &["--user", "start", UNIT_NAME])
}

/// Stops the unit; it stays enabled and starts again at the next login.
pub fn stop(runner: &Runner) -> Result<bool, InstallError> {
    runner.must("systemctl", &["--user", "stop", UNIT_NAME])?;
    Ok(true)
}

/// What a person should know after installing with systemd.
pub fn after_install_note() {
    println!(
        "note: a user service runs only while you are logged in. To keep it running after \
         you log out and start it at boot, run once: loginctl enable-linger $USER\n\
         Restart it with `systemctl --user restart {}`; its stdout and stderr are in \
         `journalctl --user -u {}`.",
        UNIT_NAME.trim_end_matches(".service"),
        UNIT_NAME.trim_end_matches(".service")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_quotes_its_values() {
        let service = Service {
            supervisor: "/home/a b/.second-brain/bin/supervisor".into(),
            output_log: "/home/a b/Library/Logs/x.log".into(),
            env: vec![
                ("PATH".into(), "/home/a b/.cargo/bin:/usr/bin".into()),
                (
                    "RUST_LOG".into(),
                    r#"info,worker[span{name="x"}]=debug"#.into(),
                ),
            ],
        };
        let unit = render(&service).unwrap();
        assert!(unit.contains("\nExecStart=\"/home/a b/.second-brain/bin/supervisor\" run\n"));
        assert!(unit.contains("\nWorkingDirectory=/\n"));
        assert!(unit.contains("\nEnvironment=\"PATH=/home/a b/.cargo/bin:/usr/bin\"\n"));
        assert!(unit.contains(r#"Environment="RUST_LOG=info,worker[span{name=\"x\"}]=debug""#));
        assert!(unit.contains("\nTimeoutStopSec=30\n"));
        assert!(unit.contains("\nWantedBy=default.target\n"));
        assert!(!unit.contains("{{"));
        let (program, env) = read(&unit).unwrap();
        assert_eq!(program, service.supervisor);
        assert_eq!(env, service.env, "read back as written");
        assert!(read("[Service]\n").is_err());
    }
}
