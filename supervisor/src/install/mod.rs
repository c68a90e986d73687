//! `supervisor install` and `supervisor uninstall`: the per-user service
//! (a launchd agent on macOS, a systemd user unit elsewhere) that keeps
//! `supervisor run` going across logins and crashes.
//!
//! Install copies both binaries to `<data dir>/bin/` (where `cargo clean`
//! cannot reach them), writes the service file from the template in
//! `launchd/`, then asks the service manager to (re)load it. Everything is
//! idempotent: a second install replaces the files and restarts the
//! service with the new binaries.

pub mod checks;
pub mod environment;
pub mod files;
pub mod installed;
pub mod launchd;
mod lifecycle;
pub mod runner;
mod service_status;
pub mod systemd;
pub mod templates;

use std::path::{Path, PathBuf};

use shared::config::{self, ConfigError};
use shared::paths::DataDir;

use crate::binary;
pub use environment::{service_env, service_path};
pub use lifecycle::{start, stop};
use runner::Runner;
pub use service_status::service_status;

/// How long the service manager waits after SIGTERM before SIGKILL: well
/// above the supervisor's own budget for stopping its worker.
pub const EXIT_TIMEOUT_SECS: u64 = 3 * crate::DEFAULT_STOP_TIMEOUT_MS / 1000;

/// The service managers install knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Manager {
    /// A launchd agent in `~/Library/LaunchAgents` (macOS).
    Launchd,
    /// A systemd user unit in `~/.config/systemd/user` (Linux).
    Systemd,
}

impl Manager {
    /// launchd on macOS, systemd everywhere else.
    pub fn for_this_platform() -> Manager {
        #[cfg(target_os = "macos")]
        let manager = Manager::Launchd;
        #[cfg(not(target_os = "macos"))]
        let manager = Manager::Systemd;
        manager
    }

    pub fn name(self) -> &'static str {
        match self {
            Manager::Launchd => "launchd",
            Manager::Systemd => "systemd",
        }
    }

    /// Where this manager's service file lives under `home`.
    pub fn unit_path(self, home: &Path) -> PathBuf {
        match self {
            Manager::Launchd => launchd::plist_path(home),
            Manager::Systemd => systemd::unit_path(home),
        }
    }
}

/// Why install or uninstall did not finish.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A setting in the environment is invalid (exit status 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read or written.
    #[error("{0}")]
    Failed(String),
    /// The service manager is missing or refused; the files written so
    /// far are complete and valid.
    #[error("{0}")]
    Unreachable(String),
}

impl InstallError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Config(_) => crate::exit::CONFIG,
            _ => crate::exit::FAILURE,
        }
    }
}

/// What `install` and `uninstall` are asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `None`: the platform's own manager.
    pub manager: Option<Manager>,
    pub dry_run: bool,
    /// The worker to copy instead of the one `binary::resolve` finds.
    pub worker_bin: Option<PathBuf>,
}

/// Everything the service file says, resolved at install time.
#[derive(Debug, Clone)]
pub struct Service {
    /// `<data dir>/bin/supervisor`, what the manager starts with `run`.
    pub supervisor: PathBuf,
    /// Where launchd sends the supervisor's stdout and stderr.
    pub output_log: PathBuf,
    /// `PATH` first, then the §2 settings, then `CARGO_HOME` and
    /// `RUSTUP_HOME`, in a fixed order.
    pub env: Vec<(String, String)>,
}

/// The user's home directory: `$HOME` (what launchd and systemd give the
/// service too).
pub fn home() -> Result<PathBuf, InstallError> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| InstallError::Failed("HOME is not set to an absolute path; set it".into()))
}

/// The worker install copies: `--worker-bin`, else the one `supervisor
/// run` would start now, else one built from the source checkout.
fn worker_source(opts: &Options, dir: &DataDir) -> Result<PathBuf, InstallError> {
    if let Some(p) = &opts.worker_bin {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(InstallError::Failed(format!(
                "the worker binary {} does not exist",
                p.display()
            )))
        };
    }
    if let Some(p) = binary::resolve(None, dir) {
        return Ok(p);
    }
    if opts.dry_run {
        println!("# build: no worker binary found; `cargo build -p worker` would build one");
        let exe = crate::exe::own_exe().map_err(|e| InstallError::Failed(e.to_string()))?;
        return Ok(exe.with_file_name("worker"));
    }
    binary::build_sibling_worker().map_err(InstallError::Failed)
}

/// `supervisor install`.
pub fn install(data_dir: &DataDir, opts: &Options) -> Result<(), InstallError> {
    let manager = opts.manager.unwrap_or_else(Manager::for_this_platform);
    let dry = opts.dry_run;
    let home = home()?;
    let env = service_env(data_dir.root(), &home)?;
    let log_dir = config::log_dir(None)?;
    let me = crate::exe::own_exe()
        .map_err(|e| InstallError::Failed(format!("cannot find my own executable: {e}")))?;
    let worker = worker_source(opts, data_dir)?;
    let bin = data_dir.bin_dir();
    let service = Service {
        supervisor: bin.join("supervisor"),
        output_log: launchd::output_path(&home),
        env,
    };
    let (unit_path, contents) = match manager {
        Manager::Launchd => (launchd::plist_path(&home), launchd::render(&service)?),
        Manager::Systemd => (systemd::unit_path(&home), systemd::render(&service)?),
    };
    checks::warn_about_tools();
    if manager == Manager::Launchd {
        checks::warn_about_protected(&watched_paths(data_dir, &log_dir)?, &home);
    }
    if !dry {
        let private = |d: &Path| {
            shared::paths::ensure_private_dir(d).map_err(|e| InstallError::Failed(e.to_string()))
        };
        private(data_dir.root())?;
        private(&bin)?;
        private(&log_dir)?;
        if manager == Manager::Launchd {
            launchd::prepare_output(&service.output_log)?;
        }
    }
    // The worker first: the supervisor looks for it beside itself.
    files::copy_binary(&worker, &bin.join("worker"), dry)?;
    files::copy_binary(&me, &service.supervisor, dry)?;
    files::write_text(&unit_path, &contents, files::SERVICE_FILE_MODE, dry)?;
    let runner = Runner { dry_run: dry };
    match manager {
        Manager::Launchd => launchd::load(&runner, &unit_path),
        Manager::Systemd => systemd::load(&runner),
    }
    .map_err(|e| unreachable_help(e, manager, &unit_path, data_dir))?;
    if !dry {
        println!(
            "installed: {} runs {} run",
            manager.name(),
            service.supervisor.display()
        );
        match manager {
            Manager::Launchd => launchd::after_install_note(),
            Manager::Systemd => systemd::after_install_note(),
        }
    }
    Ok(())
}

/// The paths the service reads and writes: the watched repository (as
/// `supervisor run` will resolve it), the data and the log directory.
fn watched_paths(
    data_dir: &DataDir,
    log_dir: &Path,
) -> Result<Vec<(&'static str, PathBuf)>, InstallError> {
    let default_repo = binary::source_checkout().filter(|p| p.join(".git").exists());
    let mut paths = Vec::new();
    if let Some(repo) = config::repo(None, default_repo)? {
        paths.push(("watched repository", repo));
    }
    paths.push(("data directory", data_dir.root().to_path_buf()));
    paths.push(("log directory", log_dir.to_path_buf()));
    Ok(paths)
}

/// `supervisor uninstall`: stops the service and removes its file. Data,
/// logs and the copied binaries stay.
pub fn uninstall(data_dir: &DataDir, opts: &Options) -> Result<(), InstallError> {
    let manager = opts.manager.unwrap_or_else(Manager::for_this_platform);
    let home = home()?;
    let unit_path = manager.unit_path(&home);
    if !unit_path.exists() {
        println!(
            "not installed for {}: {} does not exist; nothing to do",
            manager.name(),
            unit_path.display()
        );
        return Ok(());
    }
    let runner = Runner {
        dry_run: opts.dry_run,
    };
    match manager {
        Manager::Launchd => launchd::unload(&runner, &unit_path),
        Manager::Systemd => systemd::unload(&runner, &unit_path),
    }
    .map_err(|e| unreachable_help(e, manager, &unit_path, data_dir))?;
    if !opts.dry_run {
        println!(
            "uninstalled. Kept: the data in {}, the logs, and the binaries in {} \
             (delete those by hand if you no longer want them)",
            data_dir.root().display(),
            data_dir.bin_dir().display()
        );
    }
    Ok(())
}

/// Adds to an unreachable manager's error what state things are in and
/// what to do next.
fn unreachable_help(
    e: InstallError,
    manager: Manager,
    unit_path: &Path,
    data_dir: &DataDir,
) -> InstallError {
    let InstallError::Unreachable(what) = e else {
        return e;
    };
    let file = if unit_path.exists() {
        format!("{} is in place and complete", unit_path.display())
    } else {
        format!("{} is removed", unit_path.display())
    };
    let todo = match manager {
        Manager::Launchd => launchd::UNREACHABLE_HELP,
        Manager::Systemd => systemd::UNREACHABLE_HELP,
    }
    .replace("<data dir>", &data_dir.root().to_string_lossy());
    InstallError::Unreachable(format!(
        "{} could not be reached: {what}. {file}. {todo}",
        manager.name()
    ))
}
