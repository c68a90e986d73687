//! Running `git` and `cargo`: never waiting for a person (stdin closed, no
//! prompts), in their own process group, killed as a group on timeout.
//!
//! The person's own ssh setup is left alone here: `git::Git` adds ssh's
//! `BatchMode` only when they configured no ssh command (see there).

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::error::UpdateError;
use super::leftovers;

/// What a finished command printed (stdout and stderr interleaved by line).
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub output: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The signal that ended it, if one did.
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }

    /// The last lines of the output, for an error message.
    pub fn tail(&self, lines: usize) -> String {
        let all: Vec<&str> = self
            .output
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A command for `program` with the environment that keeps it from ever
/// asking a person for anything.
pub fn command(program: &Path, args: &[&OsStr], cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        // Whatever ssh command runs: questions go to `true` (no answer),
        // never to the terminal the supervisor may have been started from.
        .env("SSH_ASKPASS", "true")
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .process_group(0)
        .kill_on_drop(true);
    crate::signals::unblocked_tokio(&mut cmd);
    cmd
}

async fn collect<R: AsyncRead + Unpin>(r: R, sink: tokio::sync::mpsc::UnboundedSender<String>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if sink.send(line).is_err() {
            break;
        }
    }
}

/// Kills a command's process group when dropped, unless it finished; then
/// removes the group's record (see `leftovers`).
struct GroupKill {
    pgid: Option<u32>,
    _record: Option<leftovers::Record>,
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.pgid.take() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

/// `git fetch`, `cargo build`: the program's name and first argument
/// that is not an option.
fn label(cmd: &Command) -> String {
    let std = cmd.as_std();
    let name = Path::new(std.get_program())
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    match std
        .get_args()
        .find(|a| !a.to_string_lossy().starts_with('-'))
    {
        Some(first) => format!("{name} {}", first.to_string_lossy()),
        None => name,
    }
}

/// Runs `cmd` to its end or until `timeout`, when its whole process group
/// is killed. `on_line` sees each output line as it comes (for the log).
/// A command that ran and failed is `Ok` (see [`Finished::success`]).
pub async fn run(
    mut cmd: Command,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Finished, UpdateError> {
    let program = std::path::PathBuf::from(cmd.as_std().get_program());
    let label = label(&cmd);
    let mut child = cmd.spawn().map_err(|source| UpdateError::Spawn {
        program: label.clone(),
        source,
    })?;
    // Killed as a group on a timeout, and also when this future is dropped
    // (the supervisor stops mid-build): cargo's compilers go with it. If
    // the supervisor dies first, the next one kills it from its record.
    let mut group = GroupKill {
        pgid: child.id(),
        _record: child
            .id()
            .and_then(|pgid| leftovers::record(pgid, &program)),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(collect(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(collect(err, tx.clone()));
    }
    drop(tx);
    let mut output = String::new();
    let work = async {
        while let Some(line) = rx.recv().await {
            on_line(&line);
            if output.len() < 256 * 1024 {
                output.push_str(&line);
                output.push('\n');
            }
        }
        child.wait().await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(status)) => {
            group.pgid = None;
            Ok(Finished { status, output })
        }
        Ok(Err(e)) => Err(UpdateError::io(format!("{label}: cannot wait for it"), e)),
        Err(_) => {
            drop(group);
            Err(UpdateError::TimedOut {
                program: label,
                after: timeout,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exited (a zombie counts: it waits only to be reaped). The same
    /// probe on Linux and macOS; panics if it cannot tell.
    fn gone(pid: u32) -> bool {
        !shared::procs::alive(pid).expect("ps tells whether a pid runs")
    }

    async fn grandchild_after(cancel_outside: bool) -> u32 {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let args = [OsStr::new("-c"), OsStr::new(&script)];
        let cmd = command(Path::new("/bin/sh"), &args, tmp.path());
        let inner = Duration::from_millis(if cancel_outside { 60_000 } else { 2_000 });
        let run = run(cmd, inner, |_| {});
        if cancel_outside {
            // The caller gives up (its task is aborted): the future is dropped.
            let _ = tokio::time::timeout(Duration::from_millis(2_000), run).await;
        } else {
            let err = run.await.unwrap_err();
            assert!(matches!(err, UpdateError::TimedOut { .. }), "{err}");
            assert!(err.to_string().contains(": timed out after 2 s"), "{err}");
        }
        std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    async fn wait_gone(pid: u32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "grandchild {pid} survived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_process_group() {
        wait_gone(grandchild_after(false).await).await;
    }

    #[tokio::test]
    async fn dropping_the_run_kills_the_whole_process_group() {
        wait_gone(grandchild_after(true).await).await;
    }
}
