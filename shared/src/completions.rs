//! `completions SHELL` and `man` of both binaries: shell completion
//! scripts and manual pages generated from the command's own clap
//! definition, so they never fall behind the flags.

use std::io::Write;
use std::path::Path;

pub use clap_complete::Shell;

/// Prints the completion script of `command` (the binary `name`) for
/// `shell` on stdout; the exit status.
pub fn print(shell: Shell, mut command: clap::Command, name: &str) -> i32 {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    emit(&script, name)
}

/// Prints the manual page of `command` (the binary `name`) on stdout, or,
/// with `dir`, writes one page per command and subcommand there
/// (`NAME.1`, `NAME-SUBCOMMAND.1`); the exit status.
pub fn man(command: clap::Command, name: &str, dir: Option<&Path>) -> i32 {
    let Some(dir) = dir else {
        let mut page = Vec::new();
        return match clap_mangen::Man::new(command).render(&mut page) {
            Ok(()) => emit(&page, name),
            Err(e) => fail(name, "cannot render the manual page", &e),
        };
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(name, &format!("cannot create {}", dir.display()), &e);
    }
    match clap_mangen::generate_to(command, dir) {
        Ok(()) => {
            println!("manual pages written to {}", dir.display());
            0
        }
        Err(e) => fail(
            name,
            &format!("cannot write the pages to {}", dir.display()),
            &e,
        ),
    }
}

/// Writes `bytes` to stdout, built in memory first: a closed stdout
/// (`| head`) ends it quietly, not with a panic.
fn emit(bytes: &[u8], name: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(name, "cannot write to stdout", &e),
    }
}

fn fail(name: &str, what: &str, e: &std::io::Error) -> i32 {
    eprintln!("{name}: {what}: {e}");
    1
}
