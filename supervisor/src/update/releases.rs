//! Installed releases: `releases/<sha>/worker` (and `supervisor`), each a
//! new file renamed into place and never overwritten; `releases/DEPLOYED`
//! names the commit that serves. The last few are kept.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use shared::fsutil::{atomic_write, fsync_dir};

/// How many releases besides the deployed one are kept for rollbacks.
pub const KEEP: usize = 3;

pub struct Releases {
    pub dir: PathBuf,
}

impl Releases {
    pub fn new(dir: PathBuf) -> Self {
        Releases { dir }
    }

    pub fn path(&self, sha: &str, name: &str) -> PathBuf {
        self.dir.join(sha).join(name)
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
        atomic_write(&self.dir.join("DEPLOYED"), |w| {
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
        let recorded = fs::read_to_string(self.path(deployed, "supervisor-path"))
            .ok()
            .map(|p| PathBuf::from(p.trim()));
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
        let resolve = crate::binary::resolve_exe;
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
        let r = Releases::new(tmp.path().join("releases"));
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
            fs::read_to_string(r.dir.join("DEPLOYED")).unwrap().trim(),
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
        let r = Releases::new(tmp.path().join("releases"));
        let built = tmp.path().join("built");
        fs::write(&built, "bin").unwrap();
        let shas: Vec<String> = (0..9).map(|i| format!("{i:040x}")).collect();
        // 1: a self-update, running now; 2: another supervisor that the
        // deployed release records; the rest: worker-only releases.
        let running = r.install(&shas[1], "supervisor", &built).unwrap();
        fs::write(r.path(&shas[1], "supervisor-proven"), "").unwrap();
        let recorded = r.install(&shas[2], "supervisor", &built).unwrap();
        for sha in &shas {
            r.install(sha, "worker", &built).unwrap();
        }
        let deployed = &shas[8];
        fs::write(
            r.path(deployed, "supervisor-path"),
            format!("{}\n", recorded.display()),
        )
        .unwrap();
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
        assert!(r.path(&shas[1], "supervisor-proven").is_file());
        assert!(recorded.is_file());
        for i in [5, 6, 7, 8] {
            assert!(r.path(&shas[i], "worker").is_file(), "release {i}");
        }
        assert_eq!(r.release_of(&running), Some(shas[1].clone()));
        assert_eq!(r.release_of(&tmp.path().join("elsewhere")), None);
    }
}
