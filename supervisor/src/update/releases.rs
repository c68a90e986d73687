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

    /// Deletes all but the deployed release and the `KEEP` newest others.
    pub fn prune(&self, deployed: &str) -> io::Result<Vec<String>> {
        let mut others = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() && super::git::is_sha(&name) && name != deployed {
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
        Ok(removed)
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
        let removed = r.prune(&shas[0]).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(r.path(&shas[0], "worker").exists());
        assert!(r.path(&shas[5], "worker").exists());
    }
}
