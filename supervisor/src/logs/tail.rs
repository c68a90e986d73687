//! The backlog of `supervisor logs`: the last lines of each process's
//! daily files, read from the newest day back as far as the window needs,
//! and where each process's newest file ends, for the follower.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::path::Path;
use std::time::SystemTime;

use super::daily;
use super::line::{self, Line, Source};

/// Which lines the backlog holds.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// At most this many lines, the newest (all sources together).
    pub limit: Option<usize>,
    /// Only lines that sort after this.
    pub since: Option<SystemTime>,
    /// Leave out a last line without its newline yet: a follower prints it
    /// once it is complete.
    pub whole_lines: bool,
}

/// Where the backlog of one process ended; a follower goes on from there.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub source: Source,
    /// The newest day that has a file, if any.
    pub day: Option<String>,
    /// The end of the last line read from that day's file.
    pub offset: u64,
    /// The sort time of that line.
    pub at: Option<SystemTime>,
}

#[derive(Debug)]
pub struct Backlog {
    /// Oldest first.
    pub lines: Vec<Line>,
    /// One per source asked for.
    pub cursors: Vec<Cursor>,
}

/// Reads the window of `sources`' lines from the files in `dir`. A missing
/// directory holds no lines.
pub fn read(dir: &Path, sources: &[Source], window: &Window) -> io::Result<Backlog> {
    let mut lines = Vec::new();
    let mut cursors = Vec::new();
    for &source in sources {
        let (mine, cursor) = read_source(dir, source, window)?;
        lines = line::merge(lines, mine);
        cursors.push(cursor);
    }
    if let Some(n) = window.limit {
        lines.drain(..lines.len().saturating_sub(n));
    }
    Ok(Backlog { lines, cursors })
}

fn read_source(dir: &Path, source: Source, window: &Window) -> io::Result<(Vec<Line>, Cursor)> {
    let days = match daily::days(dir, source.prefix()) {
        Ok(days) => days,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    // A file holds the lines written on its day, so none in a file older
    // than the day of `since` is newer than `since`.
    let since_day = window.since.map(daily::day_of);
    let mut cursor = Cursor {
        source,
        day: days.last().map(|(day, _)| day.clone()),
        offset: 0,
        at: None,
    };
    let mut collected: VecDeque<Line> = VecDeque::new();
    for (i, (day, path)) in days.iter().enumerate().rev() {
        // The newest file is always read: its end is where following starts.
        let newest = i + 1 == days.len();
        if !newest {
            let enough = window.limit.is_some_and(|n| collected.len() >= n);
            let too_old = since_day.as_ref().is_some_and(|s| day < s);
            if enough || too_old {
                break;
            }
        }
        let file = match File::open(path) {
            Ok(f) => f,
            // Deleted by retention since the listing.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        let keep = window.limit.map(|n| n.saturating_sub(collected.len()));
        let part = read_file(file, source, keep, window, newest)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if newest {
            cursor.offset = part.end;
            cursor.at = part.last_at;
        }
        for line in part.lines.into_iter().rev() {
            collected.push_front(line);
        }
    }
    let mut lines = Vec::from(collected);
    line::settle(&mut lines);
    if let Some(since) = window.since {
        lines.retain(|l| l.at.is_some_and(|t| t > since));
    }
    Ok((lines, cursor))
}

/// What one file gave.
struct Part {
    /// Its last `keep` lines (after `since`).
    lines: Vec<Line>,
    /// The end of the last line read.
    end: u64,
    /// The sort time of the last line read.
    last_at: Option<SystemTime>,
}

/// Where to start reading `file` for its last `keep` lines: the start of a
/// line with more than `keep` whole lines after it, found by scanning back
/// from the end in growing chunks; 0 when the file is not that long. A
/// day's file of a busy service is megabytes, and `-n 50` needs its end.
fn tail_start(file: &File, keep: usize) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut chunk: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(chunk);
        if start == 0 {
            return Ok(0);
        }
        let mut buf = vec![0; (len - start) as usize];
        let n = file.read_at(&mut buf, start)?;
        buf.truncate(n);
        // Newlines from the end back: the one past `keep + 1` of them ends
        // the line before the first one kept (a last line may lack its
        // newline, so one more is counted).
        if let Some(i) = buf
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'\n')
            .nth(keep + 1)
            .map(|(i, _)| i)
        {
            return Ok(start + i as u64 + 1);
        }
        chunk *= 4;
    }
}

/// Reads `file`, keeping its last `keep` lines that may be newer than the
/// window's `since` (memory stays within what is printed). Without
/// `since`, only the file's end is read.
fn read_file(
    file: File,
    source: Source,
    keep: Option<usize>,
    window: &Window,
    newest: bool,
) -> io::Result<Part> {
    let from = match (keep, window.since) {
        (Some(k), None) => tail_start(&file, k)?,
        _ => 0,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity(256);
    let mut kept = VecDeque::new();
    let (mut pos, mut end, mut last_at) = (from, from, None);
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        let complete = buf.last() == Some(&b'\n');
        if !complete && newest && window.whole_lines {
            break;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = Line::new(source, String::from_utf8_lossy(text).into_owned(), last_at);
        last_at = line.at;
        end = pos;
        let old = window
            .since
            .is_some_and(|since| line.at.is_some_and(|t| t <= since));
        if old || keep == Some(0) {
            continue;
        }
        if keep.is_some_and(|k| kept.len() >= k) {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    Ok(Part {
        lines: kept.into(),
        end,
        last_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::time::{Duration, UNIX_EPOCH};

    // 2026-12-01T00:00:00Z
    const DAY1: u64 = 1_796_083_200;

    fn stamp(secs: u64, what: &str) -> String {
        let t = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_secs(secs));
        format!("{t}  INFO {what}")
    }

    fn window(limit: Option<usize>, since: Option<u64>) -> Window {
        Window {
            limit,
            since: since.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            whole_lines: false,
        }
    }

    fn what(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let w = l.text.rsplit(' ').next().unwrap();
                format!("{}:{w}", &l.source.prefix()[..1])
            })
            .collect()
    }

    /// Two days of both processes, a panic's lines in the worker's second day.
    fn two_days() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let day2 = DAY1 + 86_400;
        let write = |name: &str, lines: Vec<String>| {
            fs::write(dir.path().join(name), lines.join("\n") + "\n").unwrap();
        };
        write(
            "supervisor.2026-12-01.log",
            vec![stamp(DAY1 + 10, "s1"), stamp(DAY1 + 30, "s2")],
        );
        write(
            "worker.2026-12-01.log",
            vec![stamp(DAY1 + 20, "w1"), stamp(DAY1 + 40, "w2")],
        );
        write(
            "supervisor.2026-12-02.log",
            vec![stamp(day2 + 10, "s3"), stamp(day2 + 40, "s4")],
        );
        write(
            "worker.2026-12-02.log",
            vec![
                stamp(day2 + 20, "w3"),
                "thread 'main' panicked at x.rs:1:1: w3a".into(),
                "note: w3b".into(),
                stamp(day2 + 50, "w4"),
            ],
        );
        dir
    }

    #[test]
    fn the_last_lines_span_the_days_in_time_order() {
        let dir = two_days();
        let b = read(dir.path(), &Source::ALL, &window(Some(6), None)).unwrap();
        assert_eq!(
            what(&b.lines),
            ["s:s3", "w:w3", "w:w3a", "w:w3b", "s:s4", "w:w4"]
        );
        let all = read(dir.path(), &Source::ALL, &window(Some(100), None)).unwrap();
        assert_eq!(
            what(&all.lines),
            ["s:s1", "w:w1", "s:s2", "w:w2", "s:s3", "w:w3", "w:w3a", "w:w3b", "s:s4", "w:w4"]
        );
        let worker = read(dir.path(), &[Source::Worker], &window(Some(5), None)).unwrap();
        assert_eq!(
            what(&worker.lines),
            ["w:w2", "w:w3", "w:w3a", "w:w3b", "w:w4"]
        );
    }

    #[test]
    fn since_keeps_newer_lines_and_continuations_go_with_their_line() {
        let dir = two_days();
        let day2 = DAY1 + 86_400;
        let b = read(dir.path(), &Source::ALL, &window(None, Some(day2 + 15))).unwrap();
        assert_eq!(what(&b.lines), ["w:w3", "w:w3a", "w:w3b", "s:s4", "w:w4"]);
        let b = read(dir.path(), &Source::ALL, &window(Some(2), Some(day2 + 15))).unwrap();
        assert_eq!(what(&b.lines), ["s:s4", "w:w4"]);
        // From the older day on.
        let b = read(dir.path(), &Source::ALL, &window(Some(3), Some(DAY1 + 35))).unwrap();
        assert_eq!(what(&b.lines), ["w:w3b", "s:s4", "w:w4"]);
        let b = read(dir.path(), &Source::ALL, &window(None, Some(DAY1 + 35))).unwrap();
        assert_eq!(what(&b.lines)[..2], ["w:w2", "s:s3"]);
        let none = read(dir.path(), &Source::ALL, &window(None, Some(day2 + 60))).unwrap();
        assert!(none.lines.is_empty());
    }

    #[test]
    fn cursors_end_at_the_last_whole_line_of_the_newest_file() {
        let dir = two_days();
        let path = dir.path().join("worker.2026-12-02.log");
        let whole = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"half a li")
            .unwrap();
        let follow = Window {
            whole_lines: true,
            ..window(Some(0), None)
        };
        let b = read(dir.path(), &Source::ALL, &follow).unwrap();
        assert!(b.lines.is_empty());
        let worker = &b.cursors[1];
        assert_eq!(worker.day.as_deref(), Some("2026-12-02"));
        assert_eq!(worker.offset, whole);
        let printed = read(dir.path(), &[Source::Worker], &window(Some(1), None)).unwrap();
        assert_eq!(printed.lines[0].text, "half a li", "without -f it is shown");
    }

    #[test]
    fn the_end_of_a_long_file_is_read_as_the_whole_file_would_be() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.2026-12-01.log");
        let mut f = fs::File::create(&path).unwrap();
        for i in 0..6000 {
            writeln!(
                f,
                "{}",
                stamp(DAY1 + i, &format!("line {i} of a long day's file"))
            )
            .unwrap();
        }
        write!(f, "{}", stamp(DAY1 + 7000, "half")).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        assert!(len > 4 * 64 * 1024, "the scan back must grow: {len}");
        for keep in [0, 1, 50, 3000, 5999, 6000, 7000] {
            for whole_lines in [false, true] {
                let mut w = window(Some(keep), None);
                w.whole_lines = whole_lines;
                let read = |w: &Window| {
                    let file = fs::File::open(&path).unwrap();
                    read_file(file, Source::Worker, Some(keep), w, true).unwrap()
                };
                let tail = read(&w);
                // The same window read from the start: `since` before it all.
                w.since = Some(UNIX_EPOCH);
                let all = read(&w);
                let texts = |p: &Part| p.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
                assert_eq!(
                    texts(&tail),
                    texts(&all),
                    "keep {keep}, whole lines {whole_lines}"
                );
                assert_eq!(
                    (tail.end, tail.last_at),
                    (all.end, all.last_at),
                    "keep {keep}"
                );
            }
        }
    }

    #[test]
    fn a_missing_directory_has_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let b = read(
            &dir.path().join("nope"),
            &Source::ALL,
            &window(Some(5), None),
        )
        .unwrap();
        assert!(b.lines.is_empty());
        assert_eq!(b.cursors[0].day, None);
    }
}
