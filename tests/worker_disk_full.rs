//! A full disk: the worker answers `unavailable`, loses nothing it
//! acknowledged, keeps serving reads, and writes again once there is room.
//! Needs root (it mounts a small tmpfs as the data directory); skipped
//! with a note otherwise.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use harness::{TestDir, DEADLINE};
use nix::sys::signal::Signal;
use serde_json::json;

/// A tmpfs mounted on the data directory, unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(at: &std::path::Path, size: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Mount(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount to {size}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_and_loses_nothing() {
    let dir = TestDir::new();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let Some(mount) = Mount::tmpfs(&dir.data, "12m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    std::fs::set_permissions(&dir.data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    let blob = "x".repeat(1000);
    let mut acked = 0u64;
    let mut refused = None;
    for i in 0..20_000u64 {
        let a =
            conn.call(&json!({"op": "put", "id": format!("s{i}"), "data": {"i": i, "blob": blob}}));
        if a["ok"] == true {
            acked = i + 1;
            continue;
        }
        assert_eq!(a["error"]["code"], "unavailable", "{a}");
        refused = Some(a["error"]["message"].as_str().unwrap().to_string());
        break;
    }
    let message = refused.expect("the disk never filled up");
    assert!(message.contains("disk full"), "{message}");
    assert!(acked > 1000, "only {acked} writes fit");
    // Reads go on; more writes are refused, not crashed on.
    let got = conn.call(&json!({"op": "get", "id": "s0"}));
    assert_eq!(got["session"]["data"]["i"], 0);
    // (As large as the refused one: a smaller one may still fit in the
    // journal's preallocated space.)
    let again = conn.call(&json!({"op": "put", "id": "more", "data": {"blob": blob}}));
    assert_eq!(
        again["error"]["code"], "unavailable",
        "{again} after {message}, acked {acked}"
    );
    // Room again: writes resume on the same connection.
    mount.resize("64m");
    let resumed = conn.call(&json!({"op": "put", "id": "after", "data": 2}));
    assert_eq!(resumed["ok"], true, "{resumed}");
    drop(conn);
    // Every acknowledged write is there after a SIGKILL and a restart.
    let mut worker = worker;
    worker.signal(Signal::SIGKILL);
    worker.wait_exit(DEADLINE);
    let worker = dir.start(&[]);
    let mut conn = worker.connect();
    let stats = conn.call(&json!({"op": "stats"}));
    assert_eq!(stats["count"], acked + 1, "{stats}");
    for i in [0, acked / 2, acked - 1] {
        let got = conn.call(&json!({"op": "get", "id": format!("s{i}")}));
        assert_eq!(got["session"]["data"]["i"], i);
    }
    assert_eq!(
        conn.call(&json!({"op": "get", "id": "after"}))["session"]["data"],
        2
    );
    assert_eq!(
        conn.call(&json!({"op": "get", "id": "more"}))["error"]["code"],
        "not_found"
    );
}
