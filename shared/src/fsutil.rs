//! Durable file writes: the atomic-replace recipe, directory fsync and
//! directory creation that survives a power cut.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The prefix of every temporary file, so leftovers can be found and removed.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Fsyncs a directory so that renames and creations in it survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    crate::sync::full_sync(&File::open(dir)?)
}

/// Creates `dir` and any missing parents with `mode`, durably.
///
/// A new directory's entry lives in its parent, and a power cut can drop
/// it until the parent is synced, taking with it everything inside, even
/// files that were synced themselves. So after each level this creates,
/// its parent is synced (with [`fsync_dir`]), from the first level that
/// already existed down to `dir`. Levels that exist are left as they are,
/// mode included. Returns whether `dir` had to be created.
///
/// Files created in `dir` later need `dir` itself synced: that is the
/// caller's (as in [`atomic_write`]).
pub fn create_dir_all_durable(dir: &Path, mode: u32) -> io::Result<bool> {
    create_dir_all_with(dir, mode, &mut |parent| fsync_dir(parent))
}

/// [`create_dir_all_durable`] with the directory sync passed in, so that
/// tests can see which parents are synced and when.
fn create_dir_all_with(
    dir: &Path,
    mode: u32,
    sync: &mut dyn FnMut(&Path) -> io::Result<()>,
) -> io::Result<bool> {
    let failed = |what: &str, at: &Path, e: io::Error| {
        let also = if at == dir {
            String::new()
        } else {
            format!(" (creating {})", dir.display())
        };
        io::Error::new(
            e.kind(),
            format!("cannot {what} {}{also}: {e}", at.display()),
        )
    };
    // The missing levels, deepest first.
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        match fs::metadata(at) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(failed(
                    "create directory",
                    at,
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file that is not a directory is in the way; move it away",
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(at);
                match at.parent() {
                    Some(parent) => at = parent,
                    None => break,
                }
            }
            Err(e) => return Err(failed("read", at, e)),
        }
    }
    for &level in missing.iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(level) {
            Ok(()) => {}
            // Made by another process meanwhile: syncing its parent again
            // does no harm.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && level.is_dir() => {}
            Err(e) => return Err(failed("create directory", level, e)),
        }
        let parent = parent_dir(level);
        sync(parent).map_err(|e| failed("sync the directory", parent, e))?;
    }
    Ok(!missing.is_empty())
}

/// The directory holding `path`'s entry (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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
    let dir = parent_dir(target);
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
    fn a_created_chain_syncs_each_new_levels_parent_after_creating_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dir = root.join("a/b/c");
        let mut synced = Vec::new();
        let created = create_dir_all_with(&dir, 0o700, &mut |parent| {
            // Each sync comes after the entry it makes durable exists.
            let children: Vec<_> = fs::read_dir(parent).unwrap().collect();
            synced.push((parent.to_path_buf(), children.len()));
            fsync_dir(parent)
        })
        .unwrap();
        assert!(created);
        let expected = [root.to_path_buf(), root.join("a"), root.join("a/b")];
        assert_eq!(
            synced.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            expected
        );
        assert!(synced.iter().all(|(_, n)| *n == 1), "{synced:?}");
        for level in ["a", "a/b", "a/b/c"] {
            let mode = fs::metadata(root.join(level)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{level}");
        }

        // Only the levels that were missing, and nothing if none is.
        synced.clear();
        let created = create_dir_all_with(&root.join("a/x/y"), 0o700, &mut |p| {
            synced.push((p.to_path_buf(), 0));
            Ok(())
        })
        .unwrap();
        assert!(created);
        let parents: Vec<_> = synced.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(parents, [root.join("a"), root.join("a/x")]);
        let mut calls = 0;
        let created = create_dir_all_with(&dir, 0o700, &mut |_| {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert!(!created);
        assert_eq!(calls, 0);
        // An existing directory keeps its mode.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!create_dir_all_durable(&dir, 0o700).unwrap());
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn creating_a_directory_returns_errors_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        // The directory itself is a file.
        let err = create_dir_all_durable(&file, 0o700).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");
        assert!(err.to_string().contains("move it away"), "{err}");
        // A level on the way is a file.
        let below = file.join("sub/dir");
        let err = create_dir_all_durable(&below, 0o700).unwrap_err();
        assert!(err.to_string().contains(&*below.to_string_lossy()), "{err}");
        // A failed sync is an error too, naming the directory, and stops
        // the chain: nothing is made inside a level not known durable.
        let dir = tmp.path().join("p/q");
        let err = create_dir_all_with(&dir, 0o700, &mut |_| Err(io::Error::other("disk gone")))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cannot sync the directory"), "{text}");
        assert!(text.contains(&*tmp.path().to_string_lossy()), "{text}");
        assert!(text.contains("disk gone"), "{text}");
        assert!(tmp.path().join("p").is_dir());
        assert!(!dir.exists());
        // A relative bare name syncs the current directory.
        assert_eq!(parent_dir(Path::new("name")), Path::new("."));
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
