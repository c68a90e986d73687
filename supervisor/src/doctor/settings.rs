//! What the doctor checks: the service as installed. Settings are
//! resolved as `supervisor run` resolves them (`shared::config`), with
//! the installed plist or unit standing in for the environment it gives
//! the service: a flag, then the installed file, then this shell's
//! environment, then the default.

use std::ffi::OsString;
use std::path::PathBuf;

use shared::config::{self, ConfigError};
use shared::paths::DataDir;

use super::DoctorArgs;
use crate::install::installed::{self, Installed};
use crate::install::{self, Manager};

/// launchd's own PATH, which a service file without one gets.
const MANAGER_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// Everything the checks look at.
pub struct Context {
    pub home: PathBuf,
    pub data_dir: DataDir,
    pub log_dir: PathBuf,
    pub repo: Option<PathBuf>,
    pub branch: String,
    pub manager: Manager,
    /// Where the service file is, or would be.
    pub unit_path: PathBuf,
    /// The installed file as read; `None` when there is none.
    pub installed: Option<Result<Installed, String>>,
    /// PATH as the service gets it: the installed file's, else what
    /// install would write now.
    pub service_path: String,
}

impl Context {
    /// The installed file, if it is there and readable.
    pub fn unit(&self) -> Option<&Installed> {
        self.installed.as_ref().and_then(|i| i.as_ref().ok())
    }

    /// The environment the service gets from its file (at least PATH).
    pub fn service_env(&self) -> Vec<(String, String)> {
        let mut env = self.unit().map(|u| u.env.clone()).unwrap_or_default();
        env.retain(|(name, _)| name != "PATH");
        env.insert(0, ("PATH".into(), self.service_path.clone()));
        env
    }
}

/// Why the doctor cannot start: exit status 2 for a bad setting, else 1.
pub enum Unusable {
    Config(ConfigError),
    Other(String),
}

/// `flag`, else the value the installed file gives `name`: the raw text
/// `shared::config` parses, and whether it came from the file.
fn layered(
    flag: Option<OsString>,
    unit: Option<&Installed>,
    name: &str,
) -> (Option<OsString>, bool) {
    if flag.is_some() {
        return (flag, false);
    }
    match unit.and_then(|u| u.env(name)) {
        Some(v) => (Some(OsString::from(v)), true),
        None => (None, false),
    }
}

/// `resolve(raw)`, with an error naming the installed file when the
/// value came from it.
fn setting<T>(
    flag: Option<OsString>,
    unit: Option<&Installed>,
    name: &str,
    resolve: impl FnOnce(Option<OsString>) -> Result<T, ConfigError>,
) -> Result<T, Unusable> {
    let (raw, from_file) = layered(flag, unit, name);
    resolve(raw).map_err(|mut e| {
        if from_file {
            let path = unit.map(|u| u.path.display().to_string());
            e.source = format!("{name} in {}", path.unwrap_or_default());
        }
        Unusable::Config(e)
    })
}

/// The context for `args`; `data_dir_flag` is the global `--data-dir`.
pub fn resolve(data_dir_flag: Option<OsString>, args: DoctorArgs) -> Result<Context, Unusable> {
    let home = install::home().map_err(|e| Unusable::Other(e.to_string()))?;
    let (manager, unit_path, present) = installed::present(&home, args.manager);
    let installed = present.then(|| installed::read(manager, &unit_path));
    let unit = installed.as_ref().and_then(|i| i.as_ref().ok());
    let data_dir = setting(data_dir_flag, unit, config::DATA_DIR_ENV, config::data_dir)?;
    let log_dir = setting(args.log_dir, unit, config::LOG_DIR_ENV, config::log_dir)?;
    let default_repo = crate::binary::source_checkout().filter(|p| p.join(".git").exists());
    let repo = setting(args.repo, unit, config::REPO_ENV, |raw| {
        config::repo(raw, default_repo)
    })?;
    let branch = setting(args.branch, unit, config::BRANCH_ENV, config::branch)?;
    let service_path = match unit {
        Some(u) => u.env("PATH").unwrap_or(MANAGER_PATH).to_string(),
        None => install::service_path(&home),
    };
    Ok(Context {
        home,
        data_dir: DataDir::new(data_dir),
        log_dir,
        repo,
        branch,
        manager,
        unit_path,
        installed,
        service_path,
    })
}

/// A context for unit tests: `data_dir`, nothing installed.
#[cfg(test)]
pub fn test_context(data_dir: DataDir) -> Context {
    let root = data_dir.root().to_path_buf();
    Context {
        home: root.clone(),
        log_dir: root.join("logs"),
        repo: None,
        branch: "main".into(),
        manager: Manager::Systemd,
        unit_path: root.join("second-brain.service"),
        installed: None,
        service_path: MANAGER_PATH.into(),
        data_dir,
    }
}
