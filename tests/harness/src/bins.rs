//! The binaries of this workspace that tests and benches run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `worker` binary of this workspace, built if stale.
pub fn worker_bin() -> PathBuf {
    built_bin("worker")
}

/// A binary of this workspace (`worker`, `supervisor`), built for the
/// profile the tests run in. Cargo names binaries only to the tests of
/// their own package, and builds none for a library like this one, so
/// this builds it (`cargo build -p NAME --bin NAME`) once per test binary
/// and name: a no-op of well under a second when it is fresh, and what
/// makes `cargo test -p supervisor` alone run a current worker.
pub fn built_bin(name: &str) -> PathBuf {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps")
        .join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.contains(name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", name, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
        built.insert(name.to_string());
    }
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {name}`",
        bin.display()
    );
    bin
}

/// The first line of `worker --version`.
pub fn version_line() -> String {
    let out = Command::new(worker_bin())
        .arg("--version")
        .output()
        .expect("run worker --version");
    assert!(out.status.success(), "worker --version failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("--version is UTF-8")
        .lines()
        .next()
        .expect("--version prints a line")
        .to_string()
}
