//! The `service` block of `supervisor status`.

use super::environment::text;
use super::{home, Manager};
use crate::binary;
use crate::status::ServiceStatus;

/// The `service` part of the status report: which manager's file is
/// present, where `git` and `cargo` resolve from this process's PATH, and
/// whether they ran when last checked (the check is cached: this runs
/// nothing).
pub fn service_status() -> ServiceStatus {
    let tool = |name: &str| binary::find_tool(name).map(|p| text(&p));
    let mine = Manager::for_this_platform();
    let other = match mine {
        Manager::Launchd => Manager::Systemd,
        Manager::Systemd => Manager::Launchd,
    };
    let home = home().ok();
    let found = home.as_deref().and_then(|h| {
        [mine, other]
            .into_iter()
            .map(|m| (m, m.unit_path(h)))
            .find(|(_, p)| p.is_file())
    });
    let (manager, installed, unit_path) = match (found, &home) {
        (Some((m, p)), _) => (m, true, Some(p)),
        (None, Some(h)) => (mine, false, Some(mine.unit_path(h))),
        (None, None) => (mine, false, None),
    };
    ServiceStatus {
        manager: manager.name().into(),
        installed,
        unit_path: unit_path.map(|p| text(&p)),
        git: tool("git"),
        cargo: tool("cargo"),
        git_error: crate::tools::last_failure("git"),
        cargo_error: crate::tools::last_failure("cargo"),
    }
}
