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

use std::path::Path;

use harness::TestDir;
use serde_json::json;

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
    let status = traced.strace.wait_exit(harness::DEADLINE);
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

/// Puts `count` sessions of the same size through `conn`, ids `k0000`…
/// (overwriting), waiting for each answer; returns what was acknowledged.
fn puts(conn: &mut harness::Conn, count: usize, fill: char) -> Vec<(String, serde_json::Value)> {
    (0..count)
        .map(|i| {
            let id = format!("k{:04}", i % 20);
            let data = json!(fill.to_string().repeat(900));
            let a = conn.call(&json!({"op": "put", "id": id, "data": data}));
            assert_eq!(a["ok"], true, "{a}");
            (id, data)
        })
        .collect()
}

/// How many more puts like [`puts`]'s start a compaction: the journal
/// holds `journal` bytes and one put adds `record` bytes; a snapshot is
/// due once it is larger than `threshold`.
fn puts_to_compact(journal: u64, record: u64, threshold: u64) -> usize {
    ((threshold - journal) / record + 1) as usize
}

/// Lines of the worker's log that say how a SIGUSR1 went.
fn checkpoint_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("checkpoint written") || l.contains("checkpoint failed"))
        .collect()
}

/// Waits until the worker has answered `n + 1` checkpoints; the last one.
fn wait_checkpoint(traced: &harness::strace::Straced, n: usize, what: &str) -> String {
    harness::wait_until(harness::DEADLINE, what, || {
        checkpoint_lines(&traced.stderr())
            .get(n)
            .map(|l| l.to_string())
    })
}

/// SIGUSR1 while a size-triggered snapshot is being written (each rename
/// is slowed down with strace, a slow disk): "checkpoint written" only once
/// `sessions.json` holds every acknowledged write, and "checkpoint failed"
/// when that snapshot fails (`sessions.json` is a directory meanwhile).
#[test]
fn sigusr1_during_a_snapshot_is_answered_when_it_is_durable_or_failed() {
    let dir = TestDir::new();
    let trace = dir.root().join("rename.trace");
    let min = 16 * 1024;
    let mut traced = dir.start_under_strace(
        &[
            "-f",
            "-qq",
            "-o",
            trace.to_str().expect("a UTF-8 temp path"),
            "-e",
            "trace=rename,renameat,renameat2",
            "-e",
            "inject=rename,renameat,renameat2:delay_enter=1000000",
        ],
        &["--compact-min-bytes", &min.to_string()],
    );
    let pid = nix::unistd::Pid::from_raw(traced.pid.expect("the worker answered ping") as i32);
    let usr1 = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
    let mut conn = traced.connect();
    let stats = |conn: &mut harness::Conn| {
        let s = conn.call(&json!({"op": "stats"}));
        assert_eq!(s["ok"], true, "{s}");
        (s["journal_bytes"].as_u64().expect("journal_bytes"), s)
    };
    let temp_snapshot = || {
        dir.names(".")
            .iter()
            .any(|n| n.starts_with(".tmp-sessions.json"))
    };

    // 1. A snapshot that is slow to land.
    let (empty, _) = stats(&mut conn);
    let mut acked = puts(&mut conn, 1, 'a');
    let (after_one, _) = stats(&mut conn);
    let record = after_one - empty;
    acked.extend(puts(
        &mut conn,
        puts_to_compact(after_one, record, min),
        'a',
    ));
    harness::wait_until(harness::DEADLINE, "the snapshot's temp file", || {
        temp_snapshot().then_some(())
    });
    usr1();
    let line = wait_checkpoint(&traced, 0, "the SIGUSR1 to be answered");
    // Read at once: a snapshot still in flight would not be there yet.
    let snapshot = dir.sessions_json().exists().then(|| dir.snapshot());
    assert!(line.contains("checkpoint written"), "{line}");
    let snapshot =
        snapshot.unwrap_or_else(|| panic!("answered before sessions.json existed: {line}"));
    let last: std::collections::BTreeMap<_, _> = acked.iter().cloned().collect();
    assert_eq!(snapshot.len(), last.len());
    for (id, data) in &last {
        assert!(
            &snapshot[id]["data"] == data,
            "{id} is not in sessions.json"
        );
    }

    // 2. A snapshot that fails: sessions.json cannot be replaced.
    let (journal, s) = stats(&mut conn);
    assert_eq!(s["checkpoints"], 1, "{s}");
    let threshold = (2 * s["snapshot_bytes"].as_u64().expect("snapshot_bytes")).max(min);
    std::fs::remove_file(dir.sessions_json()).expect("remove sessions.json");
    std::fs::create_dir_all(dir.sessions_json().join("in-the-way")).expect("block it");
    acked.extend(puts(
        &mut conn,
        puts_to_compact(journal, record, threshold),
        'b',
    ));
    harness::wait_until(harness::DEADLINE, "the second snapshot's temp file", || {
        temp_snapshot().then_some(())
    });
    usr1();
    let line = wait_checkpoint(&traced, 1, "the second SIGUSR1 to be answered");
    assert!(line.contains("checkpoint failed"), "{line}");
    let (_, s) = stats(&mut conn);
    assert_eq!(s["checkpoints"], 1, "{s}");

    // 3. Once it can be replaced, the next SIGUSR1 writes everything.
    std::fs::remove_dir_all(dir.sessions_json()).expect("unblock sessions.json");
    usr1();
    let line = wait_checkpoint(&traced, 2, "the third SIGUSR1 to be answered");
    assert!(line.contains("checkpoint written"), "{line}");
    let last: std::collections::BTreeMap<_, _> = acked.into_iter().collect();
    let snapshot = dir.snapshot();
    assert_eq!(snapshot.len(), last.len());
    for (id, data) in &last {
        assert!(&snapshot[id]["data"] == data, "{id} is not its last value");
    }
    drop(conn);
    traced.kill_worker();
}
