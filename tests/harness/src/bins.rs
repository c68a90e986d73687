//! The binaries of this workspace that tests and benches run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

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

/// The binaries a bench runs: the supervisor Cargo built for it, and the
/// worker beside it.
#[derive(Debug, Clone)]
pub struct Bins {
    pub supervisor: PathBuf,
    pub worker: PathBuf,
    /// The cargo target dir the binaries are in.
    pub target_dir: PathBuf,
}

impl Bins {
    /// `supervisor` (a bench's `env!("CARGO_BIN_EXE_supervisor")`) and the
    /// worker beside it, built with `cargo build --release -p worker` when
    /// it is missing or older than its sources. Prints both paths.
    pub fn beside(supervisor: PathBuf) -> Bins {
        let worker = supervisor.with_file_name("worker");
        let target_dir = supervisor
            .parent()
            .and_then(Path::parent)
            .expect("the binary is in <target dir>/<profile>/")
            .to_path_buf();
        let ws = super::project::workspace();
        let sources: Vec<PathBuf> = ["worker/src", "worker/Cargo.toml", "shared/src"]
            .iter()
            .map(|p| ws.join(p))
            .collect();
        let built = std::fs::metadata(&worker).and_then(|m| m.modified()).ok();
        let why = match (built, newest_mtime(&sources)) {
            (None, _) => Some("is missing"),
            (Some(b), Some(src)) if src > b => Some("is older than its sources"),
            _ => None,
        };
        if let Some(why) = why {
            println!(
                "{} {why}: running `cargo build --release -p worker --bin worker --target-dir {}`",
                worker.display(),
                target_dir.display()
            );
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .current_dir(&ws)
                .args(["build", "--release", "-p", "worker", "--bin", "worker"])
                .arg("--target-dir")
                .arg(&target_dir)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build of the worker failed");
            assert!(worker.is_file(), "{} still missing", worker.display());
        }
        println!("supervisor: {}", supervisor.display());
        println!("worker:     {}", worker.display());
        Bins {
            supervisor,
            worker,
            target_dir,
        }
    }
}

/// The newest modification time of the files under `paths`.
fn newest_mtime(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(t) = meta.modified() {
            newest = newest.max(Some(t));
        }
    }
    newest
}
