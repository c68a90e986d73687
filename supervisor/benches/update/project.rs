use super::*;

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = clean_env(&mut Command::new("git"))
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("git prints UTF-8")
        .trim()
        .to_string()
}

fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

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
        let seed = root.join("seed");
        fs::create_dir(&seed).expect("create the seed dir");
        let ws = harness::project::workspace();
        let files = git(
            &ws,
            &["ls-files", "--cached", "--others", "--exclude-standard"],
        );
        let mut copied = 0;
        for f in files.lines() {
            let from = ws.join(f);
            if !from.is_file() {
                continue;
            }
            let to = seed.join(f);
            fs::create_dir_all(to.parent().expect("a file has a parent")).expect("mkdir");
            fs::copy(&from, &to).expect("copy a workspace file");
            copied += 1;
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        commit_all(&seed, "seed");
        let origin = root.join("origin.git");
        let checkout = root.join("checkout");
        let dev = root.join("dev");
        let s = |p: &Path| p.to_str().expect("a UTF-8 path").to_string();
        git(root, &["clone", "-q", "--bare", &s(&seed), &s(&origin)]);
        git(root, &["clone", "-q", &s(&origin), &s(&checkout)]);
        git(root, &["clone", "-q", &s(&origin), &s(&dev)]);
        let data = root.join("data");
        fs::create_dir(&data).expect("create the data dir");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
        println!(
            "project: {copied} files from {} in {}",
            ws.display(),
            root.display()
        );
        Project {
            root: root.to_path_buf(),
            checkout,
            dev,
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
