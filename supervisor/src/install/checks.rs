//! What install warns about without stopping: `git` or `cargo` that is
//! missing or does not run, and paths the launchd agent will not be
//! allowed to read.

use std::path::{Path, PathBuf};

use crate::tools;

/// Warns (stderr) about each of `git` and `cargo` that is not found or
/// whose `--version` fails, e.g. the stand-in `/usr/bin/git` of a Mac
/// without the Command Line Tools.
pub fn warn_about_tools() {
    for tool in ["git", "cargo"] {
        match tools::find_tool(tool) {
            None => eprintln!(
                "warning: `{tool}` is not installed or not on PATH, and updates from git need \
                 it: install it, then run `supervisor install` again"
            ),
            Some(path) => {
                if let Err(e) = tools::version(&path, tools::CHECK_TIMEOUT) {
                    eprintln!("warning: `{tool}` does not run, and updates from git need it: {e}");
                }
            }
        }
    }
}

/// The folders macOS privacy protection (TCC) keeps a background agent
/// out of unless the person grants access: (how to name it, where).
pub fn protected_folders(home: &Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("~/Documents", home.join("Documents")),
        ("~/Desktop", home.join("Desktop")),
        ("~/Downloads", home.join("Downloads")),
        ("iCloud Drive", home.join("Library/Mobile Documents")),
        ("cloud storage", home.join("Library/CloudStorage")),
        ("an external volume", PathBuf::from("/Volumes")),
    ]
}

/// Which protected folder `path` is in, if any. Compares resolved paths
/// where they exist: a link from elsewhere into ~/Documents counts, and
/// `/Volumes/Macintosh HD` (a link to `/`) does not.
pub fn protected_folder(path: &Path, home: &Path) -> Option<&'static str> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    protected_folders(home)
        .into_iter()
        .find(|(_, dir)| {
            let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            path.starts_with(dir) || path.starts_with(&resolved)
        })
        .map(|(name, _)| name)
}

/// Warns about each of `paths` (what it is, where) inside a protected
/// folder: git and the worker started by the agent get "Operation not
/// permitted" there, although the same commands work in Terminal.
pub fn warn_about_protected(paths: &[(&str, PathBuf)], home: &Path) {
    for (what, path) in paths {
        if let Some(folder) = protected_folder(path, home) {
            eprintln!(
                "warning: the {what} {} is in {folder}, which macOS privacy protection keeps \
                 launchd agents out of: the service will get \"Operation not permitted\" there \
                 (while the same commands work in Terminal). Move it elsewhere, e.g. under \
                 ~/src (the reliable fix), or grant the supervisor Full Disk Access in System \
                 Settings > Privacy & Security, then run `supervisor install` again",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_folders_are_found_through_links_and_only_there() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(home.join("Documents/brain")).unwrap();
        std::fs::create_dir_all(home.join("src/brain")).unwrap();
        let p = |rel: &str| home.join(rel);
        assert_eq!(
            protected_folder(&p("Documents/brain"), &home),
            Some("~/Documents")
        );
        // Not there yet: compared as written.
        assert_eq!(
            protected_folder(&p("Desktop/new/repo"), &home),
            Some("~/Desktop")
        );
        assert_eq!(
            protected_folder(&p("Library/Mobile Documents/com~apple~CloudDocs/b"), &home),
            Some("iCloud Drive")
        );
        assert_eq!(
            protected_folder(Path::new("/Volumes/USB/brain"), &home),
            Some("an external volume")
        );
        assert_eq!(protected_folder(&p("src/brain"), &home), None);
        assert_eq!(protected_folder(&p("Documentsx"), &home), None);
        // A link elsewhere that leads into ~/Documents counts.
        std::os::unix::fs::symlink(p("Documents/brain"), p("code")).unwrap();
        assert_eq!(protected_folder(&p("code"), &home), Some("~/Documents"));
        // A HOME reached through a link: the resolved forms still match.
        let link_home = tmp.path().join("home-link");
        std::os::unix::fs::symlink(&home, &link_home).unwrap();
        assert_eq!(
            protected_folder(&p("Documents/brain"), &link_home),
            Some("~/Documents")
        );
    }
}
