//! `supervisor doctor`: checks, one line each, that the installed service
//! can run, serve and update, and says what to do about each that fails
//! (README, "Doctor"). Exit status 0 when every check passes, 1 otherwise.
//!
//! Every external command runs with a deadline ([`DEADLINE`]) in a
//! process group of its own that is killed when it is over, so the
//! doctor never hangs. What it prints holds no secret: a URL's user and
//! password are cut out ([`redact`]).
//!
//! The checks, in order: the service (`service.rs`: installed and
//! loaded, its binaries), git and cargo on the service's PATH
//! (`toolchain.rs`), the watched repository and macOS privacy protection
//! (`repo.rs`), the directories, the disk and the open-file limit
//! (`resources.rs`), what the running supervisor reports: the store, held
//! commits, the last poll (`running.rs`), and the clock (`clock.rs`).

mod clock;
mod repo;
mod resources;
mod running;
mod service;
mod settings;
mod toolchain;

use std::ffi::OsString;
use std::time::Duration;

use clap::Args;
use shared::fdlimit::FdLimit;

use crate::exit;
use crate::install::Manager;
pub use settings::Context;

/// How long any one external command (git, cargo, launchctl, systemctl,
/// a binary's `--version`) or the supervisor's answer may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `supervisor doctor`'s options: the settings `supervisor run` takes,
/// for a service whose file does not say them.
#[derive(Args, Debug, Default)]
pub struct DoctorArgs {
    /// Log directory [env: LOG_FILE_PATH]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<OsString>,
    /// Watched repository [env: SECOND_BRAIN_REPO] [default: the checkout this was built from]
    #[arg(long, value_name = "DIR")]
    pub repo: Option<OsString>,
    /// Watched branch [env: SECOND_BRAIN_BRANCH] [default: main]
    #[arg(long, value_name = "NAME")]
    pub branch: Option<OsString>,
    /// Service manager [default: the one whose file is installed, else this platform's]
    #[arg(long, value_enum)]
    pub manager: Option<Manager>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `service`, `cargo`.
    pub name: &'static str,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// For a failure: what to do, in one sentence.
    pub advice: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            advice: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, advice: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
            advice: Some(advice.into()),
        }
    }

    /// `✓ NAME: DETAIL` or `✗ NAME: DETAIL. To fix: ADVICE.`, on one line,
    /// with any credentials in URLs cut out.
    pub fn line(&self) -> String {
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let detail = one_line(self.detail.trim_end_matches('.'));
        let text = match (&self.advice, self.ok) {
            (Some(advice), false) => format!(
                "✗ {}: {detail}. To fix: {}.",
                self.name,
                one_line(advice.trim_end_matches('.'))
            ),
            (_, ok) => format!("{} {}: {detail}", if ok { "✓" } else { "✗" }, self.name),
        };
        redact(&text)
    }
}

/// `text` with the user and password of every URL in it cut out
/// (`https://user:token@host/x` → `https://***@host/x`).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "'\"`".contains(c))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(userinfo) => {
                out.push_str("***");
                out.push_str(&tail[userinfo..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Runs every check in order.
pub fn checks(ctx: &Context, open_files: &FdLimit) -> Vec<Check> {
    let asked = running::ask(&ctx.data_dir);
    vec![
        service::installed(ctx),
        service::binaries(ctx),
        toolchain::tool(ctx, "git"),
        toolchain::tool(ctx, "cargo"),
        repo::reachable(ctx),
        repo::privacy(ctx),
        resources::data_dir(ctx),
        resources::log_dir(ctx),
        resources::disk(ctx),
        resources::open_files(open_files),
        running::store(ctx, &asked),
        running::held(ctx, &asked),
        running::last_poll(&asked),
        clock::clock(ctx),
    ]
}

/// `supervisor doctor`: prints a line per check; the exit status.
pub fn run(data_dir_flag: Option<OsString>, args: DoctorArgs, open_files: &FdLimit) -> i32 {
    let ctx = match settings::resolve(data_dir_flag, args) {
        Ok(ctx) => ctx,
        Err(settings::Unusable::Config(e)) => {
            eprintln!("supervisor: {e}");
            return exit::CONFIG;
        }
        Err(settings::Unusable::Other(e)) => {
            eprintln!("supervisor: {e}");
            return exit::FAILURE;
        }
    };
    let mut all_ok = true;
    for check in checks(&ctx, open_files) {
        println!("{}", check.line());
        all_ok &= check.ok;
    }
    if all_ok {
        exit::OK
    } else {
        exit::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_what_and_for_a_failure_what_to_do() {
        let ok = Check::pass("cargo", "/x/cargo: cargo 1.95.0");
        assert_eq!(ok.line(), "✓ cargo: /x/cargo: cargo 1.95.0");
        let bad = Check::fail("data directory", "/d has mode 0755.", "run `chmod 700 /d`");
        assert_eq!(
            bad.line(),
            "✗ data directory: /d has mode 0755. To fix: run `chmod 700 /d`."
        );
        let multi = Check::fail("x", "one\ntwo", "do\nit");
        assert_eq!(multi.line(), "✗ x: one two. To fix: do it.");
    }

    #[test]
    fn credentials_in_urls_are_cut_out() {
        assert_eq!(
            redact("origin https://me:tok3n@example.com/a.git failed; ssh://git@h:22/x"),
            "origin https://***@example.com/a.git failed; ssh://***@h:22/x"
        );
        assert_eq!(
            redact("'https://user@host' and file:///tmp/x"),
            "'https://***@host' and file:///tmp/x"
        );
        assert_eq!(redact("no url here"), "no url here");
    }
}
