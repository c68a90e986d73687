use super::*;

/// One line of the supervisor log: when, and the message with its fields.
pub(crate) struct LogLine {
    pub(crate) at: SystemTime,
    pub(crate) text: String,
}

pub(crate) fn parse_log(lines: &[String]) -> Vec<LogLine> {
    lines
        .iter()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let at = shared::time::parse_rfc3339(parts.next()?)?;
            let _level = parts.next()?;
            let text = parts.collect::<Vec<_>>().join(" ");
            Some(LogLine { at, text })
        })
        .collect()
}

/// The first line from `from` on whose message starts with `prefix`.
pub(crate) fn find<'a>(
    lines: &'a [LogLine],
    from: usize,
    prefix: &str,
) -> Option<(usize, &'a LogLine)> {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.text.starts_with(prefix))
}

pub(crate) fn field<'a>(line: &'a LogLine, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    line.text
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
}

pub(crate) fn between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).map(ms).unwrap_or(0.0)
}
