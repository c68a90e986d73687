//! The `service` block of `supervisor status`.

use super::environment::text;
use super::installed::present;
use super::{home, Manager};
use crate::binary;
use crate::status::ServiceStatus;

/// The `service` part of the status report: which manager's file is
/// present, where `git` and `cargo` resolve from this process's PATH, and
/// whether they ran when last checked (the check is cached: this runs
/// nothing).
pub fn service_status() -> ServiceStatus {
    let tool = |name: &str| binary::find_tool(name).map(|p| text(&p));
    let home = home().ok();
    let (manager, installed, unit_path) = match &home {
        Some(h) => {
            let (m, p, installed) = present(h, None);
            (m, installed, Some(p))
        }
        None => (Manager::for_this_platform(), false, None),
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
