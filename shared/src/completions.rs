//! `worker completions SHELL` and `supervisor completions SHELL`: a shell
//! completion script generated from the command's own clap definition, so
//! it never falls behind the flags.

use std::io::Write;

pub use clap_complete::Shell;

/// Prints the completion script of `command` (the binary `name`) for
/// `shell` on stdout; the exit status. The script is built in memory
/// first: a closed stdout (`| head`) is an error message, not a panic.
pub fn print(shell: Shell, mut command: clap::Command, name: &str) -> i32 {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("{name}: cannot write the completion script: {e}");
            1
        }
    }
}
