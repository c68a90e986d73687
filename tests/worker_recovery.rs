//! What a start finds on disk (README, "When something is damaged"): damaged snapshots and
//! journals are refused and left alone, torn tails and blank journals are
//! set aside, temp files are cleaned, old formats load, and the data
//! directory has one owner at a time.

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use harness::{TestDir, Worker, DEADLINE};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

const HEADER_LEN: usize = 24;
/// A batch's header: records length, count, sequence number, checksum.
const BATCH_HEADER_LEN: usize = 24;
/// Where a one-record batch's payload starts: after both headers.
const PAYLOAD_AT: usize = BATCH_HEADER_LEN + 8;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// The batches of a journal file, checked against the documented format
/// (version 2): each batch's whole range (header and records) and the
/// payloads of its records.
fn batches(bytes: &[u8]) -> Vec<(Range<usize>, Vec<Range<usize>>)> {
    assert_eq!(&bytes[..6], b"SBJRNL", "journal magic");
    assert_eq!(
        u16::from_le_bytes([bytes[6], bytes[7]]),
        2,
        "journal version"
    );
    assert_eq!(
        u32_at(bytes, 16),
        crc32fast::hash(&bytes[..16]),
        "header checksum"
    );
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    loop {
        let len = u64_at(bytes, at) as usize;
        if len == 0 {
            return out;
        }
        assert_eq!(
            u64_at(bytes, at + 12),
            out.len() as u64 + 1,
            "sequence number of the batch at {at}"
        );
        let end = at + BATCH_HEADER_LEN + len;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&bytes[at..at + 20]);
        crc.update(&bytes[at + BATCH_HEADER_LEN..end]);
        assert_eq!(
            u32_at(bytes, at + 20),
            crc.finalize(),
            "checksum of the batch at {at}"
        );
        let mut payloads = Vec::new();
        let mut record = at + BATCH_HEADER_LEN;
        while record < end {
            let payload = record + 8..record + 8 + u32_at(bytes, record) as usize;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&bytes[record..record + 4]);
            crc.update(&bytes[payload.clone()]);
            assert_eq!(u32_at(bytes, record + 4), crc.finalize(), "record checksum");
            record = payload.end;
            payloads.push(payload);
        }
        assert_eq!(record, end, "the records fill the batch at {at}");
        assert_eq!(
            u32_at(bytes, at + 8) as usize,
            payloads.len(),
            "records in the batch at {at}"
        );
        out.push((at..end, payloads));
        at = end;
    }
}

/// A journal a SIGKILLed worker left behind.
struct Journal {
    path: PathBuf,
    name: String,
    bytes: Vec<u8>,
    /// One per put, in order.
    batches: Vec<Range<usize>>,
}

impl Journal {
    fn write(&self, bytes: &[u8]) {
        fs::write(&self.path, bytes).expect("write the edited journal");
    }
}

/// Starts a worker, puts each id (data `{"id": id}`), SIGKILLs it so the
/// journal stays, and returns that journal.
fn journal_after_kill(dir: &TestDir, ids: &[&str]) -> Journal {
    let mut worker = dir.start(&[]);
    let mut c = worker.connect();
    for id in ids {
        assert_eq!(
            c.call(&json!({"op": "put", "id": id, "data": {"id": id}}))["ok"],
            true
        );
    }
    worker.kill();
    let journals = dir.journals();
    assert_eq!(journals.len(), 1, "one journal: {journals:?}");
    let name = journals[0].clone();
    let path = dir.journal_dir().join(&name);
    let bytes = fs::read(&path).unwrap();
    let found = batches(&bytes);
    assert_eq!(found.len(), ids.len(), "one batch per put");
    let mut batches = Vec::new();
    for ((range, payloads), id) in found.into_iter().zip(ids) {
        assert_eq!(
            payloads.len(),
            1,
            "one record in the batch at {}",
            range.start
        );
        let payload: Value = serde_json::from_slice(&bytes[payloads[0].clone()]).unwrap();
        assert_eq!(payload["put"]["id"], *id, "{payload}");
        assert_eq!(payload["put"]["data"], json!({"id": id}), "{payload}");
        batches.push(range);
    }
    assert_eq!(bytes.len() % (1 << 20), 0, "preallocated in 1 MiB chunks");
    Journal {
        path,
        name,
        bytes,
        batches,
    }
}

/// The ids the worker serves, sorted.
fn ids(worker: &Worker) -> Vec<String> {
    let list = worker.call(&json!({"op": "list"}));
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// A start refuses with exit 4, names `file` and every `words`, and leaves
/// `file` byte-for-byte as it was.
fn assert_refused(dir: &TestDir, file: &Path, words: &[&str]) {
    let before = fs::read(file).ok();
    let (status, stderr) = dir.run_to_exit(&[]);
    assert_eq!(status.code(), Some(4), "exit status; stderr:\n{stderr}");
    assert!(
        stderr.contains(&file.display().to_string()),
        "names {}:\n{stderr}",
        file.display()
    );
    for word in words {
        assert!(stderr.contains(word), "mentions {word:?}:\n{stderr}");
    }
    assert_eq!(
        fs::read(file).ok(),
        before,
        "{} was changed",
        file.display()
    );
}

/// The one file in `damaged/` that starts with `prefix`, and its bytes.
fn set_aside(dir: &TestDir, prefix: &str) -> (String, Vec<u8>) {
    let found: Vec<String> = dir
        .names("damaged")
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {prefix}* in damaged/: {:?}",
        dir.names("damaged")
    );
    let bytes = fs::read(dir.data.join("damaged").join(&found[0])).unwrap();
    (found[0].clone(), bytes)
}

#[test]
fn a_damaged_sessions_json_is_refused_and_left_unchanged() {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    for i in 0..5 {
        worker.call(&json!({"op": "put", "id": format!("s{i}"), "data": {"i": i}}));
    }
    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.wait_exit(DEADLINE).code(), Some(0));
    let path = dir.sessions_json();
    let good = fs::read(&path).unwrap();
    let wrong_version =
        String::from_utf8(good.clone())
            .unwrap()
            .replacen("\"version\":1", "\"version\":2", 1);
    assert_ne!(wrong_version.as_bytes(), &good[..]);

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated", good[..good.len() / 2].to_vec(), &["byte "]),
        ("zero-length", Vec::new(), &["byte 0"]),
        (
            "garbage",
            b"\xff\xfe not json at all {{{".to_vec(),
            &["byte "],
        ),
        ("all zeros", vec![0; 512], &["byte 0"]),
        ("wrong version", wrong_version.into_bytes(), &["version"]),
        (
            "sessions not a map",
            br#"{"version":1,"sessions":[]}"#.to_vec(),
            &[],
        ),
        ("no version", br#"{"sessions":{}}"#.to_vec(), &[]),
    ];
    for (what, bytes, words) in &cases {
        fs::write(&path, bytes).unwrap();
        eprintln!("case: {what}");
        assert_refused(&dir, &path, words);
    }

    // Unreadable: a directory where the file should be.
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    assert_refused(&dir, &path, &[]);
    assert!(path.is_dir());
    fs::remove_dir(&path).unwrap();

    // Put back, it loads with everything.
    fs::write(&path, &good).unwrap();
    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["s0", "s1", "s2", "s3", "s4"]);
}

#[test]
fn the_first_release_sessions_json_still_loads() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sessions-v1.json");
    let doc: Value = serde_json::from_slice(&fs::read(&fixture).unwrap()).unwrap();
    let expected: BTreeMap<String, Value> = doc["sessions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let dir = TestDir::new();
    fs::copy(&fixture, dir.sessions_json()).unwrap();
    let mut worker = dir.start(&[]);
    assert_eq!(ids(&worker), expected.keys().cloned().collect::<Vec<_>>());
    for (id, session) in &expected {
        assert_eq!(
            &worker.call(&json!({"op": "get", "id": id}))["session"],
            session,
            "{id}"
        );
    }
    assert_eq!(
        worker.call(&json!({"op": "put", "id": "new", "data": 1}))["ok"],
        true
    );
    worker.signal(Signal::SIGTERM);
    assert_eq!(worker.wait_exit(DEADLINE).code(), Some(0));
    let snapshot = dir.snapshot();
    for (id, session) in &expected {
        assert_eq!(snapshot.get(id), Some(session), "{id} kept exactly");
    }
    assert_eq!(snapshot["new"]["data"], 1);
}

#[test]
fn a_missing_sessions_json_is_an_empty_store() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    assert_eq!(worker.call(&json!({"op": "stats"}))["count"], 0);
    assert!(ids(&worker).is_empty());
}

/// Starts on a journal whose last batch (from `from`) is torn as in
/// `damaged`: its bytes are set aside, the batches before are served, and
/// appending after the repair works.
fn assert_torn_tail_set_aside(dir: &TestDir, journal: &Journal, damaged: &[u8], from: usize) {
    let mut worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b"], "the last, torn record is dropped");
    let (name, aside) = set_aside(dir, &format!("{}.torn-at-{from}-", journal.name));
    let millis = name.rsplit('-').next().unwrap();
    assert!(
        !millis.is_empty() && millis.bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    let mut expected = damaged[from..].to_vec();
    while expected.last() == Some(&0) {
        expected.pop();
    }
    assert_eq!(aside, expected, "damaged/{name} holds the torn bytes");
    let now = fs::read(&journal.path).unwrap();
    assert_eq!(
        now[..from],
        journal.bytes[..from],
        "the records before are untouched"
    );
    assert!(
        now[from..from + expected.len()].iter().all(|b| *b == 0),
        "the torn bytes are zeroed"
    );

    // Appends land after the repair and survive another crash.
    assert_eq!(
        worker.call(&json!({"op": "put", "id": "d", "data": 4}))["ok"],
        true
    );
    worker.kill();
    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b", "d"]);
    assert_eq!(dir.names("damaged").len(), 1, "nothing more was set aside");
}

#[test]
fn a_journal_truncated_inside_its_last_batch_starts_without_it() {
    // Inside the batch header, the record header and the payload.
    let mut checked = 0;
    for into_batch in [6, 20, 30, 40] {
        let dir = TestDir::new();
        let journal = journal_after_kill(&dir, &["a", "b", "c"]);
        let last = journal.batches[2].clone();
        let cut = last.start + into_batch;
        assert!(cut < last.end);
        let truncated = &journal.bytes[..cut];
        journal.write(truncated);
        if truncated[last.start..].iter().all(|b| *b == 0) {
            continue; // nothing non-zero left to set aside; covered by the other cut
        }
        assert_torn_tail_set_aside(&dir, &journal, truncated, last.start);
        checked += 1;
    }
    assert!(checked > 0, "no cut left torn bytes to check");
}

#[test]
fn a_bit_flip_in_the_last_batch_starts_without_it() {
    let dir = TestDir::new();
    let journal = journal_after_kill(&dir, &["a", "b", "c"]);
    let last = journal.batches[2].clone();
    let mut bytes = journal.bytes.clone();
    bytes[last.start + 8 + (last.len() - 8) / 2] ^= 0x04;
    journal.write(&bytes);
    assert_torn_tail_set_aside(&dir, &journal, &bytes[..last.end], last.start);
}

#[test]
fn garbage_after_the_last_batch_is_set_aside() {
    let dir = TestDir::new();
    let journal = journal_after_kill(&dir, &["a", "b", "c"]);
    let end = journal.batches[2].end;
    let mut bytes = journal.bytes.clone();
    bytes[end..end + 64].fill(0xab);
    journal.write(&bytes);
    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b", "c"]);
    let (_, aside) = set_aside(&dir, &format!("{}.torn-at-{end}-", journal.name));
    assert_eq!(aside, vec![0xab; 64]);
}

#[test]
fn a_bad_batch_followed_by_a_good_one_is_refused_naming_the_byte() {
    let dir = TestDir::new();
    let journal = journal_after_kill(&dir, &["a", "b", "c"]);
    let bad = journal.batches[1].clone();
    let mut bytes = journal.bytes.clone();
    bytes[bad.start + PAYLOAD_AT + 3] ^= 0x01;
    journal.write(&bytes);
    assert_refused(&dir, &journal.path, &[&format!("byte {}", bad.start)]);
    assert!(dir.names("damaged").is_empty(), "nothing was set aside");
    assert!(!dir.sessions_json().exists(), "no snapshot was written");
}

/// A power cut that kept the end of a group commit of several records and
/// lost its start (a disk may persist the sectors of one write in any
/// order) leaves a torn last batch: the worker starts without it. (Read
/// record by record, a lost record followed by a good one is damage: the
/// first release's format stopped the worker with exit 4 here.)
#[test]
fn a_group_commit_torn_by_a_power_cut_starts_without_it() {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    // Clients writing at once share group commits: rounds of 8 clients
    // until one commit took several puts. (Records of ~670 bytes: the
    // first sector of a batch never holds its last record.)
    let sock = dir.sock();
    let mut rounds = 0;
    harness::wait_until(DEADLINE, "a group commit of two puts", || {
        std::thread::scope(|s| {
            for c in 0..8 {
                let sock = &sock;
                s.spawn(move || {
                    let mut conn = harness::Conn::connect(sock);
                    for i in 0..25 {
                        let id = format!("r{rounds}-c{c}-{i:02}");
                        let put = json!({"op": "put", "id": id, "data": "x".repeat(600)});
                        assert_eq!(conn.call(&put)["ok"], true);
                    }
                });
            }
        });
        rounds += 1;
        let bytes = fs::read(dir.journal_dir().join(&dir.journals()[0])).unwrap();
        batches(&bytes)
            .iter()
            .any(|(_, p)| p.len() >= 2)
            .then_some(())
    });
    worker.kill();
    let name = dir.journals()[0].clone();
    let path = dir.journal_dir().join(&name);
    let bytes = fs::read(&path).unwrap();
    let found = batches(&bytes);
    let records: usize = found.iter().map(|(_, p)| p.len()).sum();
    assert_eq!(records, 200 * rounds);
    let (torn, payloads) = found
        .iter()
        .max_by_key(|(_, p)| p.len())
        .expect("batches")
        .clone();
    assert!(payloads.len() >= 2, "no group commit took two puts");
    let id = |p: &Range<usize>| {
        let v: Value = serde_json::from_slice(&bytes[p.clone()]).unwrap();
        v["put"]["id"].as_str().unwrap().to_string()
    };
    let mut before: Vec<String> = found
        .iter()
        .take_while(|(r, _)| r.start < torn.start)
        .flat_map(|(_, p)| p.iter().map(id))
        .collect();
    before.sort();

    // The torn batch was the last write; its first sector never reached
    // the disk, the later ones (with its last record whole) did.
    let mut image = bytes.clone();
    image[torn.end..].fill(0);
    let lost = torn.start..(torn.start / 512 + 1) * 512;
    assert!(
        lost.end < payloads.last().unwrap().start,
        "the last record is kept"
    );
    image[lost.clone()].fill(0);
    fs::write(&path, &image).unwrap();

    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), before);
    let (_, aside) = set_aside(&dir, &format!("{name}.torn-at-{}-", torn.start));
    assert_eq!(aside, image[torn.start..torn.end]);
}

#[test]
fn a_damaged_journal_header_is_refused() {
    let dir = TestDir::new();
    let journal = journal_after_kill(&dir, &["a", "b"]);
    let mut garbage = journal.bytes.clone();
    garbage[..HEADER_LEN].copy_from_slice(b"this is not a journal!!!");
    journal.write(&garbage);
    assert_refused(&dir, &journal.path, &["byte 0"]);

    let mut version_3 = journal.bytes.clone();
    version_3[6..8].copy_from_slice(&3u16.to_le_bytes());
    let crc = crc32fast::hash(&version_3[..16]);
    version_3[16..20].copy_from_slice(&crc.to_le_bytes());
    journal.write(&version_3);
    assert_refused(&dir, &journal.path, &["version 3"]);

    journal.write(&journal.bytes);
    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b"], "the original journal still loads");
}

#[test]
fn blank_journals_are_moved_aside() {
    let dir = TestDir::new();
    let journal = journal_after_kill(&dir, &["a", "b"]);
    fs::write(
        dir.journal_dir().join("0000000000000009.journal"),
        vec![0u8; 4096],
    )
    .unwrap();
    fs::write(dir.journal_dir().join("000000000000000a.journal"), b"").unwrap();
    let mut worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b"]);
    let (_, zeros) = set_aside(&dir, "0000000000000009.journal.blank");
    assert_eq!(zeros, vec![0u8; 4096]);
    let (_, empty) = set_aside(&dir, "000000000000000a.journal.blank");
    assert!(empty.is_empty());
    let journals = dir.journals();
    assert!(
        !journals.contains(&"0000000000000009.journal".to_string()),
        "{journals:?}"
    );
    assert!(
        !journals.contains(&"000000000000000a.journal".to_string()),
        "{journals:?}"
    );
    assert!(
        journals.contains(&journal.name),
        "the real journal is kept until a snapshot covers it"
    );

    assert_eq!(
        worker.call(&json!({"op": "put", "id": "c", "data": 3}))["ok"],
        true
    );
    worker.kill();
    let worker = dir.start(&[]);
    assert_eq!(ids(&worker), ["a", "b", "c"]);
}

#[test]
fn leftover_temp_files_are_removed_at_start() {
    let dir = TestDir::new();
    journal_after_kill(&dir, &["a"]);
    let temps = [
        dir.data.join(".tmp-sessions.json.12345"),
        dir.journal_dir().join(".tmp-anything"),
    ];
    for t in &temps {
        fs::write(t, b"half-written").unwrap();
    }
    let keep = dir.data.join("notes.txt");
    fs::write(&keep, b"not ours").unwrap();
    let worker = dir.start(&[]);
    for t in &temps {
        assert!(!t.exists(), "{} was removed", t.display());
    }
    assert_eq!(
        fs::read(&keep).unwrap(),
        b"not ours",
        "other files are left alone"
    );
    assert_eq!(ids(&worker), ["a"]);
}

#[test]
fn a_second_worker_is_refused_while_the_first_keeps_serving() {
    let dir = TestDir::new();
    let first = dir.start(&[]);
    assert_eq!(
        first.call(&json!({"op": "put", "id": "x", "data": 1}))["ok"],
        true
    );
    let (status, stderr) = dir.run_to_exit(&[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already owns"), "{stderr}");
    assert!(
        harness::names_number(&stderr, first.pid() as u64),
        "names pid {}:\n{stderr}",
        first.pid()
    );

    let mut c = first.connect();
    assert_eq!(c.call(&json!({"op": "ping"}))["pid"], first.pid());
    assert_eq!(
        c.call(&json!({"op": "get", "id": "x"}))["session"]["data"],
        1
    );
    assert_eq!(
        c.call(&json!({"op": "put", "id": "y", "data": 2}))["ok"],
        true
    );
}

#[test]
fn a_stale_socket_does_not_stop_a_new_worker() {
    let dir = TestDir::new();
    let mut first = dir.start(&[]);
    assert_eq!(
        first.call(&json!({"op": "put", "id": "x", "data": 1}))["ok"],
        true
    );
    first.kill();
    let meta = fs::symlink_metadata(dir.sock()).expect("SIGKILL left the socket file");
    assert!(meta.file_type().is_socket());
    assert!(
        UnixStream::connect(dir.sock()).is_err(),
        "nobody listens on it"
    );

    let second = dir.start(&[]);
    let mut c = second.connect();
    assert_eq!(c.call(&json!({"op": "ping"}))["pid"], second.pid());
    assert_eq!(
        c.call(&json!({"op": "get", "id": "x"}))["session"]["data"],
        1
    );
}

/// Every directory in `dir` (itself included) is 0700, every file and socket 0600.
fn assert_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            assert_private(&path);
        } else {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
        }
    }
}

#[test]
fn the_data_directory_and_everything_in_it_is_private() {
    let dir = TestDir::new();
    fs::remove_dir(&dir.data).unwrap();
    let mut worker = dir.start(&[]);
    assert!(dir.sock().exists());
    assert_eq!(
        worker.call(&json!({"op": "put", "id": "a", "data": 1}))["ok"],
        true
    );
    worker.signal(Signal::SIGUSR1);
    harness::wait_until(DEADLINE, "a checkpoint", || {
        (worker.call(&json!({"op": "stats"}))["checkpoints"].as_u64()? > 0).then_some(())
    });
    assert!(dir.sessions_json().exists());
    assert_private(&dir.data);
    worker.kill();

    // Set-aside files too; and a data dir left open to others is tightened.
    let journal = dir.journal_dir().join(&dir.journals()[0]);
    let mut bytes = fs::read(&journal).unwrap();
    bytes[HEADER_LEN..HEADER_LEN + 16].fill(0xee);
    fs::write(&journal, &bytes).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir.data, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let _worker = dir.start(&[]);
    assert_eq!(dir.names("damaged").len(), 1, "the garbage was set aside");
    assert_private(&dir.data);
}
