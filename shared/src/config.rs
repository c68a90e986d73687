//! Configuration resolution: flag > environment > default (README,
//! "Running the worker by hand" and "The supervisor").
//!
//! Every invalid value becomes a [`ConfigError`] that names the flag or
//! variable it came from; binaries exit with status 2 on it.

use std::ffi::OsString;
use std::path::PathBuf;

/// A value that could not be used, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `--flag` or `VARIABLE`.
    pub source: String,
    pub value: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid value {:?} for {}: {}",
            self.value, self.source, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// The exit status for a configuration error.
pub const EXIT_CONFIG: i32 = 2;

/// One setting: its flag, its variable, how to parse it.
struct Setting {
    flag: &'static str,
    env: &'static str,
}

pub const DATA_DIR_ENV: &str = "SECOND_BRAIN_DATA_DIR";
pub const LOG_DIR_ENV: &str = "LOG_FILE_PATH";
pub const LOG_RETENTION_ENV: &str = "LOG_RETENTION_DAYS";
pub const POLL_INTERVAL_ENV: &str = "GIT_POLL_INTERVAL_MS";
pub const REPO_ENV: &str = "SECOND_BRAIN_REPO";
pub const BRANCH_ENV: &str = "SECOND_BRAIN_BRANCH";
pub const LOG_FILTER_ENV: &str = "RUST_LOG";

impl Setting {
    /// The raw text and its source name, flag first, then environment.
    fn raw(&self, flag: Option<OsString>) -> Option<(OsString, String)> {
        if let Some(v) = flag {
            return Some((v, self.flag.to_string()));
        }
        std::env::var_os(self.env).map(|v| (v, self.env.to_string()))
    }

    fn resolve<T>(
        &self,
        flag: Option<OsString>,
        parse: impl FnOnce(&OsString) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(flag) {
            None => Ok(None),
            Some((raw, source)) => parse(&raw).map(Some).map_err(|reason| ConfigError {
                source,
                value: raw.to_string_lossy().into_owned(),
                reason,
            }),
        }
    }
}

fn home() -> Result<PathBuf, ConfigError> {
    dirs::home_dir().ok_or_else(|| ConfigError {
        source: "HOME".into(),
        value: String::new(),
        reason: "the home directory cannot be found; set HOME".into(),
    })
}

fn parse_dir(raw: &OsString) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("a directory path must not be empty".into());
    }
    let path = PathBuf::from(raw);
    if path.is_absolute() {
        return Ok(path);
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .map_err(|e| format!("relative path and no current directory: {e}"))
}

fn parse_number<T: std::str::FromStr>(raw: &OsString, what: &str) -> Result<T, String> {
    raw.to_str()
        .and_then(|s| s.trim().parse::<T>().ok())
        .ok_or_else(|| format!("expected {what}"))
}

/// The data directory: `--data-dir`, `SECOND_BRAIN_DATA_DIR`, `~/.second-brain`.
/// Refused when its sockets' paths would be too long for a Unix socket.
pub fn data_dir(flag: Option<OsString>) -> Result<PathBuf, ConfigError> {
    let s = Setting {
        flag: "--data-dir",
        env: DATA_DIR_ENV,
    };
    let fits = |dir: &PathBuf| {
        crate::paths::DataDir::new(dir)
            .check_socket_paths()
            .map_err(|e| e.to_string())
    };
    let parse = |raw: &OsString| parse_dir(raw).and_then(|d| fits(&d).map(|()| d));
    match s.resolve(flag, parse)? {
        Some(p) => Ok(p),
        None => {
            let dir = home()?.join(".second-brain");
            fits(&dir).map_err(|reason| ConfigError {
                source: "HOME".into(),
                value: dir.display().to_string(),
                reason,
            })?;
            Ok(dir)
        }
    }
}

/// The log directory: `--log-dir`, `LOG_FILE_PATH`, then the platform default.
pub fn log_dir(flag: Option<OsString>) -> Result<PathBuf, ConfigError> {
    let s = Setting {
        flag: "--log-dir",
        env: LOG_DIR_ENV,
    };
    if let Some(p) = s.resolve(flag, parse_dir)? {
        return Ok(p);
    }
    default_log_dir()
}

#[cfg(target_os = "macos")]
fn default_log_dir() -> Result<PathBuf, ConfigError> {
    Ok(home()?.join("Library/Logs/second-brain"))
}

#[cfg(not(target_os = "macos"))]
fn default_log_dir() -> Result<PathBuf, ConfigError> {
    // XDG_STATE_HOME must be absolute to count (XDG base directory spec).
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let state = match state {
        Some(p) => p,
        None => home()?.join(".local/state"),
    };
    Ok(state.join("second-brain/logs"))
}

/// Days of logs kept: `--log-retention-days`, `LOG_RETENTION_DAYS`, 7.
pub fn log_retention_days(flag: Option<OsString>) -> Result<u32, ConfigError> {
    let s = Setting {
        flag: "--log-retention-days",
        env: LOG_RETENTION_ENV,
    };
    let days = s.resolve(flag, |raw| {
        let d: u32 = parse_number(raw, "a whole number of days, at least 1")?;
        if d == 0 {
            return Err("expected a whole number of days, at least 1".into());
        }
        Ok(d)
    })?;
    Ok(days.unwrap_or(7))
}

/// Poll interval in ms: `--poll-interval-ms`, `GIT_POLL_INTERVAL_MS`, 300000; 0 = off.
pub fn poll_interval_ms(flag: Option<OsString>) -> Result<u64, ConfigError> {
    let s = Setting {
        flag: "--poll-interval-ms",
        env: POLL_INTERVAL_ENV,
    };
    let ms = s.resolve(flag, |raw| {
        parse_number(raw, "a whole number of milliseconds (0 turns polling off)")
    })?;
    Ok(ms.unwrap_or(300_000))
}

/// The watched repository: `--repo`, `SECOND_BRAIN_REPO`, else `default`.
pub fn repo(
    flag: Option<OsString>,
    default: Option<PathBuf>,
) -> Result<Option<PathBuf>, ConfigError> {
    let s = Setting {
        flag: "--repo",
        env: REPO_ENV,
    };
    Ok(s.resolve(flag, parse_dir)?.or(default))
}

/// The watched branch: `--branch`, `SECOND_BRAIN_BRANCH`, `main`.
pub fn branch(flag: Option<OsString>) -> Result<String, ConfigError> {
    let s = Setting {
        flag: "--branch",
        env: BRANCH_ENV,
    };
    let b = s.resolve(flag, |raw| {
        let b = raw.to_str().ok_or("the branch name is not UTF-8")?;
        let ok = !b.is_empty()
            && !b.starts_with('-')
            && !b.contains("..")
            && b.bytes()
                .all(|c| c.is_ascii_graphic() && !b"~^:?*[\\".contains(&c));
        if ok {
            Ok(b.to_string())
        } else {
            Err("expected a git branch name".into())
        }
    })?;
    Ok(b.unwrap_or_else(|| "main".to_string()))
}

/// The log filter from `RUST_LOG` (default `info`), checked for syntax.
pub fn log_filter() -> Result<String, ConfigError> {
    let raw = std::env::var_os(LOG_FILTER_ENV);
    let Some(raw) = raw else {
        return Ok("info".into());
    };
    let err = |reason: String| ConfigError {
        source: LOG_FILTER_ENV.into(),
        value: raw.to_string_lossy().into_owned(),
        reason,
    };
    let text = raw.to_str().ok_or_else(|| err("not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Ok("info".into());
    }
    crate::logging::parse_filter(text).map_err(|e| err(format!("not a valid log filter: {e}")))?;
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_default_and_bad_numbers_name_their_source() {
        assert_eq!(poll_interval_ms(Some("5".into())).unwrap(), 5);
        let e = poll_interval_ms(Some("abc".into())).unwrap_err();
        assert_eq!(e.source, "--poll-interval-ms");
        assert!(e.to_string().contains("abc"));
        let e = log_retention_days(Some("0".into())).unwrap_err();
        assert_eq!(e.source, "--log-retention-days");
        assert!(branch(Some("a..b".into())).is_err());
        assert_eq!(branch(Some("release/1".into())).unwrap(), "release/1");
        assert!(data_dir(Some("".into())).is_err());
        assert!(data_dir(Some("rel".into())).unwrap().is_absolute());
    }

    #[test]
    fn a_data_dir_too_long_for_its_sockets_is_refused_naming_the_socket() {
        let max = crate::paths::max_socket_path();
        // `supervisor.sock` is the longer of the two names.
        let fits = format!("/{}", "d".repeat(max - "//supervisor.sock".len()));
        assert_eq!(format!("{fits}/supervisor.sock").len(), max);
        assert_eq!(
            data_dir(Some(fits.clone().into())).unwrap(),
            PathBuf::from(&fits)
        );
        let long = format!("{fits}x");
        let e = data_dir(Some(long.clone().into())).unwrap_err();
        assert_eq!(e.source, "--data-dir");
        let sock = format!("{long}/supervisor.sock");
        let text = e.to_string();
        assert!(text.contains(&sock), "{text}");
        assert!(
            text.contains(&format!("{} bytes long", sock.len())),
            "{text}"
        );
        assert!(text.contains(&format!("the {max} bytes")), "{text}");
        assert!(text.contains("shorter data directory"), "{text}");
    }
}
