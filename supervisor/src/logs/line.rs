//! One line of the service's logs as `supervisor logs` shows it: which
//! process wrote it, when, and how it is printed. Both processes write
//! tracing's lines, which start with an RFC 3339 UTC timestamp
//! (`2026-12-03T04:46:19.645587Z  INFO worker ready …`); the worker's reach
//! its file unchanged through the supervisor's pipes. A line without one
//! (the rest of a panic message, say) belongs with the line before it.

use std::time::SystemTime;

use serde::Serialize;

use super::daily;

/// Which process a line comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Supervisor,
    Worker,
}

impl Source {
    /// Both, in the order lines with the same time are printed.
    pub const ALL: [Source; 2] = [Source::Supervisor, Source::Worker];

    /// The prefix of this process's daily files, also its label.
    pub fn prefix(self) -> &'static str {
        match self {
            Source::Supervisor => daily::SUPERVISOR,
            Source::Worker => daily::WORKER,
        }
    }
}

/// The width of the label column: the longer of the two prefixes.
const LABEL_WIDTH: usize = daily::SUPERVISOR.len();

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub source: Source,
    /// The timestamp the line starts with, if it has one.
    pub time: Option<SystemTime>,
    /// Where the line sorts: its own time, else that of a line around it
    /// (see [`settle`]).
    pub at: Option<SystemTime>,
    pub text: String,
}

impl Line {
    /// A line of `source`; `follows` is the sort time of the line before it.
    pub fn new(source: Source, text: String, follows: Option<SystemTime>) -> Line {
        let time = timestamp(&text);
        Line {
            source,
            time,
            at: time.or(follows),
            text,
        }
    }
}

/// The timestamp `text` starts with, if it starts with one.
pub fn timestamp(text: &str) -> Option<SystemTime> {
    let first = text.split(' ').next()?;
    let b = first.as_bytes();
    let shaped = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && first.ends_with('Z')
        && b[..4].iter().all(u8::is_ascii_digit);
    if !shaped {
        return None;
    }
    shared::time::parse_rfc3339(first)
}

/// Gives every line of one process, in file order, a sort time: a line
/// without its own takes that of the line before it, and lines before the
/// first known time take the next one.
pub fn settle(lines: &mut [Line]) {
    let mut before = None;
    for line in lines.iter_mut() {
        if line.at.is_none() {
            line.at = before;
        }
        before = line.at;
    }
    let mut after = None;
    for line in lines.iter_mut().rev() {
        if line.at.is_none() {
            line.at = after;
        }
        after = line.at;
    }
}

/// Interleaves two processes' lines by sort time. Each keeps its own
/// order, so a line without a timestamp stays right after the line it
/// follows; on a tie `a` goes first.
pub fn merge(a: Vec<Line>, b: Vec<Line>) -> Vec<Line> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.at <= y.at,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return out,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
}

/// How lines are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `worker     | <line>`
    Text,
    /// `{"source":"worker","time":"…Z"|null,"line":"…"}`
    Json,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    source: &'a str,
    time: Option<String>,
    line: &'a str,
}

/// `line` as printed, without the newline.
pub fn render(line: &Line, format: Format) -> String {
    let label = line.source.prefix();
    match format {
        Format::Text => format!("{label:<LABEL_WIDTH$} | {}", line.text),
        Format::Json => serde_json::to_string(&JsonLine {
            source: label,
            time: line
                .time
                .map(|t| humantime::format_rfc3339_micros(t).to_string()),
            line: &line.text,
        })
        .expect("a struct of strings serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn lines(source: Source, texts: &[&str]) -> Vec<Line> {
        let mut before = None;
        texts
            .iter()
            .map(|t| {
                let line = Line::new(source, t.to_string(), before);
                before = line.at;
                line
            })
            .collect()
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn timestamps_are_read_from_tracing_lines_only() {
        let t = timestamp("2026-12-03T04:46:19.645587Z  INFO worker ready pid=3").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_micros(1_796_273_179_645_587));
        assert_eq!(
            timestamp("2026-12-03T04:46:19Z WARN x"),
            Some(at(1_796_273_179))
        );
        for no in [
            "",
            "thread 'main' panicked at worker/src/lib.rs:3:5:",
            "note: run with `RUST_BACKTRACE=1`",
            "2026-12-03 04:46:19 INFO no T and no Z",
            "2026-12-03T04:46:19.645587  no Z",
            "2026-13-03T04:46:19.645587Z  no such month",
            "  2026-12-03T04:46:19.645587Z  indented",
        ] {
            assert_eq!(timestamp(no), None, "{no:?}");
        }
    }

    #[test]
    fn a_line_without_a_time_sorts_with_the_one_before_else_after() {
        let mut l = lines(
            Source::Worker,
            &[
                "continued from an older file",
                "1970-01-01T00:00:10Z  INFO a",
                "panic text",
                "1970-01-01T00:00:20Z  INFO b",
            ],
        );
        assert_eq!(l[0].at, None);
        assert_eq!(l[2].at, Some(at(10)));
        settle(&mut l);
        let ats: Vec<_> = l.iter().map(|l| l.at).collect();
        assert_eq!(
            ats,
            [Some(at(10)), Some(at(10)), Some(at(10)), Some(at(20))]
        );
        assert_eq!(l[2].time, None, "the line's own time stays unknown");
    }

    #[test]
    fn merge_interleaves_by_time_and_keeps_continuations_together() {
        let sup = lines(
            Source::Supervisor,
            &[
                "1970-01-01T00:00:01Z  INFO s1",
                "1970-01-01T00:00:03Z  INFO s3",
                "1970-01-01T00:00:05Z  INFO s5",
            ],
        );
        let worker = lines(
            Source::Worker,
            &[
                "1970-01-01T00:00:02Z  INFO w2",
                "1970-01-01T00:00:03Z  ERROR w3",
                "  continuation of w3",
                "1970-01-01T00:00:04Z  INFO w4",
            ],
        );
        let merged = merge(sup, worker);
        assert_eq!(
            texts(&merged),
            [
                "1970-01-01T00:00:01Z  INFO s1",
                "1970-01-01T00:00:02Z  INFO w2",
                "1970-01-01T00:00:03Z  INFO s3",
                "1970-01-01T00:00:03Z  ERROR w3",
                "  continuation of w3",
                "1970-01-01T00:00:04Z  INFO w4",
                "1970-01-01T00:00:05Z  INFO s5",
            ]
        );
    }

    #[test]
    fn text_is_labelled_and_aligned_and_json_has_the_time_or_null() {
        let l = lines(
            Source::Worker,
            &["2026-12-03T04:46:19.645587Z  INFO ready", "tail \"quoted\""],
        );
        assert_eq!(
            render(&l[0], Format::Text),
            "worker     | 2026-12-03T04:46:19.645587Z  INFO ready"
        );
        let s = Line::new(Source::Supervisor, "x".into(), None);
        assert_eq!(render(&s, Format::Text), "supervisor | x");
        let json: serde_json::Value = serde_json::from_str(&render(&l[0], Format::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"source": "worker", "time": "2026-12-03T04:46:19.645587Z",
                               "line": "2026-12-03T04:46:19.645587Z  INFO ready"})
        );
        let json: serde_json::Value = serde_json::from_str(&render(&l[1], Format::Json)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"source": "worker", "time": null, "line": "tail \"quoted\""})
        );
    }
}
