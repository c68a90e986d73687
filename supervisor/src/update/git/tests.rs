//! The person's git setup, with real repositories: an origin reached only
//! through their `core.sshCommand`, and an index that reads never touch.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::{Git, BATCH_SSH, GIT_TIMEOUT};

fn sh_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git() -> Git {
    Git {
        bin: which::which("git").expect("git is installed"),
        timeout: GIT_TIMEOUT,
    }
}

/// A bare origin with one commit on `main`, and a clone of it.
fn origin_and_clone(root: &Path) -> (PathBuf, PathBuf, String) {
    let seed = root.join("seed");
    fs::create_dir(&seed).unwrap();
    sh_git(&seed, &["init", "-q", "-b", "main"]);
    fs::write(seed.join("file"), "one\n").unwrap();
    sh_git(&seed, &["add", "file"]);
    sh_git(&seed, &["commit", "-q", "-m", "one"]);
    let sha = sh_git(&seed, &["rev-parse", "HEAD"]);
    let origin = root.join("origin.git");
    let checkout = root.join("checkout");
    for (from, to, bare) in [(&seed, &origin, true), (&origin, &checkout, false)] {
        let mut args = vec!["clone", "-q"];
        if bare {
            args.push("--bare");
        }
        args.extend([from.to_str().unwrap(), to.to_str().unwrap()]);
        sh_git(root, &args);
    }
    (origin, checkout, sha)
}

#[tokio::test]
async fn a_fetch_goes_through_the_persons_own_ssh_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, checkout, sha) = origin_and_clone(tmp.path());
    // Nothing configured: ssh is made non-interactive.
    assert_eq!(git().ssh_command(&checkout).await, Some(BATCH_SSH));

    // An ssh stand-in that runs the remote command here; `-G` (git asking
    // whether it is OpenSSH) is refused so git passes host and command.
    let calls = tmp.path().join("ssh-calls");
    let fake = tmp.path().join("fake-ssh");
    fs::write(
        &fake,
        format!(
            "#!/bin/sh\n[ \"$1\" = \"-G\" ] && exit 1\necho \"$@\" >> '{}'\nshift\nexec sh -c \"$*\"\n",
            calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    // Reachable only through it: no host named `brain-origin` exists.
    let url = format!("brain-origin:{}", origin.display());
    sh_git(&checkout, &["remote", "set-url", "origin", &url]);
    sh_git(
        &checkout,
        &["config", "core.sshCommand", fake.to_str().unwrap()],
    );

    assert_eq!(git().ssh_command(&checkout).await, None);
    let fetched = git()
        .fetch(&checkout, "main")
        .await
        .expect("the fetch works");
    assert_eq!(fetched, sha);
    let said = fs::read_to_string(&calls).expect("the person's ssh command ran");
    assert!(said.contains("brain-origin git-upload-pack"), "{said}");
}

/// The index's identity and contents: rewriting it changes one of them.
fn index_state(checkout: &Path) -> (u64, SystemTime, Vec<u8>) {
    let index = checkout.join(".git/index");
    let meta = fs::metadata(&index).unwrap();
    (
        meta.ino(),
        meta.modified().unwrap(),
        fs::read(&index).unwrap(),
    )
}

#[tokio::test]
async fn reading_the_checkout_never_rewrites_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (_origin, checkout, deployed) = origin_and_clone(tmp.path());
    // A local commit ahead of the deployed one: the fast-forward is not
    // done, but `status` has to look at the checkout first.
    fs::write(checkout.join("mine"), "local work\n").unwrap();
    sh_git(&checkout, &["add", "mine"]);
    sh_git(&checkout, &["commit", "-q", "-m", "mine"]);
    // Stat-dirty: same contents, another mtime. A `git status` that may
    // take optional locks refreshes the index and writes it back.
    let file = fs::File::options()
        .write(true)
        .open(checkout.join("file"))
        .unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .unwrap();
    drop(file);
    let before = index_state(&checkout);

    let why = git().pull(&checkout, "main", &deployed).await.unwrap();
    let why = why.expect("left alone");
    assert!(why.contains("not behind"), "{why}");
    assert!(index_state(&checkout) == before, "the index was rewritten");
}

#[tokio::test]
async fn ls_remote_names_the_branch_tip_and_fails_on_a_missing_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, checkout, sha) = origin_and_clone(tmp.path());
    let git = git();
    assert_eq!(
        git.ls_remote(&checkout, "main", &[]).await.unwrap(),
        Some(sha)
    );
    assert_eq!(git.ls_remote(&checkout, "nope", &[]).await.unwrap(), None);
    fs::rename(&origin, tmp.path().join("moved.git")).unwrap();
    let e = git.ls_remote(&checkout, "main", &[]).await.unwrap_err();
    assert!(e.to_string().contains("git ls-remote"), "{e}");
}
