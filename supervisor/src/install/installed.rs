//! The service file as it is installed, read back: which manager's it
//! is, what it runs and with which environment. `supervisor doctor`
//! checks what the service really gets, not what this shell has.

use std::path::{Path, PathBuf};

use super::{launchd, systemd, Manager};

/// An installed plist or unit.
#[derive(Debug, Clone)]
pub struct Installed {
    pub manager: Manager,
    pub path: PathBuf,
    /// The program the manager starts (`<data dir>/bin/supervisor`).
    pub supervisor: PathBuf,
    /// The environment the file sets, in its order.
    pub env: Vec<(String, String)>,
}

impl Installed {
    /// The value the file gives `name`, if any.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The manager whose service file is present under `home` and that
/// file: `prefer` (or this platform's) first, then the other one. With
/// neither present, the preferred manager and where its file would be.
pub fn present(home: &Path, prefer: Option<Manager>) -> (Manager, PathBuf, bool) {
    let mine = prefer.unwrap_or_else(Manager::for_this_platform);
    let other = match mine {
        Manager::Launchd => Manager::Systemd,
        Manager::Systemd => Manager::Launchd,
    };
    let candidates = match prefer {
        // Asked for one: only that one.
        Some(_) => vec![mine],
        None => vec![mine, other],
    };
    candidates
        .into_iter()
        .map(|m| (m, m.unit_path(home)))
        .find(|(_, p)| p.is_file())
        .map(|(m, p)| (m, p, true))
        .unwrap_or_else(|| (mine, mine.unit_path(home), false))
}

/// Reads `manager`'s service file at `path`.
pub fn read(manager: Manager, path: &Path) -> Result<Installed, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (supervisor, env) = match manager {
        Manager::Launchd => launchd::read(&text),
        Manager::Systemd => systemd::read(&text),
    }
    .map_err(|e| format!("{} is not as install writes it: {e}", path.display()))?;
    Ok(Installed {
        manager,
        path: path.to_path_buf(),
        supervisor,
        env,
    })
}
