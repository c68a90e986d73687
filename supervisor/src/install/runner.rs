//! Runs the service manager's commands (`launchctl`, `systemctl`), found
//! on PATH, or in a dry run only prints them as `$ COMMAND`.

use std::io::Write;
use std::process::{Command, Stdio};

use super::InstallError;

/// How a command that did run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub success: bool,
    /// `exit status 5`, `signal 9`.
    pub status: String,
    /// The exit code, if it exited (launchctl's is the error number).
    pub code: Option<i32>,
    /// What it printed on stderr (trimmed), for messages.
    pub stderr: String,
}

/// Prints each command; runs it unless this is a dry run.
pub struct Runner {
    pub dry_run: bool,
}

impl Runner {
    /// Runs `program args…`. `Err` only when it cannot be started at all
    /// (missing from PATH: the service manager is not there). In a dry run
    /// every command "succeeds".
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Ran, InstallError> {
        println!("$ {}", shell_words(program, args));
        if self.dry_run {
            return Ok(Ran {
                success: true,
                status: "not run (dry run)".into(),
                code: Some(0),
                stderr: String::new(),
            });
        }
        let _ = std::io::stdout().flush();
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("`{program}` is not on PATH")
                } else {
                    format!("cannot run `{program}`: {e}")
                };
                InstallError::Unreachable(what)
            })?;
        // Pass on what it said (e.g. systemctl's "Created symlink …"); a
        // failure's words go into the caller's message instead.
        let _ = std::io::stdout().write_all(&out.stdout);
        if out.status.success() {
            let _ = std::io::stderr().write_all(&out.stderr);
        }
        Ok(Ran {
            success: out.status.success(),
            status: out.status.to_string(),
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }

    /// Runs a command that must succeed; a failure becomes `Unreachable`
    /// with `what` (the step) and the command's own words.
    pub fn must(&self, program: &str, args: &[&str]) -> Result<(), InstallError> {
        let ran = self.run(program, args)?;
        if ran.success {
            return Ok(());
        }
        Err(InstallError::Unreachable(ran.failure(program, args)))
    }
}

impl Ran {
    /// "`COMMAND` failed (STATUS): STDERR", for an error message.
    pub fn failure(&self, program: &str, args: &[&str]) -> String {
        let said = if self.stderr.is_empty() {
            String::new()
        } else {
            format!(": {}", self.stderr)
        };
        format!(
            "`{}` failed ({}){said}",
            shell_words(program, args),
            self.status
        )
    }
}

/// The command line as a person would type it, quoting only what needs it.
pub fn shell_words(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=@+,%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_only_what_needs_it() {
        assert_eq!(
            shell_words("launchctl", &["bootstrap", "gui/501", "/Users/a b/x.plist"]),
            "launchctl bootstrap gui/501 '/Users/a b/x.plist'"
        );
        assert_eq!(shell_words("echo", &["it's", ""]), r"echo 'it'\''s' ''");
    }

    #[test]
    fn a_missing_program_is_unreachable_and_a_failing_one_names_its_status() {
        let runner = Runner { dry_run: false };
        let e = runner.run("second-brain-no-such-program", &[]).unwrap_err();
        assert!(
            matches!(&e, InstallError::Unreachable(m) if m.contains("not on PATH")),
            "{e}"
        );
        let e = runner
            .must("sh", &["-c", "echo nope >&2; exit 3"])
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("nope"),
            "{text}"
        );
        assert!(runner.must("true", &[]).is_ok());
        let dry = Runner { dry_run: true };
        assert!(dry.must("sh", &["-c", "exit 3"]).is_ok());
    }
}
