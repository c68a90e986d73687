//! Running `git` and `cargo`: never waiting for a person (stdin closed, no
//! prompts), in their own process group, killed as a group on timeout.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// What a finished command printed (stdout and stderr interleaved by line).
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub status: String,
    pub output: String,
}

impl Finished {
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
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o ConnectTimeout=20",
        )
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .process_group(0)
        .kill_on_drop(true);
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

/// Runs `cmd` to its end or until `timeout`, when its whole process group
/// is killed. `on_line` sees each output line as it comes (for the log).
pub async fn run(
    mut cmd: Command,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Finished, String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let pid = child.id();
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
        Ok(Ok(status)) => Ok(Finished {
            success: status.success(),
            status: status.to_string(),
            output,
        }),
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            Err(format!(
                "timed out after {} s; killed it",
                timeout.as_secs()
            ))
        }
    }
}
