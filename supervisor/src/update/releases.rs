//! Installed releases, and the only code that knows their layout:
//!
//! ```text
//! releases/
//!   DEPLOYED                 the commit that serves (one line)
//!   <sha>/worker             built from <sha>; a new file renamed into
//!   <sha>/supervisor         place, never overwritten (supervisor only if
//!                            <sha> changed it)
//!   <sha>/supervisor-path    else: the supervisor that goes with <sha>
//!   <sha>/supervisor-tried   written before the first exec of <sha>'s own
//!   <sha>/supervisor-proven  supervisor, and once it has run for a while
//! ```
//!
//! The deployed release, the supervisors in use and the [`KEEP`] newest
//! others are kept.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use shared::fsutil::{atomic_write, fsync_dir};
use shared::paths::DataDir;

use crate::exe::{is_inside, own_exe, resolve_exe};

/// How many releases besides the deployed one are kept for rollbacks.
pub const KEEP: usize = 3;

/// Names `DEPLOYED`'s commit.
const DEPLOYED: &str = "DEPLOYED";
/// The worker binary of a release.
pub const WORKER: &str = "worker";
/// The supervisor binary of a release that changed it.
pub const SUPERVISOR: &str = "supervisor";
/// The path of the supervisor that goes with a release without its own.
const SUPERVISOR_PATH: &str = "supervisor-path";
/// Beside a release's supervisor just before its first exec: one neither
/// proven nor tried is a self-update that never happened (the service
/// stopped while it waited), tried at the next start.
const TRIED_MARKER: &str = "supervisor-tried";
/// Beside a release's supervisor once it has run for a while after a
/// self-update: only such a supervisor is started again later.
const PROVEN_MARKER: &str = "supervisor-proven";

/// Why this start did not run the deployed release's supervisor, if it
/// tried (shown in `status`; see `crate::binary::exec_deployed_supervisor`).
pub static NOT_EXECUTED: OnceLock<String> = OnceLock::new();

pub struct Releases {
    dir: PathBuf,
}

impl Releases {
    /// The releases of a data directory.
    pub fn of(data_dir: &DataDir) -> Self {
        Releases {
            dir: data_dir.releases_dir(),
        }
    }

    /// `releases/<sha>/<name>`.
    pub fn path(&self, sha: &str, name: &str) -> PathBuf {
        self.dir.join(sha).join(name)
    }

    /// Whether `path` lies inside the releases (resolved paths compared).
    pub fn contains(&self, path: &Path) -> bool {
        is_inside(path, &self.dir)
    }

    /// The commit `DEPLOYED` names and its worker, if that worker exists.
    pub fn deployed(&self) -> Option<(String, PathBuf)> {
        let commit = fs::read_to_string(self.dir.join(DEPLOYED)).ok()?;
        let commit = commit.trim();
        if !super::git::is_sha(commit) {
            return None;
        }
        let bin = self.path(commit, WORKER);
        bin.is_file().then(|| (commit.to_string(), bin))
    }

    /// The supervisor binary of the deployed release: the release's own
    /// if the commit changed the supervisor, else the one that release
    /// recorded. A release supervisor that has not proven itself (it
    /// crashed soon after its self-update) is not chosen, so a bad one
    /// cannot crash-loop.
    pub fn deployed_supervisor(&self) -> Option<PathBuf> {
        let (commit, _) = self.deployed()?;
        let own = self.path(&commit, SUPERVISOR);
        let candidate = if own.is_file() {
            own
        } else {
            self.recorded_supervisor(&commit)?
        };
        let proven = candidate.with_file_name(PROVEN_MARKER).is_file();
        (candidate.is_file() && (!self.contains(&candidate) || proven)).then_some(candidate)
    }

    /// The deployed release's own supervisor if it was never run: not
    /// this one, not proven, not tried.
    pub fn untried_supervisor(&self) -> Option<PathBuf> {
        let (commit, _) = self.deployed()?;
        let own = self.path(&commit, SUPERVISOR);
        let fresh = own.is_file()
            && !own.with_file_name(PROVEN_MARKER).exists()
            && !own.with_file_name(TRIED_MARKER).exists();
        let me = own_exe().ok()?;
        (fresh && resolve_exe(&own) != me).then_some(own)
    }

    /// The supervisor `sha` recorded as its own (`supervisor-path`).
    fn recorded_supervisor(&self, sha: &str) -> Option<PathBuf> {
        let recorded = fs::read_to_string(self.path(sha, SUPERVISOR_PATH)).ok()?;
        Some(PathBuf::from(recorded.trim()))
    }

    /// Records `supervisor` as the one that goes with `sha`, which has
    /// none of its own.
    pub fn record_supervisor(&self, sha: &str, supervisor: &Path) -> io::Result<()> {
        atomic_write(&self.path(sha, SUPERVISOR_PATH), |w| {
            use std::io::Write;
            writeln!(w, "{}", supervisor.display())
        })
        .map(|_| ())
    }

    /// Notes that `binary`, if it is a release's supervisor, is about to run.
    pub fn mark_tried(&self, binary: &Path) {
        if self.contains(binary) {
            let _ = atomic_write(&binary.with_file_name(TRIED_MARKER), |_| Ok(()));
        }
    }

    /// Marks the running supervisor, if it is a release's, as proven.
    pub fn mark_proven(&self) {
        let Ok(me) = own_exe() else {
            return;
        };
        if self.contains(&me) {
            let marker = me.with_file_name(PROVEN_MARKER);
            if !marker.exists() {
                let _ = atomic_write(&marker, |_| Ok(()));
            }
        }
    }

    /// Copies `built` to `releases/<sha>/<name>` as a new file, durably.
    /// An existing release binary is left as it is (never rewritten).
    pub fn install(&self, sha: &str, name: &str, built: &Path) -> io::Result<PathBuf> {
        let dir = self.dir.join(sha);
        shared::paths::ensure_private_dir(&dir)?;
        let target = dir.join(name);
        if target.is_file() {
            return Ok(target);
        }
        let tmp = dir.join(format!("{}{name}", shared::fsutil::TEMP_PREFIX));
        let result = (|| {
            fs::copy(built, &tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
            shared::sync::full_sync(&fs::File::open(&tmp)?)?;
            fs::rename(&tmp, &target)?;
            fsync_dir(&dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|_| target)
    }

    /// Records `sha` as the deployed commit (atomic replace).
    pub fn set_deployed(&self, sha: &str) -> io::Result<()> {
        atomic_write(&self.dir.join(DEPLOYED), |w| {
            use std::io::Write;
            writeln!(w, "{sha}")
        })
        .map(|_| ())
    }

    /// Deletes all but the `KEEP` newest releases besides those in use:
    /// the deployed one, the one whose supervisor it records
    /// (`supervisor-path`), and those holding a supervisor in `supervisors`
    /// (the running one, one waiting to replace it). A release in use is
    /// never deleted however old it is: after a self-update followed by
    /// worker-only deploys, the running supervisor and its
    /// `supervisor-proven` marker live in an older release, and a later
    /// start of the service runs that supervisor again.
    pub fn prune(&self, deployed: &str, supervisors: &[PathBuf]) -> io::Result<Vec<String>> {
        let mut in_use = vec![deployed.to_string()];
        let recorded = self.recorded_supervisor(deployed);
        in_use.extend(
            supervisors
                .iter()
                .chain(recorded.as_ref())
                .filter_map(|p| self.release_of(p)),
        );
        let mut others = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() && super::git::is_sha(&name) && !in_use.contains(&name) {
                others.push((e.metadata()?.modified()?, name));
            }
        }
        others.sort();
        others.reverse();
        let mut removed = Vec::new();
        for (_, name) in others.into_iter().skip(KEEP) {
            fs::remove_dir_all(self.dir.join(&name))?;
            removed.push(name);
        }
        if !removed.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The release (commit) whose directory holds `path`, comparing
    /// resolved paths (the data dir may be reached through a link).
    pub fn release_of(&self, path: &Path) -> Option<String> {
        let resolve = resolve_exe;
        let rel = path
            .strip_prefix(&self.dir)
            .ok()
            .map(Path::to_path_buf)
            .or_else(|| {
                resolve(path)
                    .strip_prefix(resolve(&self.dir))
                    .ok()
                    .map(Path::to_path_buf)
            })?;
        let first = rel.components().next()?.as_os_str().to_str()?.to_string();
        super::git::is_sha(&first).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_new_files_and_keeps_a_few() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Releases::of(&DataDir::new(tmp.path()));
        let built = tmp.path().join("built");
        fs::write(&built, "v1").unwrap();
        let shas: Vec<String> = (0..6).map(|i| format!("{i:040x}")).collect();
        for sha in &shas {
            let p = r.install(sha, "worker", &built).unwrap();
            assert_eq!(fs::read_to_string(&p).unwrap(), "v1");
        }
        // Never rewritten in place.
        fs::write(&built, "v2").unwrap();
        let p = r.install(&shas[0], "worker", &built).unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "v1");
        r.set_deployed(&shas[0]).unwrap();
        assert_eq!(
            fs::read_to_string(r.dir.join(DEPLOYED)).unwrap().trim(),
            shas[0]
        );
        let removed = r.prune(&shas[0], &[]).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(r.path(&shas[0], "worker").exists());
        assert!(r.path(&shas[5], "worker").exists());
    }

    #[test]
    fn releases_in_use_are_never_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Releases::of(&DataDir::new(tmp.path()));
        let built = tmp.path().join("built");
        fs::write(&built, "bin").unwrap();
        let shas: Vec<String> = (0..9).map(|i| format!("{i:040x}")).collect();
        // 1: a self-update, running now; 2: another supervisor that the
        // deployed release records; the rest: worker-only releases.
        let running = r.install(&shas[1], "supervisor", &built).unwrap();
        fs::write(r.path(&shas[1], PROVEN_MARKER), "").unwrap();
        let recorded = r.install(&shas[2], "supervisor", &built).unwrap();
        for sha in &shas {
            r.install(sha, "worker", &built).unwrap();
        }
        let deployed = &shas[8];
        r.record_supervisor(deployed, &recorded).unwrap();
        // Oldest first, whatever order the file system keeps.
        for (i, sha) in shas.iter().enumerate() {
            let t = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1_000 + i as u64);
            fs::File::open(r.dir.join(sha))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let mut removed = r.prune(deployed, std::slice::from_ref(&running)).unwrap();
        removed.sort();
        let gone: Vec<String> = [0, 3, 4].iter().map(|&i| shas[i].clone()).collect();
        assert_eq!(removed, gone);
        assert!(running.is_file());
        assert!(r.path(&shas[1], PROVEN_MARKER).is_file());
        assert!(recorded.is_file());
        for i in [5, 6, 7, 8] {
            assert!(r.path(&shas[i], "worker").is_file(), "release {i}");
        }
        assert_eq!(r.release_of(&running), Some(shas[1].clone()));
        assert_eq!(r.release_of(&tmp.path().join("elsewhere")), None);
    }

    #[test]
    fn only_a_proven_release_supervisor_is_started_again() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Releases::of(&DataDir::new(tmp.path()));
        let sha = "a".repeat(40);
        let built = tmp.path().join("built");
        fs::write(&built, "w").unwrap();
        r.install(&sha, WORKER, &built).unwrap();
        r.set_deployed(&sha).unwrap();
        // No supervisor of its own, none recorded: nothing to start.
        assert_eq!(r.deployed_supervisor(), None);
        // Its own supervisor, not yet proven: not started.
        let own = r.install(&sha, SUPERVISOR, &built).unwrap();
        assert_eq!(r.deployed_supervisor(), None);
        fs::write(r.path(&sha, PROVEN_MARKER), "").unwrap();
        assert_eq!(r.deployed_supervisor(), Some(own.clone()));
        // A recorded supervisor outside the releases needs no marker.
        fs::remove_file(own).unwrap();
        let installed = tmp.path().join("bin-supervisor");
        fs::write(&installed, "s").unwrap();
        r.record_supervisor(&sha, &installed).unwrap();
        assert_eq!(r.deployed_supervisor(), Some(installed));
    }
}
