//! Trying a new supervisor binary before this process replaces itself
//! with it (a self-update, or a start that runs the deployed release's
//! supervisor): it must run and say it is a supervisor, in time. Else
//! the running supervisor stays, and says why.

use std::path::Path;
use std::time::Duration;

/// How long a new supervisor binary gets to answer `--version`.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `bin --version` (stdin closed, in its own process group, killed
/// after `timeout`) before this process replaces itself with `bin`. `Ok`:
/// its first line, once it exited 0 and named itself `supervisor`. `Err`:
/// why it will not do. Blocking.
pub fn try_supervisor(bin: &Path, timeout: Duration) -> Result<String, String> {
    use crate::tools::{run_version, VersionFailure};
    let run = run_version(bin, timeout).map_err(|f| match f {
        VersionFailure::Spawn(e) => format!("it does not start: {e}"),
        VersionFailure::Wait(e) => format!("waiting for `--version` failed: {e}"),
        VersionFailure::TimedOut => {
            format!("`--version` did not answer within {} s", timeout.as_secs())
        }
    })?;
    let first = run.first();
    if !run.status.success() {
        return Err(format!(
            "`--version` ended with {}: {}",
            run.status,
            first.unwrap_or("no output")
        ));
    }
    match first {
        Some(line) if line.starts_with("supervisor ") => Ok(line.to_string()),
        other => Err(format!(
            "`--version` printed {:?}, not a supervisor's version",
            other.unwrap_or("")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn only_a_binary_that_answers_as_a_supervisor_in_time_will_do() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(10);
        let good = script(
            tmp.path(),
            "good",
            "#!/bin/sh\necho 'supervisor 9.9.9 (unknown)'\n",
        );
        assert_eq!(
            try_supervisor(&good, t).unwrap(),
            "supervisor 9.9.9 (unknown)"
        );
        let exits = script(
            tmp.path(),
            "exits",
            "#!/bin/sh\necho 'no luck' >&2\nexit 3\n",
        );
        let e = try_supervisor(&exits, t).unwrap_err();
        assert!(e.contains("exit status: 3") && e.contains("no luck"), "{e}");
        let other = script(tmp.path(), "other", "#!/bin/sh\necho 'worker 1.0.0'\n");
        let e = try_supervisor(&other, t).unwrap_err();
        assert!(e.contains("not a supervisor"), "{e}");
        let hangs = script(tmp.path(), "hangs", "#!/bin/sh\nexec sleep 60\n");
        let e = try_supervisor(&hangs, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        let e = try_supervisor(&tmp.path().join("missing"), t).unwrap_err();
        assert!(e.contains("does not start"), "{e}");
    }
}
