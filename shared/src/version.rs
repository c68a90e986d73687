//! The version and commit every binary reports (`--version`, `ping`, status).

/// The crate version, shared by the whole workspace.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full 40-hex commit the binary was built from, or `"unknown"`.
pub const COMMIT: &str = env!("SECOND_BRAIN_COMMIT");

/// `<semver> (<commit>)`, what `--version` prints after the name.
pub const VERSION_AND_COMMIT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SECOND_BRAIN_COMMIT"),
    ")"
);

/// The commit as JSON: a string, or null when unknown.
pub fn commit_or_null() -> Option<&'static str> {
    (COMMIT != "unknown").then_some(COMMIT)
}
