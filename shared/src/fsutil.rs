//! Durable file writes: the atomic-replace recipe and directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The prefix of every temporary file, so leftovers can be found and removed.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Fsyncs a directory so that renames and creations in it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    crate::sync::full_sync(&File::open(dir)?)
}

/// Replaces `target` atomically with what `fill` writes.
///
/// Temp file in the same directory (0600), write, sync, `rename` over
/// the target, fsync the directory. Returns the number of bytes written.
/// On any error the target is untouched and the temp file removed.
pub fn atomic_write(
    target: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<u64> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no file name"))?;
    let tmp: PathBuf = dir.join(format!(
        "{TEMP_PREFIX}{}.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        crate::sync::full_sync(&file)?;
        let len = file.metadata()?.len();
        fs::rename(&tmp, target)?;
        fsync_dir(dir)?;
        Ok(len)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a socket file left by a dead process; refuses to remove
/// anything that is not a socket. Call only while holding the lock that
/// says no live process can be listening on it.
pub fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; move it away",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes temp files a crash left in `dir`; returns their names.
pub fn remove_leftover_temps(dir: &Path) -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_atomically_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.json");
        fs::write(&target, "old").unwrap();
        let n = atomic_write(&target, |w| w.write_all(b"new!")).unwrap();
        assert_eq!(n, 4);
        assert_eq!(fs::read_to_string(&target).unwrap(), "new!");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let err = atomic_write(&target, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new!");
        assert!(remove_leftover_temps(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn leftover_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-sessions.json.42"), "x").unwrap();
        fs::write(dir.path().join("keep"), "x").unwrap();
        let removed = remove_leftover_temps(dir.path()).unwrap();
        assert_eq!(removed, vec![".tmp-sessions.json.42".to_string()]);
        assert!(dir.path().join("keep").exists());
    }
}
