//! `supervisor logs` as a person runs it: the real binary reading log files
//! the test wrote (known lines, known times, several days), and following
//! the files of a real `supervisor run` and its worker.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use harness::supervisor::{supervisor_cmd, worker_pid, Supervisor};
use harness::{poll_until, temp_dir, wait_until, TestDir, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// How soon a followed line must be printed once it is in its file.
const FOLLOW_WITHIN: Duration = Duration::from_secs(1);

/// `supervisor logs --log-dir DIR ARGS…`, with no log dir from the environment.
fn logs_cmd(log_dir: &Path, args: &[&str]) -> Command {
    let data = log_dir.with_file_name("data");
    let mut cmd = supervisor_cmd(&data, &["logs", "--log-dir"]);
    cmd.arg(log_dir).args(args).env_remove("LOG_FILE_PATH");
    cmd
}

fn logs(log_dir: &Path, args: &[&str]) -> Output {
    logs_cmd(log_dir, args)
        .output()
        .expect("run supervisor logs")
}

fn stdout_lines(out: &Output) -> Vec<String> {
    assert_eq!(
        out.status.code(),
        Some(0),
        "supervisor logs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8 output")
        .lines()
        .map(String::from)
        .collect()
}

fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// One line a test writes: its process, its time (`None`: a line without
/// a timestamp, as the rest of a panic message), its text.
struct Written {
    source: &'static str,
    time: Option<SystemTime>,
    text: String,
}

impl Written {
    fn printed(&self) -> String {
        format!("{:<10} | {}", self.source, self.text)
    }
}

/// Writes `lines` (in time order) into the daily file of each line's
/// process and day, as the supervisor would.
fn write_days(log_dir: &Path, lines: &[Written]) {
    fs::create_dir_all(log_dir).unwrap();
    let mut day = String::new();
    for l in lines {
        if let Some(t) = l.time {
            day = stamp(t)[..10].to_string();
        }
        append(
            &log_dir.join(format!("{}.{day}.log", l.source)),
            &format!("{}\n", l.text),
        );
    }
}

/// Eleven lines of both processes over three days, the newest a minute
/// old, one of them the second line of a worker's panic.
fn three_days() -> Vec<Written> {
    let now = SystemTime::now();
    let line = |source, secs_ago: u64, what: &str| {
        let t = now - Duration::from_secs(secs_ago);
        Written {
            source,
            time: Some(t),
            text: format!("{}  INFO {what}", stamp(t)),
        }
    };
    vec![
        line("supervisor", 50 * 3600, "s-two-days-ago"),
        line("worker", 49 * 3600, "w-two-days-ago"),
        line("supervisor", 26 * 3600, "s-yesterday"),
        line("worker", 25 * 3600, "w-yesterday panicked:"),
        Written {
            source: "worker",
            time: None,
            text: "  the rest of the panic message".into(),
        },
        line("worker", 3 * 3600, "w-3h"),
        line("supervisor", 2 * 3600, "s-2h"),
        line("supervisor", 20 * 60, "s-20m"),
        line("worker", 15 * 60, "w-15m"),
        line("supervisor", 5 * 60, "s-5m"),
        line("worker", 60, "w-1m"),
    ]
}

fn printed(lines: &[Written]) -> Vec<String> {
    lines.iter().map(Written::printed).collect()
}

#[test]
fn the_last_lines_of_both_processes_in_time_order_across_days() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    let lines = three_days();
    write_days(&dir, &lines);
    assert!(
        fs::read_dir(&dir).unwrap().count() >= 5,
        "three days of two processes"
    );

    // The last 8 start in a day before the newest line's.
    assert_eq!(
        stdout_lines(&logs(&dir, &["-n", "8"])),
        printed(&lines[3..])
    );
    assert_eq!(stdout_lines(&logs(&dir, &[])), printed(&lines), "all 11");

    let worker: Vec<&Written> = lines.iter().filter(|l| l.source == "worker").collect();
    let want: Vec<String> = worker[2..].iter().map(|l| l.printed()).collect();
    assert_eq!(stdout_lines(&logs(&dir, &["--worker", "-n", "4"])), want);
    assert_eq!(
        stdout_lines(&logs(&dir, &["--supervisor", "-n", "2"])),
        [lines[7].printed(), lines[9].printed()]
    );

    assert_eq!(
        stdout_lines(&logs(&dir, &["--since", "30m"])),
        printed(&lines[7..]),
        "--since alone prints every newer line"
    );
    assert_eq!(
        stdout_lines(&logs(&dir, &["--since", "1d", "-n", "2"])),
        printed(&lines[9..])
    );

    let json: Vec<Value> = stdout_lines(&logs(&dir, &["--json", "-n", "7"]))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    // The first is the panic's second line: its time is null.
    let want: Vec<Value> = lines[4..]
        .iter()
        .map(|l| json!({"source": l.source, "time": l.time.map(stamp), "line": l.text}))
        .collect();
    assert_eq!(json, want);
}

#[test]
fn fifty_lines_by_default_and_the_log_dir_from_the_environment() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    let start = SystemTime::now() - Duration::from_secs(3600);
    let lines: Vec<Written> = (0..60)
        .map(|i| {
            let t = start + Duration::from_secs(i);
            Written {
                source: "supervisor",
                time: Some(t),
                text: format!("{}  INFO line {i}", stamp(t)),
            }
        })
        .collect();
    write_days(&dir, &lines);
    let mut cmd = supervisor_cmd(&tmp.path().join("data"), &["logs"]);
    let out = cmd.env("LOG_FILE_PATH", &dir).output().unwrap();
    assert_eq!(stdout_lines(&out), printed(&lines[10..]));
}

#[test]
fn a_bad_duration_is_refused_and_a_missing_directory_is_named() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    write_days(&dir, &three_days());
    for (args, says) in [
        (&["--since", "10x"][..], "\"10x\" is not a duration"),
        (
            &["--worker", "--supervisor"],
            "'--worker' cannot be used with '--supervisor'",
        ),
    ] {
        let out = logs(&dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let missing = tmp.path().join("never-written");
    let out = logs(&missing, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&*missing.to_string_lossy()) && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// A running `supervisor logs -f`; its stdout lines arrive on a channel,
/// each with when it came. Killed on drop.
struct Follow {
    child: Child,
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Follow {
    fn start(log_dir: &Path, args: &[&str]) -> Follow {
        Self::start_closing(log_dir, args, None)
    }

    /// Like `start`; the reader closes stdout after the first line that
    /// holds `close_after`.
    fn start_closing(log_dir: &Path, args: &[&str], close_after: Option<&str>) -> Follow {
        let mut child = logs_cmd(log_dir, &[&["-f"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn supervisor logs -f");
        let stdout = child.stdout.take().expect("piped stdout");
        let close_after = close_after.map(String::from);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let last = close_after.as_ref().is_some_and(|c| line.contains(c));
                if tx.send((Instant::now(), line)).is_err() || last {
                    return;
                }
            }
        });
        Follow {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a printed line holding `needle`: the line and when it came.
    fn wait_for(&mut self, needle: &str) -> (Instant, String) {
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok((at, line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return (at, line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no line with {needle:?} in {DEADLINE:?}; printed: {:#?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the follower ended ({:?}) before {needle:?}; printed: {:#?}",
                    self.child.try_wait(),
                    self.seen
                ),
            }
        }
    }

    /// Waits for it to exit; its exit code and stderr.
    fn wait_exit(&mut self) -> (Option<i32>, String) {
        let status = wait_until(DEADLINE, "supervisor logs -f to exit", || {
            self.child.try_wait().unwrap()
        });
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut self.child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code(), stderr)
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn follow_prints_a_line_of_the_running_worker_within_a_second() {
    let dir = TestDir::new();
    let mut sup = Supervisor::start(&dir, &[]);
    let worker = worker_pid(&sup.wait_ready());
    let mut follow = Follow::start(&sup.logs, &[]);
    // The backlog is printed: from here on the follower reads new lines.
    follow.wait_for("supervisor running");

    // A real line of the worker's own: what it logs on SIGUSR1.
    let before = sup.log_text("worker").matches("checkpoint written").count();
    kill(Pid::from_raw(worker as i32), Signal::SIGUSR1).unwrap();
    let in_file = poll_until(
        Duration::from_millis(5),
        DEADLINE,
        "the worker to log its checkpoint",
        || {
            let text = sup.log_text("worker");
            (text.matches("checkpoint written").count() > before).then(Instant::now)
        },
    );
    let (printed_at, line) = follow.wait_for("checkpoint written");
    let late = printed_at.saturating_duration_since(in_file);
    assert!(
        late < FOLLOW_WITHIN,
        "printed {late:?} after it was in the file"
    );
    assert!(line.starts_with("worker     | "), "{line}");
    drop(sup);
}

fn log_file(dir: &Path, prefix: &str, day: &str) -> PathBuf {
    dir.join(format!("{prefix}.{day}.log"))
}

#[test]
fn follow_goes_on_in_the_next_days_file() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let day1 = log_file(&dir, "worker", "2026-12-01");
    let day2 = log_file(&dir, "worker", "2026-12-02");
    let day3 = log_file(&dir, "worker", "2026-12-03");
    append(&day1, "2026-12-01T23:59:58.000000Z  INFO before midnight\n");
    let mut follow = Follow::start(&dir, &[]);
    follow.wait_for("before midnight");

    // The old day's last line and the new day's first, together.
    append(&day1, "2026-12-01T23:59:59.900000Z  INFO last of the day\n");
    append(
        &day2,
        "2026-12-02T00:00:00.100000Z  INFO first of the day\n",
    );
    follow.wait_for("last of the day");
    follow.wait_for("first of the day");
    append(
        &day2,
        "2026-12-02T00:00:01.000000Z  INFO second of the day\n",
    );
    follow.wait_for("second of the day");
    // Retention deletes the old file and the one being followed (the
    // worker was quiet for days); a file of a later day is followed next.
    fs::remove_file(&day1).unwrap();
    fs::remove_file(&day2).unwrap();
    append(&day3, "2026-12-03T00:00:00.000000Z  INFO a third day\n");
    follow.wait_for("a third day");
    assert_eq!(
        follow.seen,
        [
            "worker     | 2026-12-01T23:59:58.000000Z  INFO before midnight",
            "worker     | 2026-12-01T23:59:59.900000Z  INFO last of the day",
            "worker     | 2026-12-02T00:00:00.100000Z  INFO first of the day",
            "worker     | 2026-12-02T00:00:01.000000Z  INFO second of the day",
            "worker     | 2026-12-03T00:00:00.000000Z  INFO a third day",
        ]
    );
}

#[test]
fn follow_waits_for_the_end_of_a_half_written_line() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let worker = log_file(&dir, "worker", "2026-12-01");
    let sup = log_file(&dir, "supervisor", "2026-12-01");
    append(&sup, "2026-12-01T10:00:00.000000Z  INFO started\n");
    let mut follow = Follow::start(&dir, &[]);
    follow.wait_for("started");

    append(&worker, "2026-12-01T10:00:01.000000Z  INFO half a li");
    // Two later polls have read the worker's file since the half line was
    // written: one printed "a", the next "b".
    append(&sup, "2026-12-01T10:00:02.000000Z  INFO a\n");
    follow.wait_for("INFO a");
    append(&sup, "2026-12-01T10:00:03.000000Z  INFO b\n");
    follow.wait_for("INFO b");
    assert!(
        !follow.seen.iter().any(|l| l.contains("half")),
        "half a line was printed: {:#?}",
        follow.seen
    );
    append(&worker, "ne, now whole\n");
    let (_, line) = follow.wait_for("half");
    assert_eq!(
        line,
        "worker     | 2026-12-01T10:00:01.000000Z  INFO half a line, now whole"
    );
}

#[test]
fn follow_ends_cleanly_on_sigint_sigterm_and_a_closed_stdout() {
    let tmp = temp_dir();
    let dir = tmp.path().join("logs");
    fs::create_dir(&dir).unwrap();
    let file = log_file(&dir, "supervisor", "2026-12-01");
    append(&file, "2026-12-01T10:00:00.000000Z  INFO started\n");
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let mut follow = Follow::start(&dir, &[]);
        follow.wait_for("started");
        follow.signal(signal);
        assert_eq!(follow.wait_exit(), (Some(0), String::new()), "{signal:?}");
    }

    // The reader goes away while nothing is written (`| head` done).
    let mut follow = Follow::start_closing(&dir, &[], Some("started"));
    follow.wait_for("started");
    assert_eq!(
        follow.wait_exit(),
        (Some(0), String::new()),
        "stdout closed"
    );

    // Without -f, a reader that leaves mid-backlog ends it quietly too.
    for i in 0..5000 {
        append(
            &file,
            &format!("2026-12-01T10:00:01.000000Z  INFO line {i}\n"),
        );
    }
    let mut child = logs_cmd(&dir, &["-n", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("line 0"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (Some(0), String::new())
    );
}
