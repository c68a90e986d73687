//! Reading `cargo build`'s output line by line as it comes, to tell
//! whether a failed build is the commit's fault (the compiler rejects our
//! own crates) or the machine's (no network, a full disk, a killed
//! compiler). Bounded: only names, flags and the last lines are kept.

use std::collections::{BTreeSet, VecDeque};

/// Why `cargo build` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The compiler reported errors in our own crates.
    OurCode,
    /// The commit's manifest or lock file cannot be used as it is.
    Manifest,
    /// Dependencies could not be downloaded (offline, DNS, proxy).
    Offline,
    /// Out of disk space, file descriptors or memory.
    Exhausted,
    /// cargo, or a compiler it ran, was killed by a signal.
    Killed,
    /// A dependency (not our code) failed to build.
    Dependency,
    /// Something else: not known to be the commit's fault.
    Unknown,
}

impl Cause {
    /// Whether the commit is to blame (so it is held).
    pub fn is_the_commits_fault(self) -> bool {
        matches!(self, Cause::OurCode | Cause::Manifest)
    }

    /// Added to "cargo build failed (status)" when it is not our code.
    pub fn explain(self) -> &'static str {
        match self {
            Cause::OurCode | Cause::Manifest => "",
            Cause::Offline => {
                ", cannot download dependencies (offline? check the network or proxy)"
            }
            Cause::Exhausted => {
                ", out of disk space, file descriptors or memory (free some space or close programs)"
            }
            Cause::Killed => ", a build process was killed by a signal (out of memory?)",
            Cause::Dependency => {
                ", in a dependency, not in our crates (a system library or tool missing?)"
            }
            Cause::Unknown => ", not known to be the commit's fault (see the log)",
        }
    }
}

/// What cargo says when it cannot reach a registry or git source.
const OFFLINE: &[&str] = &[
    "failed to download",
    "failed to get `",
    "download of ",
    "Could not resolve host",
    "Couldn't resolve host",
    "Could not connect to server",
    "Couldn't connect to server",
    "Timeout was reached",
    "spurious network error",
    "failed to update registry",
    "Unable to update registry",
    "failed to fetch `",
    "failed to query replaced source registry",
    "you're using offline mode",
    "--offline was specified",
    "SSL connect error",
];

/// What an exhausted machine looks like in cargo's or a compiler's output.
const EXHAUSTED: &[&str] = &[
    "No space left on device",
    "Disk quota exceeded",
    "Too many open files",
    "Cannot allocate memory",
    "memory allocation of",
];

/// The commit's own manifest or lock file is unusable.
const MANIFEST: &[&str] = &[
    "failed to parse manifest at `",
    "could not find `Cargo.toml` in",
    "--locked was passed",
    "did not match any packages",
    "failed to parse lock file",
];

/// Fed every output line of one `cargo build`.
#[derive(Debug, Default)]
pub struct CargoLog {
    /// Packages cargo compiled from a local path: ours.
    ours: BTreeSet<String>,
    /// Packages cargo says it could not compile.
    failed: BTreeSet<String>,
    offline: bool,
    exhausted: bool,
    killed: bool,
    manifest: bool,
    first_error: Option<String>,
    last: VecDeque<String>,
}

const LAST_LINES: usize = 5;

impl CargoLog {
    pub fn line(&mut self, line: &str) {
        let text = line.trim();
        if text.is_empty() {
            return;
        }
        // `Compiling worker v0.1.0 (/path/to/src/worker)`: a local path
        // package. Registry packages show no path, git ones a URL.
        if let Some(rest) = text.strip_prefix("Compiling ") {
            if rest.contains(" (/") {
                if let Some(name) = rest.split_whitespace().next() {
                    self.ours.insert(name.to_string());
                }
            }
        }
        // `error: could not compile `worker` (lib) due to 1 previous error`
        if let Some(rest) = text.strip_prefix("error: could not compile `") {
            if let Some((name, _)) = rest.split_once('`') {
                self.failed.insert(name.to_string());
            }
        }
        let has = |list: &[&str]| list.iter().any(|p| text.contains(p));
        self.offline |= has(OFFLINE);
        self.exhausted |= has(EXHAUSTED);
        self.manifest |= has(MANIFEST);
        // `process didn't exit successfully: `rustc …` (signal: 9, SIGKILL: kill)`,
        // or the linker under `cc`: `collect2: fatal error: ld terminated
        // with signal 7 [Bus error]` (a full disk under its mapped output,
        // or the OOM killer's signal 9). cargo then blames the crate it
        // was linking, though the commit is not at fault.
        self.killed |= text.contains("(signal: ") || text.contains(" terminated with signal ");
        if self.first_error.is_none() && text.starts_with("error") {
            self.first_error = Some(text.to_string());
        }
        if self.last.len() == LAST_LINES {
            self.last.pop_front();
        }
        self.last.push_back(text.to_string());
    }

    /// Why the build failed; `signalled`: cargo itself ended on a signal.
    pub fn cause(&self, signalled: bool) -> Cause {
        if signalled || self.killed {
            Cause::Killed
        } else if self.exhausted {
            Cause::Exhausted
        } else if self.offline {
            Cause::Offline
        } else if self.failed.iter().any(|p| self.ours.contains(p)) {
            Cause::OurCode
        } else if self.manifest {
            Cause::Manifest
        } else if !self.failed.is_empty() {
            Cause::Dependency
        } else {
            Cause::Unknown
        }
    }

    /// The first error line and the last lines, for status and the log.
    pub fn tail(&self) -> String {
        let mut lines: Vec<&str> = Vec::new();
        if let Some(first) = &self.first_error {
            if !self.last.contains(first) {
                lines.extend([first.as_str(), "…"]);
            }
        }
        lines.extend(self.last.iter().map(String::as_str));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> CargoLog {
        let mut log = CargoLog::default();
        text.lines().for_each(|l| log.line(l));
        log
    }

    /// What cargo 1.95 printed with the network unreachable (a proxy on
    /// a closed port): `cargo build` of a crate with one dependency.
    const OFFLINE_OUTPUT: &str = "    Updating crates.io index
error: failed to get `itoa` as a dependency of package `probe v0.1.0 (/tmp/probe)`

Caused by:
  download of config.json failed

Caused by:
  failed to download from `https://index.crates.io/config.json`

Caused by:
  [7] Could not connect to server (Failed to connect to 127.0.0.1 port 9 after 0 ms: Could not connect to server)
";

    const OUR_ERROR: &str = "   Compiling shared v0.1.0 (/s/src/shared)
   Compiling worker v0.1.0 (/s/src/worker)
error: held on purpose
 --> worker/src/lib.rs:40:1
  |
40 | compile_error!(\"held on purpose\");
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

error: could not compile `worker` (lib) due to 1 previous error
";

    #[test]
    fn errors_in_our_crates_are_the_commits_fault() {
        let log = read(OUR_ERROR);
        assert_eq!(log.cause(false), Cause::OurCode);
        let tail = log.tail();
        assert!(tail.contains("error: held on purpose"), "{tail}");
        assert!(tail.contains("could not compile `worker`"), "{tail}");
        // The same crate killed by the OOM killer is not.
        let killed = format!(
            "{OUR_ERROR}\nCaused by:\n  process didn't exit successfully: `rustc --crate-name worker` (signal: 9, SIGKILL: kill)\n"
        );
        assert_eq!(read(&killed).cause(false), Cause::Killed);
        // Nor is a linker that crashed (as seen on a CI machine).
        let linker = "   Compiling worker v0.1.0 (/s/src/worker)\n\
            error: linking with `cc` failed: exit status: 1\n\
            = note: collect2: fatal error: ld terminated with signal 7 [Bus error]\n\
            compilation terminated.\n\
            error: could not compile `worker` (bin \"worker\") due to 1 previous error\n";
        assert_eq!(read(linker).cause(false), Cause::Killed);
        // A link error of our own (an undefined symbol) still is.
        let undefined = "   Compiling worker v0.1.0 (/s/src/worker)\n\
            error: linking with `cc` failed: exit status: 1\n\
            = note: undefined reference to `missing_symbol'\n\
            error: could not compile `worker` (bin \"worker\") due to 1 previous error\n";
        assert_eq!(read(undefined).cause(false), Cause::OurCode);
        // Nor is a full disk while writing its output.
        let full = "   Compiling worker v0.1.0 (/s/src/worker)\n\
            error: failed to write /s/target/debug/deps/libworker.rlib: No space left on device (os error 28)\n\
            error: could not compile `worker` (lib) due to 1 previous error\n";
        assert_eq!(read(full).cause(false), Cause::Exhausted);
        let emfile = "error: failed to open: Too many open files (os error 24)\n";
        assert_eq!(read(emfile).cause(false), Cause::Exhausted);
    }

    #[test]
    fn downloads_signals_and_dependencies_are_not() {
        let log = read(OFFLINE_OUTPUT);
        assert_eq!(log.cause(false), Cause::Offline);
        assert!(!log.cause(false).is_the_commits_fault());
        assert!(
            log.tail().starts_with("error: failed to get `itoa`"),
            "{}",
            log.tail()
        );
        let dns = "error: failed to download from `https://static.crates.io/api/v1/crates/itoa/1.0.15/download`\n\
            Caused by:\n  [6] Could not resolve hostname (Could not resolve host: static.crates.io)\n";
        assert_eq!(read(dns).cause(false), Cause::Offline);
        // cargo itself killed (a timeout, or a person's kill -9).
        assert_eq!(
            read("   Compiling worker v0.1.0 (/s/src/worker)\n").cause(true),
            Cause::Killed
        );
        // A registry crate that does not build here (a missing system
        // library, say) is not our code.
        let dep = "   Compiling openssl-sys v0.9.1\nerror: failed to run custom build command for `openssl-sys v0.9.1`\n\
            error: could not compile `openssl-sys` (build script)\n";
        assert_eq!(read(dep).cause(false), Cause::Dependency);
        assert_eq!(
            read("something else went wrong\n").cause(false),
            Cause::Unknown
        );
    }

    #[test]
    fn an_unusable_manifest_or_lock_file_is_the_commits_fault() {
        for text in [
            "error: failed to parse manifest at `/s/src/worker/Cargo.toml`",
            "error: could not find `Cargo.toml` in `/s/src` or any parent directory",
            "error: the lock file /s/src/Cargo.lock needs to be updated but --locked was passed to prevent this",
        ] {
            let cause = read(text).cause(false);
            assert_eq!(cause, Cause::Manifest, "{text}");
            assert!(cause.is_the_commits_fault());
        }
    }

    #[test]
    fn only_the_last_lines_are_kept() {
        let mut log = CargoLog::default();
        for i in 0..100_000 {
            log.line(&format!("warning: line {i}"));
        }
        assert_eq!(log.last.len(), LAST_LINES);
        assert!(log.tail().ends_with("warning: line 99999"));
    }
}
