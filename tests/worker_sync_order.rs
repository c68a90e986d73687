//! The order of the real worker's file-system calls, read from a trace
//! (strace): what a power cut needs synced is synced, in the right order,
//! before the worker listens (so before any write is acknowledged).
//!
//! A SIGKILL cannot catch a missing directory sync: the page cache
//! survives it. A power cut drops a new directory entry until its parent
//! directory is synced, and with a data directory's `journal/` entry goes
//! every acknowledged write in it. It may also keep a new file's name
//! while its first bytes are lost or torn: a journal generation must get
//! its name only once its header is synced. Linux only, like strace.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;

use serde_json::json;
use support::TestDir;

/// The traced calls, in order, one per call (`<unfinished ...>` halves
/// joined with their `resumed` part), without pids.
fn calls(trace: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending: Vec<(String, usize)> = Vec::new();
    for line in trace.lines() {
        let (pid, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim_start();
        if let Some(head) = call.strip_suffix(" <unfinished ...>") {
            pending.push((pid.to_string(), out.len()));
            out.push(head.to_string());
        } else if call.starts_with("<... ") {
            let rest = call.split_once("resumed>").map_or("", |(_, r)| r);
            let at = pending
                .iter()
                .position(|(p, _)| p == pid)
                .unwrap_or_else(|| panic!("a resumed call without its start: {line}"));
            let (_, index) = pending.remove(at);
            out[index].push_str(rest);
        } else {
            out.push(call.to_string());
        }
    }
    out
}

/// The index of the first call that starts with `start` and contains all
/// of `parts`.
fn find(calls: &[String], from: usize, start: &str, parts: &[&str]) -> Option<usize> {
    (from..calls.len()).find(|&i| {
        let c = &calls[i];
        c.starts_with(start) && parts.iter().all(|p| c.contains(p))
    })
}

/// `fsync(N</path>)`: a sync of the directory or file `path`.
fn fsync_of(path: &Path) -> String {
    format!("<{}>)", path.display())
}

/// Asserts that `mkdir(dir)` succeeded and that `dir`'s parent was synced
/// after it and before the call at `before`.
fn assert_entry_synced(calls: &[String], dir: &Path, before: usize) {
    let made = find(
        calls,
        0,
        "mkdir(",
        &[&format!("\"{}\"", dir.display()), "= 0"],
    )
    .unwrap_or_else(|| panic!("no mkdir of {}:\n{}", dir.display(), calls.join("\n")));
    // strace -y names descriptors by their canonical path.
    let parent = std::fs::canonicalize(dir.parent().expect("an absolute path has a parent"))
        .expect("the parent exists");
    let synced = find(calls, made, "fsync(", &[&fsync_of(&parent)]);
    assert!(
        synced.is_some_and(|s| s < before),
        "{} was created (call {made}) but its parent {} was not synced before the \
         worker listened (call {before}):\n{}",
        dir.display(),
        parent.display(),
        calls.join("\n")
    );
}

/// Asserts that every journal generation got its name by a rename of a
/// temp file synced before it, that `journal/` was synced after it, and
/// that no journal was ever created under its own name. Returns the
/// renames' positions by generation file name.
fn assert_journals_renamed_into_place(
    calls: &[String],
    journal_dir: &Path,
) -> Vec<(String, usize)> {
    let dir = std::fs::canonicalize(journal_dir).expect("journal/ exists");
    let mut renamed = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        if call.starts_with("openat(") && call.contains("O_CREAT") && call.contains(".journal\"") {
            assert!(
                call.contains(&format!("/{}", shared::fsutil::TEMP_PREFIX)),
                "a journal was created under its own name: {call}"
            );
        }
        if !(call.starts_with("rename") && call.ends_with(".journal\") = 0")) {
            continue;
        }
        let temp = call
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a rename without paths: {call}"));
        let name = call
            .rsplit('/')
            .next()
            .expect("a path")
            .trim_end_matches("\") = 0");
        let created = (0..i)
            .rev()
            .find(|&c| calls[c].starts_with("openat(") && calls[c].contains(&format!("\"{temp}\"")))
            .unwrap_or_else(|| panic!("{temp} renamed but never created:\n{}", calls.join("\n")));
        let canon_temp = dir.join(Path::new(temp).file_name().expect("a file name"));
        assert!(
            find(calls, created, "fsync(", &[&fsync_of(&canon_temp)]).is_some_and(|s| s < i),
            "{temp} was renamed to {name} before it was synced:\n{}",
            calls.join("\n")
        );
        let synced = find(calls, i, "fsync(", &[&fsync_of(&dir)]).unwrap_or_else(|| {
            panic!(
                "journal/ not synced after {name} got its name:\n{}",
                calls.join("\n")
            )
        });
        renamed.push((name.to_string(), synced));
    }
    renamed
}

#[test]
fn a_fresh_data_dir_and_each_journal_are_durable_and_never_half_made() {
    let dir = TestDir::new();
    std::fs::remove_dir(&dir.data).expect("remove the data dir for the worker to create");
    let trace = dir.root().join("calls.trace");
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-y",
            "-o",
            trace.to_str().expect("a UTF-8 temp path"),
            "-e",
            "trace=mkdir,mkdirat,openat,rename,renameat,renameat2,fsync,fdatasync,listen",
        ],
        &[],
    );
    let mut conn = traced.connect();
    let a = conn.call(&json!({"op": "put", "id": "a", "data": 1}));
    assert_eq!(a["ok"], true, "{a}");
    drop(conn);
    // A graceful stop starts generation 2 for the next start.
    let pid = traced.pid.expect("the worker answered ping") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the traced worker");
    let status = traced.strace.wait_exit(support::DEADLINE);
    assert!(status.success(), "{status}:\n{}", traced.stderr());

    let text = std::fs::read_to_string(&trace).expect("read the trace");
    let calls = calls(&text);
    let listen = find(&calls, 0, "listen(", &["= 0"])
        .unwrap_or_else(|| panic!("the worker never listened:\n{text}"));
    assert_entry_synced(&calls, &dir.data, listen);
    assert_entry_synced(&calls, &dir.journal_dir(), listen);
    let renamed = assert_journals_renamed_into_place(&calls, &dir.journal_dir());
    let names: Vec<&str> = renamed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["0000000000000001.journal", "0000000000000002.journal"]
    );
    assert!(renamed[0].1 < listen, "journal 1 not durable before listen");
}
