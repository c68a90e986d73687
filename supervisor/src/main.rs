//! `supervisor`: keeps one worker serving. Until the supervisor issue lands
//! it only answers `--help` and `--version`.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "supervisor",
    version = shared::version::VERSION_AND_COMMIT,
    about = "Keeps one second-brain worker serving (not yet implemented: run `worker` by hand)"
)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("supervisor: not implemented yet; run the worker directly with `worker`");
    std::process::exit(1);
}
