use super::*;

pub(crate) use harness::git;
use harness::project::{commit_all, Repos};

/// A copy of this workspace as a git project (a seed repository from the
/// files `git ls-files` lists, a bare origin, the watched checkout and a
/// developer clone to push from), and the service's data and log dirs.
pub(crate) struct Project {
    pub(crate) root: PathBuf,
    pub(crate) checkout: PathBuf,
    dev: PathBuf,
    pub(crate) data: PathBuf,
    pub(crate) logs: PathBuf,
}

impl Project {
    pub(crate) fn new(root: &Path) -> Project {
        let repos = Repos::new(root);
        let data = root.join("data");
        fs::create_dir(&data).expect("create the data dir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
        println!(
            "project: {} files from {} in {}",
            repos.files,
            harness::project::workspace().display(),
            root.display()
        );
        Project {
            root: root.to_path_buf(),
            checkout: repos.checkout,
            dev: repos.dev,
            data,
            logs: root.join("logs"),
        }
    }

    pub(crate) fn tip(&self) -> String {
        git(&self.dev, &["rev-parse", "HEAD"])
    }

    /// Appends a comment line to `worker/src/lib.rs` in the developer
    /// clone, commits and pushes: (sha, when the push started, its wall time).
    pub(crate) fn push(&self, n: usize) -> (String, SystemTime, Duration) {
        let file = self.dev.join("worker/src/lib.rs");
        let text = fs::read_to_string(&file).expect("read lib.rs");
        fs::write(&file, format!("{text}// bench push {n}\n")).expect("write lib.rs");
        commit_all(&self.dev, &format!("bench push {n}"));
        let at = SystemTime::now();
        let t = Instant::now();
        git(&self.dev, &["push", "-q", "origin", "HEAD:main"]);
        (self.tip(), at, t.elapsed())
    }
}
