//! `supervisor doctor` against a real installed service: installed into a
//! temporary HOME through the recording `launchctl`/`systemctl` stand-ins
//! (harness::service), the installed supervisor running for real with a
//! real git checkout whose origin is a bare repository. Each check passes
//! on the healthy service; each failure below is made for real (a PATH
//! without cargo, an origin that is gone, a data directory others may
//! read, a store whose disk fails under strace, a service not running) and
//! must show as its own ✗ line, with exit status 1.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use harness::service::{assert_ok, text, Manager, Setup};
use harness::{git, wait_until, worker_bin, DEADLINE};

/// What `doctor` checks, in the order it prints them.
const CHECKS: [&str; 14] = [
    "service",
    "binaries",
    "git",
    "cargo",
    "repository",
    "privacy protection",
    "data directory",
    "log directory",
    "disk space",
    "open files",
    "store",
    "held commits",
    "last poll",
    "clock",
];

/// The installed supervisor, running; SIGKILLed (with its worker, which
/// stops once its supervisor is gone) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An installed service watching a real checkout of a bare origin.
struct Service {
    s: Setup,
    checkout: PathBuf,
    manager: &'static str,
}

impl Service {
    /// A checkout with one commit on main, cloned from a bare origin, and
    /// the service installed (with `manager`) to watch it.
    fn install(manager: &'static str) -> Service {
        let s = Setup::new(Manager::Working);
        let seed = s.root.join("seed");
        fs::create_dir(&seed).unwrap();
        git(&seed, &["init", "-q", "-b", "main"]);
        fs::write(seed.join("README"), "notes\n").unwrap();
        git(&seed, &["add", "README"]);
        git(&seed, &["commit", "-q", "-m", "first"]);
        let origin = s.root.join("origin.git");
        let checkout = s.root.join("checkout");
        let p = |p: &Path| p.to_str().unwrap().to_string();
        git(&s.root, &["clone", "-q", "--bare", &p(&seed), &p(&origin)]);
        git(&s.root, &["clone", "-q", &p(&origin), &p(&checkout)]);
        let out = s
            .command(&["install", "--manager", manager, "--worker-bin"])
            .arg(worker_bin())
            .env("SECOND_BRAIN_REPO", &checkout)
            .output()
            .unwrap();
        assert_ok(&out);
        Service {
            s,
            checkout,
            manager,
        }
    }

    /// Starts the installed supervisor as its manager would (with the
    /// settings install wrote) and waits until `status` says its worker
    /// is ready and its store healthy. `worker`: run this worker instead.
    fn start(&self, worker: Option<&Path>) -> Running {
        let mut cmd = self.s.command_for(&self.s.bin("supervisor"), &["run"]);
        if let Some(w) = worker {
            cmd.arg("--worker-bin").arg(w);
        }
        let stderr = fs::File::create(self.s.root.join("supervisor.stderr")).unwrap();
        let child = cmd
            .env("SECOND_BRAIN_REPO", &self.checkout)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the installed supervisor");
        let running = Running(child);
        wait_until(
            DEADLINE,
            "the installed supervisor's worker to be ready",
            || {
                let out = self.s.command(&["status", "--json"]).output().unwrap();
                out.status.success().then_some(())
            },
        );
        running
    }

    /// `supervisor doctor` in the person's environment (which does not
    /// name the repository: the installed file does).
    fn doctor(&self) -> Output {
        self.s.command(&["doctor"]).output().unwrap()
    }

    /// Points the checkout's `origin` at a path where nothing is; that path.
    fn move_origin_away(&self) -> PathBuf {
        let gone = self.s.root.join("moved-away.git");
        git(
            &self.checkout,
            &["remote", "set-url", "origin", gone.to_str().unwrap()],
        );
        gone
    }

    /// The installed systemd unit with its PATH replaced by `path`.
    fn set_service_path(&self, path: &Path) {
        assert_eq!(self.manager, "systemd");
        let unit = fs::read_to_string(self.s.unit()).unwrap();
        let replaced: Vec<String> = unit
            .lines()
            .map(|l| {
                if l.starts_with("Environment=\"PATH=") {
                    format!("Environment=\"PATH={}\"", path.display())
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert_ne!(replaced.join("\n"), unit.trim_end(), "the unit sets PATH");
        fs::write(self.s.unit(), replaced.join("\n") + "\n").unwrap();
    }
}

/// The doctor's lines, checked for shape: one per check, in order, each
/// `✓ NAME: …` or `✗ NAME: … To fix: ….`; and its exit status.
fn lines_of(out: &Output) -> (i32, Vec<String>) {
    let stdout = text(&out.stdout);
    let lines: Vec<String> = stdout.lines().map(String::from).collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("✓ ")
                .or_else(|| l.strip_prefix("✗ "))
                .unwrap_or_else(|| panic!("not a check line: {l:?}\n{stdout}"));
            rest.split(':').next().unwrap()
        })
        .collect();
    assert_eq!(names, CHECKS, "one line per check, in order:\n{stdout}");
    for l in lines.iter().filter(|l| l.starts_with('✗')) {
        assert!(
            l.contains(". To fix: ") && l.ends_with('.'),
            "a failure says what to do: {l}"
        );
    }
    let code = out.status.code().expect("doctor exits normally");
    (code, lines)
}

/// The failing lines.
fn failures(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with('✗')).collect()
}

/// Asserts that exactly the check `name` failed, and exit status 1; the
/// failing line.
#[track_caller]
fn only_failure(out: &Output, name: &str) -> String {
    let (code, lines) = lines_of(out);
    let failed = failures(&lines);
    assert_eq!(failed.len(), 1, "only {name} fails:\n{}", lines.join("\n"));
    let line = failed[0].clone();
    assert!(
        line.starts_with(&format!("✗ {name}: ")),
        "{name} fails:\n{}",
        lines.join("\n")
    );
    assert_eq!(code, 1, "{}", lines.join("\n"));
    line
}

#[test]
fn a_healthy_service_passes_every_check() {
    for manager in ["systemd", "launchd"] {
        let service = Service::install(manager);
        let _running = service.start(None);
        let out = service.doctor();
        let (code, lines) = lines_of(&out);
        let all = lines.join("\n");
        eprintln!("{manager}:\n{all}");
        let passed = lines.iter().filter(|l| l.starts_with("✓ ")).count();
        assert_eq!(
            passed,
            CHECKS.len(),
            "{manager}: every check passes:\n{all}"
        );
        assert_eq!(code, 0, "{manager}:\n{all}\n{}", text(&out.stderr));
        // What they found, where it says the service is as installed.
        let s = &service.s;
        let line = |name: &str| {
            lines
                .iter()
                .find(|l| l.starts_with(&format!("✓ {name}: ")))
                .unwrap()
                .clone()
        };
        let unit = if manager == "systemd" {
            s.unit()
        } else {
            s.plist()
        };
        assert!(line("service").contains(unit.to_str().unwrap()), "{all}");
        assert!(
            line("binaries").contains(s.bin("worker").to_str().unwrap()),
            "{all}"
        );
        assert!(
            line("repository").contains(service.checkout.to_str().unwrap()),
            "{all}"
        );
        assert!(line("store").contains("ok, worker ready"), "{all}");
        assert!(
            line("data directory").contains(&format!("{}, yours, mode 0700", s.data.display())),
            "{all}"
        );
    }
}

#[test]
fn cargo_missing_from_the_services_path_fails_the_cargo_check() {
    let service = Service::install("systemd");
    let _running = service.start(None);
    // The service's PATH finds git, and nothing else.
    let only_git = service.s.root.join("only-git");
    fs::create_dir(&only_git).unwrap();
    let real_git = which::which("git").expect("git is installed");
    std::os::unix::fs::symlink(real_git, only_git.join("git")).unwrap();
    service.set_service_path(&only_git);
    let line = only_failure(&service.doctor(), "cargo");
    assert!(
        line.starts_with(&format!(
            "✗ cargo: not found on the service's PATH ({}). To fix: install Rust",
            only_git.display()
        )),
        "{line}"
    );
}

#[test]
fn an_unreachable_origin_fails_the_repository_check() {
    let service = Service::install("systemd");
    let _running = service.start(None);
    let gone = service.move_origin_away();
    let line = only_failure(&service.doctor(), "repository");
    let checkout = service.checkout.display();
    assert!(
        line.starts_with(&format!(
            "✗ repository: origin {} of {checkout} cannot be reached: git ls-remote",
            gone.display()
        )),
        "{line}"
    );
    assert!(
        line.contains("Could not read from remote repository"),
        "git's own words: {line}"
    );
    assert!(
        line.contains(&format!("To fix: fix the URL, the network or your credentials until `git -C {checkout} ls-remote origin` works")),
        "{line}"
    );
}

#[test]
fn a_data_directory_others_may_read_fails_its_check() {
    let service = Service::install("systemd");
    let _running = service.start(None);
    let data = &service.s.data;
    fs::set_permissions(data, fs::Permissions::from_mode(0o755)).unwrap();
    let line = only_failure(&service.doctor(), "data directory");
    assert_eq!(
        line,
        format!(
            "✗ data directory: {0} has mode 0755, not 0700. To fix: run `chmod 700 '{0}'`.",
            data.display()
        )
    );
}

/// The store made to fail for real: strace injects the errors (Linux).
#[cfg(target_os = "linux")]
mod degraded {
    use harness::Conn;
    use serde_json::{json, Value};

    use super::*;

    fn status(service: &Service) -> Value {
        let out = service.s.command(&["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).expect("status answers")
    }

    #[test]
    fn a_degraded_store_fails_the_store_check_with_its_error() {
        let service = Service::install("systemd");
        // From the third put on, every data sync and journal write fails:
        // the store stays degraded.
        let traced = harness::heal::traced_worker_script(
            &service.s.root,
            &[
                "inject=fdatasync:error=EIO:when=3+",
                "inject=pwrite64:error=EIO:when=4+",
            ],
        );
        let _running = service.start(Some(&traced));
        let mut conn = Conn::connect(&service.s.data.join("worker.sock"));
        for id in ["a0", "a1", "lost"] {
            conn.call(&json!({"op": "put", "id": id, "data": {"n": 1}}));
        }
        wait_until(DEADLINE, "status to show the store degraded", || {
            (status(&service)["store"]["state"] == "degraded").then_some(())
        });
        let line = only_failure(&service.doctor(), "store");
        assert!(line.starts_with("✗ store: DEGRADED since "), "{line}");
        assert!(line.contains("Input/output error"), "{line}");
        assert!(line.contains("To fix: free disk space"), "{line}");
    }
}

#[test]
fn a_service_that_is_not_running_or_not_enabled_says_how_to_start_it() {
    let service = Service::install("systemd");
    // Installed, enabled, but not running.
    let line = only_failure(&service.doctor(), "store");
    assert!(
        line.starts_with("✗ store: unknown: the service is not running"),
        "{line}"
    );
    assert!(
        line.ends_with("To fix: start it with `supervisor start`."),
        "{line}"
    );
    // Disabled behind the service's back: the service line says so too.
    let out = std::process::Command::new(service.s.fake_bin.join("systemctl"))
        .args(["--user", "disable", "second-brain.service"])
        .output()
        .unwrap();
    assert_ok(&out);
    let (code, lines) = lines_of(&service.doctor());
    assert_eq!(code, 1);
    let failed = failures(&lines);
    assert_eq!(failed.len(), 2, "{lines:?}");
    assert!(
        failed[0].starts_with(&format!(
            "✗ service: {} is installed but systemd does not have it enabled",
            service.s.unit().display()
        )),
        "{lines:?}"
    );
    assert!(
        failed[0].ends_with("To fix: run `systemctl --user enable --now second-brain`."),
        "{lines:?}"
    );
    assert!(
        service
            .s
            .calls()
            .contains(&"systemctl --user is-enabled second-brain.service".to_string()),
        "asked the manager: {:?}",
        service.s.calls()
    );
}

#[test]
fn a_held_commit_is_named_with_what_to_do() {
    let service = Service::install("systemd");
    // Held by an earlier run: the supervisor reads the file at start.
    let sha = "0123456789abcdef0123456789abcdef01234567";
    fs::write(
        service.s.data.join("held-commits.json"),
        format!("{{\"{sha}\": \"the build failed\"}}"),
    )
    .unwrap();
    let _running = service.start(None);
    let line = only_failure(&service.doctor(), "held commits");
    assert_eq!(
        line,
        "✗ held commits: 1 held after failing to build or to run: 0123456789ab. To fix: \
         push a fix, or once the machine is fixed run `supervisor update --retry`."
    );
}

#[test]
fn a_failed_poll_is_named_with_its_error() {
    let service = Service::install("systemd");
    let _running = service.start(None);
    let gone = service.move_origin_away();
    let update = service.s.command(&["update"]).output().unwrap();
    assert_eq!(update.status.code(), Some(1), "{update:?}");
    let (code, lines) = lines_of(&service.doctor());
    assert_eq!(code, 1);
    let failed = failures(&lines);
    assert_eq!(
        failed.len(),
        2,
        "repository and last poll:\n{}",
        lines.join("\n")
    );
    assert!(failed[0].starts_with("✗ repository: "), "{}", failed[0]);
    let poll = failed[1];
    assert!(poll.starts_with("✗ last poll: failed at "), "{poll}");
    assert!(
        poll.contains(gone.to_str().unwrap()) || poll.contains("Could not read from remote"),
        "names what failed: {poll}"
    );
    assert!(poll.contains("To fix: fix what it names"), "{poll}");
}
