//! A copy of this workspace as a git project for the tests that deploy
//! with real cargo builds (tests/update.rs, tests/self_update.rs): a bare
//! origin, the watched checkout, and a developer clone to push from. All
//! of them build in one warm staging area (its own checkout and target
//! dir), so a build after the first only recompiles our own crates.
//! Builds use the dev profile to keep the suite fast; the product default
//! is release.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::supervisor::{status_of, supervisor_cmd, Supervisor};
use super::{git, wait_until, Conn, TestDir};

/// A build from a cold staging area takes minutes on a busy 2-core machine.
pub const BUILD_DEADLINE: Duration = Duration::from_secs(1500);

/// The root of this workspace.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the harness lives at tests/harness in the workspace")
        .to_path_buf()
}

/// One warm staging area for every test (and every run).
pub fn staging() -> PathBuf {
    workspace().join("target/update-test-staging")
}

/// The project: origin, watched checkout, developer clone.
pub struct Project {
    pub dir: TestDir,
    pub origin: PathBuf,
    pub checkout: PathBuf,
    pub dev: PathBuf,
    /// `--probation-ms` for the supervisors it starts.
    pub probation_ms: u64,
    /// `--supervisor-probation-ms` for the supervisors it starts.
    pub supervisor_probation_ms: u64,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// The workspace as it is now (tracked and untracked files, not the
    /// ignored ones) committed as the seed of a fresh repository.
    pub fn new() -> Project {
        let dir = TestDir::new();
        let repos = Repos::new(dir.root());
        Project {
            dir,
            origin: repos.origin,
            checkout: repos.checkout,
            dev: repos.dev,
            probation_ms: 3000,
            supervisor_probation_ms: 1000,
        }
    }

    /// The developer clone's HEAD (the seed, until something is pushed).
    pub fn head(&self) -> String {
        git(&self.dev, &["rev-parse", "HEAD"])
    }

    /// Edits `path` in the developer clone, not yet committed.
    pub fn edit(&self, path: &str, edit: impl FnOnce(String) -> String) {
        let file = self.dev.join(path);
        let text =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        fs::write(&file, edit(text)).unwrap();
    }

    /// Commits every edit in the developer clone and pushes it; the sha.
    pub fn commit_and_push(&self, message: &str) -> String {
        commit_all(&self.dev, message);
        git(&self.dev, &["push", "-q", "origin", "HEAD:main"]);
        self.head()
    }

    /// Edits `path` in the developer clone, commits and pushes; the sha.
    pub fn push(&self, path: &str, edit: impl FnOnce(String) -> String, message: &str) -> String {
        self.edit(path, edit);
        self.commit_and_push(message)
    }

    /// The arguments of `supervisor run` on this project, then `extra`.
    pub fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "--repo".into(),
            self.checkout.to_str().unwrap().into(),
            "--staging-dir".into(),
            staging().to_str().unwrap().into(),
            "--build-profile".into(),
            "dev".into(),
            "--probation-ms".into(),
            self.probation_ms.to_string(),
            "--supervisor-probation-ms".into(),
            self.supervisor_probation_ms.to_string(),
        ];
        all.extend(extra.iter().map(|a| a.to_string()));
        all
    }

    /// `supervisor run` on this project with `env` set, not waited for.
    pub fn spawn_env(&self, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Supervisor {
        let args = self.args(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Supervisor::spawn_env(&self.dir, None, &refs, env)
    }

    /// `supervisor run` on this project, once its worker is ready.
    pub fn start(&self, extra: &[&str]) -> Supervisor {
        self.start_env(extra, &[])
    }

    /// [`Project::start`] with `env` set for the supervisor.
    pub fn start_env(&self, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Supervisor {
        let mut sup = self.spawn_env(extra, env);
        sup.wait_ready();
        sup
    }

    /// `supervisor update` run to its end: (succeeded, what it printed).
    pub fn update(&self) -> (bool, String) {
        let out_path = self.dir.root().join("update.out");
        let mut child = supervisor_cmd(&self.dir.data, &["update"])
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_until(BUILD_DEADLINE, "supervisor update to finish", || {
            child.try_wait().unwrap()
        });
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        let out = fs::read_to_string(out_path).unwrap();
        (status.success(), format!("{out}{err}"))
    }

    /// `supervisor update` that must deploy; its output. A build the
    /// machine killed (a linker crashed by a signal, say) is not the
    /// commit's fault: the service retries it at its next poll, and so
    /// does this, twice at most.
    pub fn deploy(&self) -> String {
        let mut tries = 1;
        loop {
            let (ok, out) = self.update();
            if ok {
                return out;
            }
            assert!(
                tries < 3 && out.contains("killed by a signal"),
                "update failed: {out}"
            );
            eprintln!("update try {tries} failed on the machine, retried: {out}");
            tries += 1;
        }
    }

    /// `supervisor update` started, not waited for.
    pub fn update_in_background(&self) -> Child {
        supervisor_cmd(&self.dir.data, &["update"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub fn status(&self) -> Value {
        status_of(&self.dir.data).1.expect("status answers")
    }

    pub fn ping(&self) -> Value {
        Conn::connect(&self.dir.sock()).call(&json!({"op": "ping"}))
    }

    /// The release directory of commit `sha`.
    pub fn release(&self, sha: &str) -> PathBuf {
        self.dir.data.join("releases").join(sha)
    }
}

/// The repositories of a project under one root: this workspace as it is
/// now (tracked and untracked files, not the ignored ones) committed as
/// the seed of a fresh repository, its bare origin, the watched checkout
/// and a developer clone to push from.
pub struct Repos {
    pub origin: PathBuf,
    pub checkout: PathBuf,
    pub dev: PathBuf,
    /// How many workspace files the seed holds.
    pub files: usize,
}

impl Repos {
    pub fn new(root: &Path) -> Repos {
        let seed = root.join("seed");
        fs::create_dir(&seed).unwrap();
        let ws = workspace();
        let listed = git(
            &ws,
            &["ls-files", "--cached", "--others", "--exclude-standard"],
        );
        let mut files = 0;
        for f in listed.lines() {
            let from = ws.join(f);
            if !from.is_file() {
                continue;
            }
            let to = seed.join(f);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(&from, &to).unwrap();
            files += 1;
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        commit_all(&seed, "seed");
        let origin = root.join("origin.git");
        let checkout = root.join("checkout");
        let dev = root.join("dev");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        git(root, &["clone", "-q", "--bare", &s(&seed), &s(&origin)]);
        git(root, &["clone", "-q", &s(&origin), &s(&checkout)]);
        git(root, &["clone", "-q", &s(&origin), &s(&dev)]);
        Repos {
            origin,
            checkout,
            dev,
            files,
        }
    }
}

/// `git add -A && git commit` in `dir`.
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

/// An edit that appends `line` to a file.
pub fn append(line: impl Into<String>) -> impl FnOnce(String) -> String {
    let line = line.into();
    move |text| format!("{text}\n{line}\n")
}
