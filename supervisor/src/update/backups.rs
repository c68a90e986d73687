//! Keeping the staging target dir (gigabytes of build cache, rewritten by
//! every build) out of backups and the search index.

use std::path::Path;

use tracing::{info, warn};

/// The file Spotlight takes as "do not index this folder".
pub const NEVER_INDEX: &str = ".metadata_never_index";

/// The standard cache-directory tag (bford.info/cachedir) that backup
/// tools such as borg, restic and tar `--exclude-caches` skip; cargo writes
/// it only into a target dir it creates itself.
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
    # This directory is second-brain's update build cache; it is made again when missing.\n";

/// Creates `dir` if needed and marks it: `.metadata_never_index` and
/// `CACHEDIR.TAG` on every platform, and on macOS a Time Machine
/// exclusion. Done once (until the marker is gone, e.g. after `cargo
/// clean`); failures are logged, never fatal.
pub async fn exclude(dir: &Path) {
    let marker = dir.join(NEVER_INDEX);
    if marker.exists() {
        return;
    }
    let marked = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(dir.join(CACHEDIR_TAG), CACHEDIR_TAG_TEXT))
        .and_then(|()| std::fs::write(&marker, b""));
    if let Err(e) = marked {
        warn!(dir = %dir.display(), error = %e, "cannot mark the build cache as not to index");
        return;
    }
    exclude_from_time_machine(dir).await;
}

/// `tmutil addexclusion DIR`: a sticky exclusion (an extended attribute
/// on the folder) that needs no administrator rights.
#[cfg(target_os = "macos")]
async fn exclude_from_time_machine(dir: &Path) {
    use std::time::Duration;
    let mut cmd = tokio::process::Command::new("/usr/bin/tmutil");
    cmd.arg("addexclusion")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    crate::signals::unblocked_tokio(&mut cmd);
    match tokio::time::timeout(Duration::from_secs(30), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => {
            info!(dir = %dir.display(), "build cache excluded from Time Machine");
        }
        Ok(Ok(out)) => warn!(
            dir = %dir.display(),
            status = %out.status,
            said = %String::from_utf8_lossy(&out.stderr).trim(),
            "tmutil addexclusion failed; Time Machine may back up the build cache"
        ),
        Ok(Err(e)) => warn!(dir = %dir.display(), error = %e, "cannot run tmutil"),
        Err(_) => warn!(dir = %dir.display(), "tmutil addexclusion did not finish in 30 s"),
    }
}

/// Linux and others: no Time Machine; the tag files are all there is.
#[cfg(not(target_os = "macos"))]
async fn exclude_from_time_machine(dir: &Path) {
    info!(dir = %dir.display(), "build cache marked as a cache, not to index");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_target_dir_is_made_and_marked_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("staging/target");
        exclude(&dir).await;
        assert!(dir.join(NEVER_INDEX).is_file());
        let tag = std::fs::read_to_string(dir.join(CACHEDIR_TAG)).unwrap();
        assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
        // Marked already: left alone (a removed tag is not rewritten).
        std::fs::remove_file(dir.join(CACHEDIR_TAG)).unwrap();
        exclude(&dir).await;
        assert!(!dir.join(CACHEDIR_TAG).exists());
    }
}
