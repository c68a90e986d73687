//! The files install writes: each one a temp file in the same directory,
//! synced, then renamed into place, so a reader (launchd, systemd, a
//! running supervisor executing the old binary) sees the old file or the
//! new one, never a mix. A dry run prints instead of writing.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use shared::fsutil::atomic_write;

use super::InstallError;

/// Mode of the plist and the unit: what launchd and systemd expect of a
/// service file (nothing in it is secret; no one else may write it).
pub const SERVICE_FILE_MODE: u32 = 0o644;

/// Mode of the copied binaries: only this user runs them (they live in
/// the private data directory).
pub const BINARY_MODE: u32 = 0o700;

fn failed<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(io::Error) -> InstallError + 'a {
    move |e| InstallError::Failed(format!("cannot {what} {}: {e}", path.display()))
}

/// Creates `dir` and its parents if they are missing, durably (each new
/// level's parent is synced), with the usual 0755: launchd and systemd
/// read these directories (`LaunchAgents`, `systemd/user`).
pub fn ensure_dir(dir: &Path, dry_run: bool) -> Result<(), InstallError> {
    if dry_run {
        return Ok(());
    }
    shared::fsutil::create_dir_all_durable(dir, 0o755)
        .map(drop)
        .map_err(|e| InstallError::Failed(e.to_string()))
}

/// Writes `contents` to `path` with `mode`, atomically. A dry run prints
/// `# file: PATH` and the exact contents instead.
pub fn write_text(
    path: &Path,
    contents: &str,
    mode: u32,
    dry_run: bool,
) -> Result<(), InstallError> {
    if dry_run {
        println!("# file: {}", path.display());
        print!("{contents}");
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        ensure_dir(dir, false)?;
    }
    atomic_write(path, |w| {
        w.get_ref().set_permissions(Permissions::from_mode(mode))?;
        w.write_all(contents.as_bytes())
    })
    .map(|_| ())
    .map_err(failed("write", path))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Copies the executable `from` to `to` (mode [`BINARY_MODE`]) through a
/// temp file and a rename: the file a running process executes is never
/// written in place. A dry run prints `# copy: FROM -> TO`.
pub fn copy_binary(from: &Path, to: &Path, dry_run: bool) -> Result<(), InstallError> {
    if dry_run {
        println!("# copy: {} -> {}", from.display(), to.display());
        return Ok(());
    }
    let mut source = File::open(from).map_err(failed("read the binary", from))?;
    atomic_write(to, |w| {
        w.get_ref()
            .set_permissions(Permissions::from_mode(BINARY_MODE))?;
        io::copy(&mut source, w).map(|_| ())
    })
    .map_err(|e| {
        InstallError::Failed(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    println!("copied {} -> {}", from.display(), to.display());
    Ok(())
}

/// Removes `path`; `Ok(false)` if it was not there. A dry run prints the
/// command that would do it.
pub fn remove(path: &Path, dry_run: bool) -> Result<bool, InstallError> {
    let present = path.exists();
    if dry_run {
        if present {
            println!(
                "$ {}",
                super::runner::shell_words("rm", &[&path.to_string_lossy()])
            );
        }
        return Ok(present);
    }
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                let _ = shared::fsutil::fsync_dir(dir);
            }
            println!("removed {}", path.display());
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(failed("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_and_copies_replace_the_file_with_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("sub/unit.service");
        write_text(&text, "one\n", SERVICE_FILE_MODE, false).unwrap();
        write_text(&text, "two\n", SERVICE_FILE_MODE, false).unwrap();
        assert_eq!(fs::read_to_string(&text).unwrap(), "two\n");
        assert_eq!(fs::metadata(&text).unwrap().mode() & 0o777, 0o644);

        let src = dir.path().join("src-bin");
        fs::write(&src, b"binary").unwrap();
        let dest = dir.path().join("bin");
        copy_binary(&src, &dest, false).unwrap();
        let first = fs::metadata(&dest).unwrap().ino();
        copy_binary(&src, &dest, false).unwrap();
        let meta = fs::metadata(&dest).unwrap();
        assert_ne!(
            meta.ino(),
            first,
            "replaced by rename, not written in place"
        );
        assert_eq!(meta.mode() & 0o777, BINARY_MODE);
        assert_eq!(fs::read(&dest).unwrap(), b"binary");

        assert!(remove(&dest, false).unwrap());
        assert!(!remove(&dest, false).unwrap());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().starts_with(".tmp-")),
            "{names:?}"
        );
    }

    #[test]
    fn a_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("sub/unit.service");
        write_text(&text, "one\n", SERVICE_FILE_MODE, true).unwrap();
        copy_binary(&text, &dir.path().join("bin"), true).unwrap();
        ensure_dir(&dir.path().join("d"), true).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
