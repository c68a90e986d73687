//! Log files that start anew each day (UTC) and are deleted after a number
//! of days. Rotation opens a new file; nothing is ever copied or truncated.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The source of "now", injectable so tests can change the day.
pub type Clock = fn() -> SystemTime;

/// The prefix of the supervisor's own log files.
pub const SUPERVISOR: &str = "supervisor";
/// The prefix of the files holding the worker's output.
pub const WORKER: &str = "worker";

/// `<dir>/<prefix>.<day>.log`.
pub fn path(dir: &Path, prefix: &str, day: &str) -> PathBuf {
    dir.join(format!("{prefix}.{day}.log"))
}

/// `YYYY-MM-DD` (UTC) of a point in time.
pub fn day_of(t: SystemTime) -> String {
    shared::time::rfc3339(t)[..10].to_string()
}

/// Appends lines to `<dir>/<prefix>.<YYYY-MM-DD>.log`, switching files when
/// the day changes.
pub struct DailyFile {
    dir: PathBuf,
    prefix: &'static str,
    clock: Clock,
    current: Option<(String, File)>,
}

impl DailyFile {
    pub fn new(dir: &Path, prefix: &'static str, clock: Clock) -> Self {
        DailyFile {
            dir: dir.to_path_buf(),
            prefix,
            clock,
            current: None,
        }
    }

    /// The file for `day`.
    pub fn path_for(&self, day: &str) -> PathBuf {
        path(&self.dir, self.prefix, day)
    }

    fn file(&mut self) -> io::Result<&mut File> {
        let day = day_of((self.clock)());
        if self
            .current
            .as_ref()
            .map(|(d, _)| d != &day)
            .unwrap_or(true)
        {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(self.path_for(&day))?;
            self.current = Some((day, file));
        }
        Ok(&mut self.current.as_mut().expect("just opened").1)
    }
}

impl Write for DailyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((_, f)) => f.flush(),
            None => Ok(()),
        }
    }
}

/// The prefix and day of one of our daily log files, from its name.
fn parse_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_suffix(".log")?;
    let (prefix, day) = rest.rsplit_once('.')?;
    let is_day = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    (matches!(prefix, SUPERVISOR | WORKER) && is_day).then_some((prefix, day))
}

/// Whether `name` is one of our daily log files.
fn is_daily_log(name: &str) -> bool {
    parse_name(name).is_some()
}

/// The days that have a `prefix` file in `dir`, oldest first, with the
/// file of each.
pub fn days(dir: &Path, prefix: &str) -> io::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((p, day)) = parse_name(&name.to_string_lossy()) {
            if p == prefix {
                found.push((day.to_string(), entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Deletes our log files last modified more than `days` days before `now`.
/// Returns what was deleted. Other files in the directory are left alone.
pub fn prune(dir: &Path, days: u32, now: SystemTime) -> io::Result<Vec<PathBuf>> {
    let keep = Duration::from_secs(u64::from(days) * 86_400);
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !is_daily_log(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        if now.duration_since(modified).is_ok_and(|age| age > keep) {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::UNIX_EPOCH;

    static NOW: AtomicU64 = AtomicU64::new(0);

    fn fake_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW.load(Ordering::SeqCst))
    }

    #[test]
    fn a_new_day_opens_a_new_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        // 2026-11-24T23:59:59Z
        NOW.store(1_795_564_799, Ordering::SeqCst);
        let mut log = DailyFile::new(dir.path(), "worker", fake_now);
        writeln!(log, "before midnight").unwrap();
        NOW.fetch_add(1, Ordering::SeqCst);
        writeln!(log, "after midnight").unwrap();
        let old = fs::read_to_string(dir.path().join("worker.2026-11-24.log")).unwrap();
        let new = fs::read_to_string(dir.path().join("worker.2026-11-25.log")).unwrap();
        assert_eq!(old, "before midnight\n");
        assert_eq!(new, "after midnight\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("worker.2026-11-25.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn prune_deletes_only_our_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let mk = |name: &str, age_days: u64| {
            let p = dir.path().join(name);
            fs::write(&p, "x").unwrap();
            let f = File::options().write(true).open(&p).unwrap();
            f.set_modified(now - Duration::from_secs(age_days * 86_400 + 60))
                .unwrap();
        };
        mk("worker.2026-11-01.log", 23);
        mk("supervisor.2026-11-16.log", 8);
        mk("supervisor.2026-11-18.log", 6);
        mk("worker.2026-11-24.log", 0);
        mk("notes.txt", 30);
        mk("worker.log", 30);
        let mut removed: Vec<String> = prune(dir.path(), 7, now)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            ["supervisor.2026-11-16.log", "worker.2026-11-01.log"]
        );
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("worker.log").exists());
        assert!(dir.path().join("supervisor.2026-11-18.log").exists());
    }

    #[test]
    fn days_lists_one_prefix_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "worker.2026-11-25.log",
            "worker.2026-11-03.log",
            "supervisor.2026-11-04.log",
            "worker.log",
            "worker.2026-11-3.log",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let days: Vec<String> = days(dir.path(), WORKER)
            .unwrap()
            .into_iter()
            .map(|(day, path)| {
                assert_eq!(path, super::path(dir.path(), WORKER, &day));
                day
            })
            .collect();
        assert_eq!(days, ["2026-11-03", "2026-11-25"]);
    }
}
