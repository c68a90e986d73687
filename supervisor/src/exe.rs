//! This program's own executable, and comparing paths through symlinks.

use std::path::{Path, PathBuf};

/// This program's own executable with every symlink resolved. Started
/// through a link (`~/bin/supervisor -> …/target/release/supervisor`),
/// `current_exe` names the link on macOS, and the sibling worker and the
/// target dir would be looked for beside the link.
pub fn own_exe() -> std::io::Result<PathBuf> {
    std::env::current_exe().map(|raw| resolve_exe(&raw))
}

/// `raw` with its symlinks resolved; `raw` itself if that fails (e.g. the
/// file was replaced since this process started).
pub fn resolve_exe(raw: &Path) -> PathBuf {
    std::fs::canonicalize(raw).unwrap_or_else(|_| raw.to_path_buf())
}

/// Whether `path` is inside `dir`, comparing resolved paths (one of them
/// may come from [`own_exe`], the other from a data dir set through a
/// symlink, as `/var` is on macOS).
pub fn is_inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || resolve_exe(path).starts_with(resolve_exe(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_to_the_executable_resolves_to_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let real_dir = tmp.path().join("target/release");
        std::fs::create_dir_all(&real_dir).unwrap();
        std::fs::write(real_dir.join("supervisor"), "s").unwrap();
        let link_dir = tmp.path().join("home/bin");
        std::fs::create_dir_all(&link_dir).unwrap();
        let link = link_dir.join("supervisor");
        std::os::unix::fs::symlink(real_dir.join("supervisor"), &link).unwrap();
        let resolved = resolve_exe(&link);
        assert_eq!(
            resolved.parent(),
            Some(real_dir.canonicalize().unwrap().as_path())
        );
        // Gone since: the path as it was given.
        let gone = tmp.path().join("replaced");
        assert_eq!(resolve_exe(&gone), gone);
        // A data dir reached through a link contains the resolved path.
        let data_link = tmp.path().join("data-link");
        std::os::unix::fs::symlink(tmp.path().join("target"), &data_link).unwrap();
        assert!(is_inside(&resolved, &data_link));
        assert!(!is_inside(&resolved, &link_dir));
    }
}
