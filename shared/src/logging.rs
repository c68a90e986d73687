//! Tracing setup: human-readable lines on stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the stderr subscriber with `filter` (already validated).
pub fn init_stderr(filter: &str) {
    init(filter, std::io::stderr, std::io::stderr().is_terminal());
}

/// Installs a subscriber writing human-readable lines through `writer`,
/// filtered by `filter` (a `RUST_LOG` value; `info` if it does not parse).
pub fn init<W>(filter: &str, writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        parse_filter(filter).unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        // Colours only for a person at a terminal, never into log files.
        .with_ansi(ansi)
        .with_target(false)
        // When stderr is gone (its reader died), logging must not stop the
        // process: tracing would otherwise report the failure with
        // eprintln!, which panics on a broken pipe.
        .log_internal_errors(false);
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .try_init();
}

/// Parses a `RUST_LOG` value: `level` or `target=level` directives, comma
/// separated (no span or field filters, which would need regular
/// expressions and a larger binary).
pub fn parse_filter(text: &str) -> Result<Targets, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    let is_target = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b))
    };
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.split_once('=') {
            Some((target, level)) => is_target(target) && is_level(level),
            None => is_level(directive) || is_target(directive),
        };
        if !ok {
            return Err(format!(
                "{directive:?} is not `level` or `target=level` (levels: {})",
                LEVELS.join(", ")
            ));
        }
    }
    text.parse::<Targets>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn filters_are_levels_and_targets() {
        for ok in [
            "info",
            "debug",
            "worker=debug,info",
            "supervisor::actor=trace",
            "WARN",
            "off",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["[[[", "info=loud", "=info", "a b", "worker[span]=debug"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
