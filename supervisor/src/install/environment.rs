//! The environment the service runs with: a PATH that finds `git` and
//! `cargo` (launchd's own has neither `~/.cargo/bin` nor Homebrew), the
//! data directory, the §2 settings that are set where install runs, and
//! the Rust toolchain's own homes when they are moved from the default.

use std::path::{Path, PathBuf};

use shared::config;

use super::InstallError;
use crate::binary;

/// The toolchain settings copied into the service when set: without them
/// a rustup installed elsewhere finds no toolchain under launchd.
pub const TOOLCHAIN_ENV: [&str; 2] = ["CARGO_HOME", "RUSTUP_HOME"];

/// Where updates are built (`supervisor run --staging-dir`), copied into
/// the service when set so that the service builds where the person
/// chose, not in the default `<data dir>/staging`.
pub const STAGING_DIR_ENV: &str = "SECOND_BRAIN_STAGING_DIR";

/// `name` from the environment as an absolute path, if set and not empty
/// (rustup reads a relative one against the current directory).
fn env_dir(name: &str) -> Option<PathBuf> {
    let raw = std::env::var_os(name).filter(|v| !v.is_empty())?;
    std::path::absolute(PathBuf::from(raw)).ok()
}

/// A PATH for the service that finds `git` and `cargo` as they resolve
/// now, plus `$CARGO_HOME/bin`, `~/.cargo/bin` and the system directories.
pub fn service_path(home: &Path) -> String {
    let mut dirs: Vec<PathBuf> = ["git", "cargo"]
        .iter()
        .filter_map(|tool| binary::find_tool(tool))
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    if let Some(cargo_home) = env_dir("CARGO_HOME") {
        dirs.push(cargo_home.join("bin"));
    }
    dirs.push(home.join(".cargo/bin"));
    dirs.extend(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let mut seen = Vec::new();
    for d in dirs {
        let d = d.to_string_lossy().into_owned();
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen.join(":")
}

pub(super) fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The service's environment: PATH, the data directory, and each §2
/// setting that is set where install runs, checked as `supervisor run`
/// would check it and written resolved (absolute paths, parsed numbers).
pub fn service_env(data_dir: &Path, home: &Path) -> Result<Vec<(String, String)>, InstallError> {
    let set = |name: &str| std::env::var_os(name).is_some();
    let mut env = vec![
        ("PATH".to_string(), service_path(home)),
        (config::DATA_DIR_ENV.to_string(), text(data_dir)),
    ];
    let mut add = |name: &str, value: String| env.push((name.to_string(), value));
    if set(config::LOG_DIR_ENV) {
        add(config::LOG_DIR_ENV, text(&config::log_dir(None)?));
    }
    if set(config::LOG_RETENTION_ENV) {
        add(
            config::LOG_RETENTION_ENV,
            config::log_retention_days(None)?.to_string(),
        );
    }
    if set(config::POLL_INTERVAL_ENV) {
        add(
            config::POLL_INTERVAL_ENV,
            config::poll_interval_ms(None)?.to_string(),
        );
    }
    if set(config::REPO_ENV) {
        if let Some(repo) = config::repo(None, None)? {
            add(config::REPO_ENV, text(&repo));
        }
    }
    if set(config::BRANCH_ENV) {
        add(config::BRANCH_ENV, config::branch(None)?);
    }
    if set(config::LOG_FILTER_ENV) {
        add(config::LOG_FILTER_ENV, config::log_filter()?);
    }
    for name in TOOLCHAIN_ENV.into_iter().chain([STAGING_DIR_ENV]) {
        if let Some(dir) = env_dir(name) {
            add(name, text(&dir));
        }
    }
    Ok(env)
}
