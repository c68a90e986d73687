//! Bakes the commit the binaries are built from into `shared::version::COMMIT`.
//!
//! `SECOND_BRAIN_COMMIT` in the build environment wins (the updater sets it
//! when it builds a staged commit); otherwise `git rev-parse HEAD` in this
//! checkout; otherwise "unknown".
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=SECOND_BRAIN_COMMIT");
    // Rebuild when HEAD moves: HEAD itself, the ref it points to, packed
    // refs. Only files that exist: cargo counts a missing one as changed and
    // would rebuild every time. (A loose ref that gets packed disappears,
    // which triggers a rebuild, which then watches packed-refs.)
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(head_ref);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = std::env::var("SECOND_BRAIN_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SECOND_BRAIN_COMMIT={commit}");
}
