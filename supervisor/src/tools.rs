//! `git` and `cargo`: where they are, whether they actually run, and what
//! their "Operation not permitted" failures mean.
//!
//! A file at the right place is not enough: on a Mac without the Command
//! Line Tools, `/usr/bin/git` is a stand-in that prints an error and pops
//! up an install dialog. So a tool is only used once `TOOL --version` has
//! run. That check is cached (`status` reads the cache and never runs a
//! tool), made at start, and made again before an update when it is older
//! than [`RECHECK_AFTER`] or a person asked for the update.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `TOOL --version` may take before its process group is killed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How old a cached check may be before an update checks again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(600);

/// Finds `cargo` or `git` even under launchd's minimal PATH: PATH first,
/// then `$CARGO_HOME/bin`, `~/.cargo/bin`, Homebrew and the system places.
/// Only looks: runs nothing.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if let Ok(p) = which::which(name) {
        return Some(p);
    }
    let mut extra = Vec::new();
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        extra.push(PathBuf::from(cargo_home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        extra.push(PathBuf::from(home).join(".cargo/bin"));
    }
    extra.extend(["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"].map(PathBuf::from));
    extra
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What `BIN --version` (or another bounded run) printed and how it ended.
pub struct VersionRun {
    pub status: std::process::ExitStatus,
    /// stdout then stderr.
    pub said: String,
}

impl VersionRun {
    /// The first line that is not blank.
    pub fn first(&self) -> Option<&str> {
        self.said.lines().map(str::trim).find(|l| !l.is_empty())
    }
}

/// Why `BIN --version` (or another bounded run) gave no answer.
pub enum VersionFailure {
    Spawn(std::io::Error),
    Wait(std::io::Error),
    TimedOut,
}

/// Runs `BIN --version` with stdin closed, in its own process group, and
/// kills the group after `timeout`. Blocking.
pub fn run_version(bin: &Path, timeout: Duration) -> Result<VersionRun, VersionFailure> {
    let mut cmd = Command::new(bin);
    cmd.arg("--version");
    run_bounded(cmd, timeout)
}

/// Runs `cmd` with stdin closed, in its own process group, and kills the
/// group after `timeout`: what it printed and how it ended. Blocking.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<VersionRun, VersionFailure> {
    crate::signals::unblocked(&mut cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = crate::spawn::retry_busy(|| cmd.spawn()).map_err(VersionFailure::Spawn)?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => Ok(VersionRun {
            status: out.status,
            said: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }),
        Ok(Err(e)) => Err(VersionFailure::Wait(e)),
        Err(_) => {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            Err(VersionFailure::TimedOut)
        }
    }
}

/// Why `TOOL --version` did not show that the tool runs: what happened,
/// and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure {
    pub what: String,
    pub todo: String,
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.what, self.todo)
    }
}

/// Runs `TOOL --version` (see [`run_version`]). `Ok`: the first line it
/// printed. `Err`: why it does not run and what to do, naming `tool`.
pub fn version(tool: &Path, timeout: Duration) -> Result<String, String> {
    let mut cmd = Command::new(tool);
    cmd.arg("--version");
    version_of(cmd, tool, timeout).map_err(|f| f.to_string())
}

/// [`version`] for `cmd`, which runs `tool --version` (say, with the
/// environment a service gets): the first line, or why it does not run.
pub fn version_of(cmd: Command, tool: &Path, timeout: Duration) -> Result<String, ToolFailure> {
    let shown = tool.display();
    let reinstall = "fix or reinstall it, then run `supervisor install` again";
    let run = run_bounded(cmd, timeout).map_err(|f| match f {
        VersionFailure::Spawn(e) => ToolFailure {
            what: format!("`{shown} --version` cannot start: {e}"),
            todo: reinstall.into(),
        },
        VersionFailure::Wait(e) => ToolFailure {
            what: format!("`{shown} --version` failed: {e}"),
            todo: reinstall.into(),
        },
        VersionFailure::TimedOut => ToolFailure {
            what: format!(
                "`{shown} --version` did not answer within {} s; killed it",
                timeout.as_secs()
            ),
            todo: "check that it runs in a terminal".into(),
        },
    })?;
    let first = run.first();
    if run.status.success() {
        return Ok(first.unwrap_or("").to_string());
    }
    let first = first.unwrap_or("(no output)").trim_end_matches('.');
    let stub = ["xcode-select", "xcrun", "developer tools"]
        .iter()
        .any(|w| run.said.to_lowercase().contains(w));
    let todo = if stub {
        "this is the stand-in macOS ships until the Command Line Tools are installed: run \
         `xcode-select --install` (or install the tool with Homebrew and put it first on PATH), \
         then run `supervisor install` again"
    } else {
        reinstall
    };
    Err(ToolFailure {
        what: format!("`{shown} --version` failed ({}): {first}", run.status),
        todo: todo.into(),
    })
}

/// One cached `--version` check.
struct Checked {
    name: String,
    path: PathBuf,
    at: Instant,
    result: Result<String, String>,
}

static CHECKED: Mutex<Vec<Checked>> = Mutex::new(Vec::new());

fn cache() -> std::sync::MutexGuard<'static, Vec<Checked>> {
    // A panic while holding it cannot leave a half-written entry.
    CHECKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// `name` found and shown to run. Runs `--version` unless a check of the
/// same file younger than [`RECHECK_AFTER`] is cached (`fresh`: always
/// run it). Blocking: call it off the async runtime's thread.
pub fn usable(name: &str, fresh: bool) -> Result<PathBuf, String> {
    let path = find_tool(name).ok_or_else(|| format!("{name} is not installed or not on PATH"))?;
    let cached = cache()
        .iter()
        .find(|c| c.name == name && c.path == path && c.at.elapsed() < RECHECK_AFTER)
        .map(|c| c.result.clone());
    let result = match cached {
        Some(r) if !fresh => r,
        _ => {
            let r = version(&path, CHECK_TIMEOUT);
            let mut all = cache();
            all.retain(|c| c.name != name);
            all.push(Checked {
                name: name.to_string(),
                path: path.clone(),
                at: Instant::now(),
                result: r.clone(),
            });
            r
        }
    };
    result.map(|_| path)
}

/// [`usable`] off the async runtime's thread: `--version` may take a
/// while.
pub async fn usable_async(name: &'static str, fresh: bool) -> Result<PathBuf, String> {
    tokio::task::spawn_blocking(move || usable(name, fresh))
        .await
        .unwrap_or_else(|e| Err(format!("checking {name} failed: {e}")))
}

/// Why the last check of `name` failed, if it did and `name` still
/// resolves to the file that was checked. Runs nothing (for `status`).
pub fn last_failure(name: &str) -> Option<String> {
    let path = find_tool(name)?;
    cache()
        .iter()
        .find(|c| c.name == name && c.path == path)
        .and_then(|c| c.result.clone().err())
}

/// Whether a git or cargo error is the system refusing access (EPERM).
pub fn is_denied(error: &str) -> bool {
    error.contains("Operation not permitted")
}

/// What an "Operation not permitted" from git or cargo most likely means,
/// added to `error` with the `path` it ran in; other errors unchanged.
pub fn explain_denied(error: String, path: &Path) -> String {
    if !is_denied(&error) {
        return error;
    }
    format!(
        "{error}. The system refused access in or under {}: on macOS that is its privacy \
         protection, which keeps background agents out of ~/Documents, ~/Desktop, ~/Downloads, \
         iCloud Drive and external volumes. Move the repository (and the data directory) \
         elsewhere, e.g. under ~/src (the reliable fix), or grant the supervisor Full Disk \
         Access in System Settings > Privacy & Security",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_tool_that_does_not_run_is_told_apart_and_a_hanging_one_is_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let good = script(tmp.path(), "good", "echo 'git version 2.40.0'");
        assert_eq!(version(&good, CHECK_TIMEOUT).unwrap(), "git version 2.40.0");

        let stub = script(
            tmp.path(),
            "stub",
            "echo 'xcode-select: note: No developer tools were found, requesting install.' >&2\n\
             exit 1",
        );
        let e = version(&stub, CHECK_TIMEOUT).unwrap_err();
        assert!(e.contains("xcode-select --install"), "{e}");
        assert!(e.contains(&stub.display().to_string()), "{e}");

        let broken = script(tmp.path(), "broken", "echo oops >&2; exit 3");
        let e = version(&broken, CHECK_TIMEOUT).unwrap_err();
        assert!(e.contains("oops") && !e.contains("xcode-select"), "{e}");

        // It and what it started are killed at the timeout.
        let pidfile = tmp.path().join("pid");
        let hang = script(
            tmp.path(),
            "hang",
            &format!("sleep 60 & echo $! > {}; wait", pidfile.display()),
        );
        let started = Instant::now();
        let e = version(&hang, Duration::from_millis(500)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Reaped by init once killed; a zombie counts as gone.
        while shared::procs::alive(pid).expect("ps can tell") {
            assert!(
                Instant::now() < deadline,
                "the sleeping grandchild survived"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn operation_not_permitted_names_privacy_protection_and_the_path() {
        let e = explain_denied(
            "git fetch: cannot start: Operation not permitted (os error 1)".into(),
            Path::new("/Users/a/Documents/brain"),
        );
        assert!(e.contains("privacy protection"), "{e}");
        assert!(e.contains("/Users/a/Documents/brain"), "{e}");
        assert_eq!(
            explain_denied("fatal: not a git repository".into(), Path::new("/x")),
            "fatal: not a git repository"
        );
    }
}
