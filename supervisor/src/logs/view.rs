//! `supervisor logs`: the last lines of the service's log files, both
//! processes interleaved in time order and each line marked with its
//! process, then, with `--follow`, new lines as they are written. It only
//! reads the files, so it works whether or not the service runs.

use std::ffi::OsString;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use shared::config;

use super::follow::{self, Follower};
use super::line::{self, Format, Line, Source};
use super::tail::{self, Window};
use crate::exit;

/// How many lines are printed unless `-n` or `--since` says otherwise.
pub const DEFAULT_LINES: usize = 50;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// After the last lines, print new ones as they are written (until Ctrl-C)
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to print [default: 50, or all of them with --since]
    #[arg(short = 'n', long = "lines", value_name = "N")]
    pub lines: Option<usize>,
    /// Only the worker's lines
    #[arg(long, conflicts_with = "supervisor")]
    pub worker: bool,
    /// Only the supervisor's own lines
    #[arg(long)]
    pub supervisor: bool,
    /// Only lines newer than this: a whole number and s, m, h or d (30s, 10m, 2h, 1d)
    #[arg(long, value_name = "DURATION", value_parser = parse_since)]
    pub since: Option<Duration>,
    /// One JSON object per line: {"source", "time" (null if the line has none), "line"}
    #[arg(long)]
    pub json: bool,
    /// Log directory [env: LOG_FILE_PATH] [default: the one `run` uses]
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<OsString>,
}

/// A `--since` value: `30s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not a duration: write a whole number and a unit, s, m, h or d (30s, 10m, 2h, 1d)")
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds_per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long a duration"))
}

/// `supervisor logs …`; returns the exit status.
pub fn run(args: LogsArgs) -> i32 {
    let dir = match config::log_dir(args.log_dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("supervisor: {e}");
            return exit::CONFIG;
        }
    };
    let sources = match (args.worker, args.supervisor) {
        (true, _) => vec![Source::Worker],
        (_, true) => vec![Source::Supervisor],
        _ => Source::ALL.to_vec(),
    };
    let window = Window {
        limit: args.lines.or(args.since.is_none().then_some(DEFAULT_LINES)),
        since: args
            .since
            .map(|d| SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH)),
        whole_lines: args.follow,
    };
    let format = if args.json {
        Format::Json
    } else {
        Format::Text
    };
    if !dir.exists() {
        eprintln!(
            "supervisor: no logs in {}: the directory does not exist (it comes from --log-dir, \
             LOG_FILE_PATH or the default, as for `supervisor run`){}",
            dir.display(),
            if args.follow { "; waiting for it" } else { "" }
        );
        if !args.follow {
            return exit::OK;
        }
    }
    if args.follow {
        if let Err(e) = follow::catch_stop_signals() {
            eprintln!("supervisor: cannot take SIGINT and SIGTERM: {e}");
            return exit::FAILURE;
        }
    }
    let backlog = match tail::read(&dir, &sources, &window) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("supervisor: cannot read the logs in {}: {e}", dir.display());
            return exit::FAILURE;
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut printed = print(&mut out, &backlog.lines, format).and_then(|()| out.flush());
    if args.follow && printed.is_ok() {
        printed = follow::follow(Follower::new(&dir, backlog.cursors), format, &mut out);
    }
    match printed {
        Ok(()) => exit::OK,
        // The reader has gone (`| head`): nothing more to do.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("supervisor: cannot write the log lines: {e}");
            exit::FAILURE
        }
    }
}

fn print(out: &mut dyn Write, lines: &[Line], format: Format) -> io::Result<()> {
    for l in lines {
        writeln!(out, "{}", line::render(l, format))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        logs: LogsArgs,
    }

    #[test]
    fn durations_take_one_unit_and_say_what_is_wrong() {
        assert_eq!(parse_since("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_since("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_since("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_since("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_since("0s"), Ok(Duration::ZERO));
        for bad in [
            "", "m", "10", "10x", "1.5h", "-1h", "1h30m", " 1h", "10é", "1 d",
        ] {
            let e = parse_since(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad:?}: {e}");
        }
        assert!(parse_since("99999999999999999999d").is_err());
        assert!(parse_since("999999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn worker_and_supervisor_exclude_each_other() {
        let both = Cli::try_parse_from(["x", "--worker", "--supervisor"]);
        assert!(both.is_err());
        let args = Cli::try_parse_from(["x", "-f", "-n", "7", "--worker", "--since", "2h"])
            .unwrap()
            .logs;
        assert!(args.follow && args.worker && !args.supervisor);
        assert_eq!(args.lines, Some(7));
        assert_eq!(args.since, Some(Duration::from_secs(7200)));
    }
}
