//! The session API (README, "The protocol") and the worker's command line
//! ("Running the worker by hand"), against the real binary on a real
//! socket.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use harness::{wait_until, Conn, TestDir, DEADLINE};
use serde_json::{json, Value};

const MAX_LINE: usize = 1024 * 1024;

/// The object's keys, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort();
    k
}

/// `2026-11-24T06:00:00.123Z`: RFC 3339, UTC, milliseconds.
fn assert_timestamp(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
    let ok = b.len() == 24
        && digits.iter().all(|&i| b[i].is_ascii_digit())
        && (b[4], b[7], b[10], b[13], b[16], b[19], b[23])
            == (b'-', b'-', b'T', b':', b':', b'.', b'Z');
    assert!(ok, "not an RFC 3339 UTC timestamp: {s}");
}

/// A full `SESSION`: exactly its four keys, typed.
fn assert_session(s: &Value, id: &str, data: &Value) {
    assert_eq!(keys(s), ["created_at", "data", "id", "updated_at"], "{s}");
    assert_eq!(s["id"], id);
    assert_eq!(&s["data"], data);
    assert_timestamp(&s["created_at"]);
    assert_timestamp(&s["updated_at"]);
}

/// An `{"ok":false,"error":{"code","message"}}` answer with `code`.
fn assert_error(answer: &Value, code: &str) {
    assert_eq!(keys(answer), ["error", "ok"], "{answer}");
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(keys(&answer["error"]), ["code", "message"], "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    let message = answer["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.is_empty(), "{answer}");
}

fn put(conn: &mut Conn, id: &str, data: &Value) -> Value {
    let answer = conn.call(&json!({"op": "put", "id": id, "data": data}));
    assert_eq!(keys(&answer), ["ok", "session"], "{answer}");
    assert_eq!(answer["ok"], true);
    assert_session(&answer["session"], id, data);
    answer["session"].clone()
}

/// The commit in `worker --version`'s first line ("unknown" or 40 hex).
fn commit_from_version() -> String {
    let line = harness::version_line();
    let commit = line
        .strip_prefix(&format!("worker {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version line: {line:?}"));
    let is_sha = commit.len() == 40
        && commit
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    assert!(
        is_sha || commit == "unknown",
        "not a sha or \"unknown\": {line:?}"
    );
    commit.to_string()
}

#[test]
fn every_op_answers_the_documented_shapes() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();

    let pong = c.call(&json!({"op": "ping"}));
    assert_eq!(
        keys(&pong),
        ["commit", "ok", "pid", "store", "version"],
        "{pong}"
    );
    // Addition: the store's health (README).
    assert_eq!(
        keys(&pong["store"]),
        ["last_error", "since", "state"],
        "{pong}"
    );
    assert_eq!(pong["store"]["state"], "ok", "{pong}");
    assert!(pong["store"]["last_error"].is_null(), "{pong}");
    assert_eq!(pong["ok"], true);
    assert_eq!(pong["pid"], worker.pid());
    assert_eq!(pong["version"], env!("CARGO_PKG_VERSION"));
    match commit_from_version().as_str() {
        // A build outside a git checkout: no sha to report.
        "unknown" => assert!(
            pong["commit"].is_null() || pong["commit"] == "unknown",
            "{pong}"
        ),
        sha => assert_eq!(
            pong["commit"], sha,
            "ping reports the commit --version prints"
        ),
    }

    let stats = c.call(&json!({"op": "stats"}));
    assert_eq!(stats["ok"], true, "{stats}");
    assert_eq!(stats["count"], 0, "{stats}");
    assert_eq!(stats["store"], pong["store"], "{stats}");

    let data = json!({"title": "Planning", "n": 1.5, "tags": ["a", "é"], "nested": {"x": null}});
    let created = put(&mut c, "user-1", &data);
    assert_eq!(
        created["created_at"], created["updated_at"],
        "a new session: {created}"
    );
    for (id, data) in [
        ("s:2@host", json!(null)),
        ("s.3_x-y", json!([1, "two", false])),
        ("s4", json!("text")),
    ] {
        put(&mut c, id, &data);
    }

    let got = c.call(&json!({"op": "get", "id": "user-1"}));
    assert_eq!(keys(&got), ["ok", "session"], "{got}");
    assert_eq!(got["ok"], true);
    assert_eq!(got["session"], created, "get answers what put stored");

    let stats = c.call(&json!({"op": "stats"}));
    assert_eq!(stats["count"], 4, "{stats}");

    let done = c.call(&json!({"op": "delete", "id": "s4"}));
    assert_eq!(done, json!({"ok": true}));
    assert_error(&c.call(&json!({"op": "get", "id": "s4"})), "not_found");
    assert_error(&c.call(&json!({"op": "delete", "id": "s4"})), "not_found");
    assert_error(&c.call(&json!({"op": "get", "id": "never"})), "not_found");
    assert_eq!(c.call(&json!({"op": "stats"}))["count"], 3);

    let list = c.call(&json!({"op": "list"}));
    assert_eq!(keys(&list), ["ok", "sessions"], "{list}");
    let items = list["sessions"].as_array().expect("sessions is an array");
    assert_eq!(items.len(), 3, "{list}");
    for item in items {
        assert_eq!(keys(item), ["created_at", "id", "updated_at"], "{item}");
        assert_timestamp(&item["created_at"]);
        assert_timestamp(&item["updated_at"]);
    }
    let user = items
        .iter()
        .find(|i| i["id"] == "user-1")
        .expect("user-1 listed");
    assert_eq!(user["created_at"], created["created_at"]);
    assert_eq!(user["updated_at"], created["updated_at"]);
}

#[test]
fn put_keeps_created_at_and_moves_updated_at() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    let first = put(&mut c, "doc", &json!({"v": 0}));
    let mut n = 0;
    // Timestamps have millisecond resolution: replace until one lands later.
    let last = wait_until(DEADLINE, "updated_at to move", || {
        n += 1;
        let again = put(&mut c, "doc", &json!({"v": n}));
        assert_eq!(
            again["created_at"], first["created_at"],
            "a replace keeps created_at"
        );
        let (before, after) = (
            first["updated_at"].as_str().unwrap(),
            again["updated_at"].as_str().unwrap(),
        );
        assert!(after >= before, "updated_at went back: {before} -> {after}");
        (after > before).then_some(again)
    });
    let got = c.call(&json!({"op": "get", "id": "doc"}));
    assert_eq!(got["session"], last);
    assert_eq!(
        got["session"]["data"],
        json!({"v": n}),
        "the data was replaced"
    );
    assert_eq!(c.call(&json!({"op": "stats"}))["count"], 1);
}

#[test]
fn list_is_sorted_by_id_and_honours_prefix_and_limit() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    let ids = ["b", "a:2", "ab", "a", "c@x", "B", "a.1", "zz", "a-"];
    for id in ids {
        put(&mut c, id, &json!(id));
    }
    let listed = |c: &mut Conn, request: Value| -> Vec<String> {
        let answer = c.call(&request);
        assert_eq!(answer["ok"], true, "{request} -> {answer}");
        answer["sessions"]
            .as_array()
            .expect("sessions is an array")
            .iter()
            .map(|s| s["id"].as_str().expect("id is a string").to_string())
            .collect()
    };
    let mut sorted: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(listed(&mut c, json!({"op": "list"})), sorted);
    assert_eq!(
        listed(&mut c, json!({"op": "list", "prefix": "a"})),
        ["a", "a-", "a.1", "a:2", "ab"]
    );
    assert_eq!(
        listed(&mut c, json!({"op": "list", "limit": 2})),
        ["B", "a"]
    );
    assert_eq!(
        listed(&mut c, json!({"op": "list", "prefix": "a", "limit": 3})),
        ["a", "a-", "a.1"]
    );
    assert_eq!(
        listed(&mut c, json!({"op": "list", "prefix": "a:"})),
        ["a:2"]
    );
    assert_eq!(
        listed(&mut c, json!({"op": "list", "prefix": "nothing"})),
        Vec::<String>::new()
    );
    assert_eq!(
        listed(&mut c, json!({"op": "list", "limit": 0})),
        Vec::<String>::new()
    );
    assert_eq!(listed(&mut c, json!({"op": "list", "limit": 1000})), sorted);
}

#[test]
fn pipelined_requests_are_answered_in_order_and_extra_fields_are_ignored() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    let mut batch = Vec::new();
    for i in 0..50 {
        writeln!(
            batch,
            r#"{{"op":"put","id":"k{i}","data":{i},"extra":{{"ignored":true}}}}"#
        )
        .unwrap();
        writeln!(batch, r#"{{"op":"get","id":"k{i}","also":"ignored"}}"#).unwrap();
    }
    writeln!(batch, r#"{{"op":"stats","x":1}}"#).unwrap();
    c.stream.write_all(&batch).expect("send the batch");
    for i in 0..50 {
        for what in ["put", "get"] {
            let line = c.recv().expect("read").expect("an answer");
            let answer: Value = serde_json::from_str(&line).expect("JSON");
            assert_eq!(answer["ok"], true, "{what} k{i}: {answer}");
            assert_session(&answer["session"], &format!("k{i}"), &json!(i));
        }
    }
    let stats: Value = serde_json::from_str(&c.recv().unwrap().unwrap()).unwrap();
    assert_eq!(stats["count"], 50, "{stats}");
}

#[test]
fn bad_requests_get_bad_request_and_the_connection_keeps_serving() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    put(&mut c, "exists", &json!(1));
    let long_id = "x".repeat(257);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("empty line", b"".to_vec()),
        ("not JSON", b"hello".to_vec()),
        ("unfinished JSON", br#"{"op":"ping""#.to_vec()),
        ("an array", br#"["ping"]"#.to_vec()),
        ("null", b"null".to_vec()),
        ("a string", br#""ping""#.to_vec()),
        (
            "invalid UTF-8 in a string",
            b"{\"op\":\"get\",\"id\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "invalid UTF-8 outside strings",
            b"\xc3\x28{\"op\":\"ping\"}".to_vec(),
        ),
        ("unknown op", br#"{"op":"explode"}"#.to_vec()),
        ("missing op", br#"{"id":"exists"}"#.to_vec()),
        ("op not a string", br#"{"op":5}"#.to_vec()),
        ("op null", br#"{"op":null}"#.to_vec()),
        ("get without id", br#"{"op":"get"}"#.to_vec()),
        ("delete without id", br#"{"op":"delete"}"#.to_vec()),
        ("put without id", br#"{"op":"put","data":1}"#.to_vec()),
        (
            "put without data",
            br#"{"op":"put","id":"exists"}"#.to_vec(),
        ),
        ("id a number", br#"{"op":"get","id":5}"#.to_vec()),
        ("id null", br#"{"op":"get","id":null}"#.to_vec()),
        (
            "id an object",
            br#"{"op":"put","id":{"a":1},"data":1}"#.to_vec(),
        ),
        ("limit negative", br#"{"op":"list","limit":-1}"#.to_vec()),
        ("limit a string", br#"{"op":"list","limit":"3"}"#.to_vec()),
        ("limit fractional", br#"{"op":"list","limit":1.5}"#.to_vec()),
        ("prefix a number", br#"{"op":"list","prefix":3}"#.to_vec()),
        ("empty id", br#"{"op":"get","id":""}"#.to_vec()),
        ("id with a space", br#"{"op":"get","id":"a b"}"#.to_vec()),
        (
            "id with a slash",
            br#"{"op":"put","id":"../etc","data":1}"#.to_vec(),
        ),
        (
            "id with a non-ASCII letter",
            r#"{"op":"get","id":"é"}"#.as_bytes().to_vec(),
        ),
        ("id with a newline", br#"{"op":"get","id":"a\nb"}"#.to_vec()),
        ("id with NUL", br#"{"op":"delete","id":"a\u0000"}"#.to_vec()),
        (
            "id with a plus",
            br#"{"op":"put","id":"a+b","data":1}"#.to_vec(),
        ),
        (
            "id of 257 characters",
            format!(r#"{{"op":"get","id":"{long_id}"}}"#).into_bytes(),
        ),
    ];
    for (what, line) in &bad {
        let answer = c.call_raw(line);
        assert_error(&answer, "bad_request");
        let pong = c.call(&json!({"op": "ping"}));
        assert_eq!(
            pong["ok"], true,
            "after {what}, the same connection answers ping: {pong}"
        );
    }
    // Nothing bad was stored, and what was stored is intact.
    let list = c.call(&json!({"op": "list"}));
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        c.call(&json!({"op": "get", "id": "exists"}))["session"]["data"],
        1
    );
}

#[test]
fn ids_at_the_limits_are_accepted() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    let longest = "y".repeat(256);
    for id in ["a", "AZaz09._-:@", "...", "@", longest.as_str()] {
        put(&mut c, id, &json!({"id": id}));
        let got = c.call(&json!({"op": "get", "id": id}));
        assert_session(&got["session"], id, &json!({"id": id}));
    }
}

const PUT_HEAD: &[u8] = br#"{"op":"put","id":"big","data":""#;
const PUT_TAIL: &[u8] = br#""}"#;

/// `{"op":"put","id":"big","data":"xxx…"}` exactly `len` bytes long.
fn put_line_of(len: usize) -> Vec<u8> {
    let mut line = PUT_HEAD.to_vec();
    line.resize(len - PUT_TAIL.len(), b'x');
    line.extend_from_slice(PUT_TAIL);
    assert_eq!(line.len(), len);
    line
}

#[test]
fn a_request_line_of_exactly_one_mib_is_accepted() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    let answer = c.call_raw(&put_line_of(MAX_LINE));
    assert_eq!(answer["ok"], true, "code {}", answer["error"]);
    let stored = answer["session"]["data"]
        .as_str()
        .expect("data is the string");
    assert_eq!(stored.len(), MAX_LINE - PUT_HEAD.len() - PUT_TAIL.len());
    assert!(stored.bytes().all(|b| b == b'x'));
    assert_eq!(
        c.call(&json!({"op": "ping"}))["ok"],
        true,
        "the connection stays open"
    );
}

#[test]
fn a_request_line_over_one_mib_gets_too_large_then_the_connection_closes() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    c.call(&json!({"op": "ping"}));
    let answer = c.call_raw(&put_line_of(MAX_LINE + 1));
    assert_error(&answer, "too_large");
    match c.recv() {
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to close after too_large, got {other:?}"),
    }
    // Nothing was stored, and the worker serves others.
    assert_error(
        &worker.call(&json!({"op": "get", "id": "big"})),
        "not_found",
    );
    assert_eq!(worker.call(&json!({"op": "ping"}))["pid"], worker.pid());
}

#[test]
fn three_hundred_idle_connections_do_not_stop_other_clients() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut idle: Vec<Conn> = (0..300).map(|_| worker.connect()).collect();
    let mut c = worker.connect();
    put(&mut c, "busy", &json!("still served"));
    assert_eq!(
        c.call(&json!({"op": "get", "id": "busy"}))["session"]["data"],
        "still served"
    );
    wait_until(DEADLINE, "301 open connections in stats", || {
        let stats = c.call(&json!({"op": "stats"}));
        (stats["connections"].as_u64()? >= 301).then_some(())
    });
    assert_eq!(
        worker.call(&json!({"op": "ping"}))["ok"],
        true,
        "a new connection is served"
    );
    for (i, conn) in idle.iter_mut().enumerate() {
        assert_eq!(
            conn.call(&json!({"op": "ping"}))["ok"],
            true,
            "idle connection {i}"
        );
    }
}

#[test]
fn connections_over_the_limit_are_refused_with_unavailable() {
    let dir = TestDir::new();
    let worker = dir.start(&["--max-connections", "2"]);
    let mut first = worker.connect();
    // The readiness probe's connection may still be winding down.
    wait_until(DEADLINE, "the first connection to be the only one", || {
        (first.call(&json!({"op": "stats"}))["connections"] == 1).then_some(())
    });
    let mut second = worker.connect();
    assert_eq!(second.call(&json!({"op": "ping"}))["ok"], true);
    let mut third = worker.connect();
    let line = third
        .recv()
        .expect("read")
        .expect("an answer before the close");
    assert_error(&serde_json::from_str(&line).unwrap(), "unavailable");
    assert!(
        matches!(third.recv(), Ok(None)),
        "then the connection closes"
    );
    drop(first);
    wait_until(DEADLINE, "a slot to free up", || {
        Conn::try_connect(&worker.sock)?.try_call(&json!({"op": "ping"}))?["ok"]
            .as_bool()?
            .then_some(())
    });
    assert_eq!(second.call(&json!({"op": "ping"}))["ok"], true);
}

#[test]
fn a_user_other_than_the_data_dir_owner_gets_no_answer() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to give the data directory to another user");
        return;
    }
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    let dir = TestDir::new();
    nix::unistd::chown(&dir.data, Some(nobody), Some(nogroup)).expect("chown the data dir");
    let mut worker = dir.spawn(&[]);
    wait_until(DEADLINE, "the worker to log that it is ready", || {
        if let Some(status) = worker.try_exit() {
            panic!("the worker exited ({status}):\n{}", worker.stderr());
        }
        worker.stderr().contains("worker ready").then_some(())
    });

    // Root is not the owner: the connection is closed without an answer.
    let mut c = worker.connect();
    let _ = c.send(br#"{"op":"ping"}"#);
    match c.recv() {
        Ok(None) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("root got {other:?} instead of a closed connection"),
    }

    // The owner is answered (the socket is 0600, so hand it over first).
    std::fs::set_permissions(dir.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(&dir.sock(), Some(nobody), Some(nogroup)).expect("chown the socket");
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("--data-dir")
        .arg(&dir.data)
        .args(["call", "ping"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run worker call as uid 65534");
    assert!(out.status.success(), "the owner is served: {out:?}");
    let pong: Value = serde_json::from_slice(&out.stdout).expect("ping printed JSON");
    assert_eq!(pong["pid"], worker.pid());
}

#[test]
fn worker_call_exit_codes() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let call = |args: &[&str]| {
        let (mut cmd, _) = dir.command(&["call"]);
        cmd.args(args).stdout(std::process::Stdio::piped());
        let out = cmd.output().expect("run worker call");
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        (out.status.code(), stdout)
    };
    let (code, out) = call(&["ping"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["pid"],
        worker.pid()
    );
    assert_eq!(call(&["put", "cli", r#"{"a":[1,2]}"#]).0, Some(0));
    let (code, out) = call(&["get", "cli"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["session"]["data"],
        json!({"a": [1, 2]})
    );
    let (code, out) = call(&["list", "--prefix", "c", "--limit", "1"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["sessions"][0]["id"],
        "cli"
    );
    assert_eq!(call(&["stats"]).0, Some(0));
    assert_eq!(call(&["get", "missing"]).0, Some(1));
    assert_eq!(call(&["raw", "not json"]).0, Some(1));
    assert_eq!(call(&["delete", "cli"]).0, Some(0));
    assert_eq!(call(&["delete", "cli"]).0, Some(1));

    let empty = TestDir::new();
    let (mut cmd, _) = empty.command(&["call", "ping"]);
    assert_eq!(
        cmd.output().unwrap().status.code(),
        Some(3),
        "no worker answers"
    );
}

#[test]
fn an_invalid_rust_log_exits_2_naming_the_variable() {
    let dir = TestDir::new();
    let (mut cmd, log) = dir.command(&[]);
    cmd.env("RUST_LOG", "[[[");
    let (status, stderr) = harness::run_to_exit(cmd, log, dir.sock());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
    assert!(!dir.sock().exists(), "it did not start serving");
}

#[test]
fn an_empty_data_dir_exits_2_naming_the_flag_or_variable() {
    let dir = TestDir::new();
    let (mut cmd, log) = dir.bare_command(&["--data-dir", ""]);
    cmd.env("SECOND_BRAIN_DATA_DIR", dir.data.as_os_str());
    let (status, stderr) = harness::run_to_exit(cmd, log, dir.sock());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--data-dir"), "{stderr}");

    let (mut cmd, log) = dir.bare_command(&[]);
    cmd.env("SECOND_BRAIN_DATA_DIR", "");
    let (status, stderr) = harness::run_to_exit(cmd, log, dir.sock());
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SECOND_BRAIN_DATA_DIR"), "{stderr}");

    let (status, stderr) = dir.run_to_exit(&["--compact-min-bytes", "lots"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--compact-min-bytes"), "{stderr}");
}

#[test]
fn the_data_dir_flag_beats_the_environment_variable() {
    let dir = TestDir::new();
    let other = dir.root().join("from-env");
    let (mut cmd, log) = dir.command(&[]);
    cmd.env("SECOND_BRAIN_DATA_DIR", &other);
    let mut worker = harness::Worker::spawn(cmd, log, dir.sock());
    worker.wait_ready();
    assert!(!other.exists(), "the variable was not used");

    let (mut cmd, log) = dir.bare_command(&[]);
    cmd.env("SECOND_BRAIN_DATA_DIR", &other);
    let mut from_env = harness::Worker::spawn(cmd, log, other.join("worker.sock"));
    from_env.wait_ready();
    assert_ne!(from_env.pid(), worker.pid());
}

#[test]
fn version_prints_name_semver_and_commit() {
    let line = harness::version_line();
    let commit = commit_from_version();
    assert_eq!(
        line,
        format!("worker {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
    let help = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
}

#[test]
fn an_answer_is_not_held_back_by_the_start_of_the_next_request() {
    let dir = TestDir::new();
    let worker = dir.start(&[]);
    let mut c = worker.connect();
    // A whole request, then the first half of the next one in the same write:
    // the whole one must be answered without waiting for the rest.
    c.stream
        .write_all(b"{\"op\":\"ping\"}\n{\"op\":\"pi")
        .expect("send");
    c.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let first = c.recv();
    assert!(
        matches!(&first, Ok(Some(line)) if line.contains("\"pid\"")),
        "the complete request was not answered: {first:?}"
    );
    c.stream.write_all(b"ng\"}\n").unwrap();
    assert!(matches!(c.recv(), Ok(Some(line)) if line.contains("\"pid\"")));
}

#[test]
fn unusual_but_valid_json_data_is_kept_and_survives_restarts() {
    let dir = TestDir::new();
    let mut worker = dir.start(&[]);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases = [
        ("deep", deep.as_str()),
        ("huge-exponent", "1e400"),
        ("big-integer", "123456789012345678901234567890"),
        ("duplicate-keys", r#"{"a":1,"a":2}"#),
        ("escapes", r#""tab\t quote\" é \u2028 \ud83d\ude00""#),
    ];
    let stored = |worker: &harness::Worker, id: &str| -> String {
        let mut c = worker.connect();
        c.send(json!({"op": "get", "id": id}).to_string().as_bytes())
            .unwrap();
        c.recv().unwrap().expect("an answer")
    };
    let mut c = worker.connect();
    for (id, raw) in cases {
        c.send(format!(r#"{{"op":"put","id":"{id}","data":{raw}}}"#).as_bytes())
            .unwrap();
        let answer = c.recv().unwrap().expect("an answer");
        assert!(
            answer.starts_with(r#"{"ok":true"#),
            "{id}: {}",
            &answer[..answer.len().min(200)]
        );
    }
    // From the journal after a crash, then from sessions.json after a stop.
    for round in ["after SIGKILL", "after SIGTERM"] {
        if round == "after SIGKILL" {
            worker.kill();
        } else {
            worker.signal(nix::sys::signal::Signal::SIGTERM);
            assert_eq!(worker.wait_exit(DEADLINE).code(), Some(0));
        }
        worker = dir.start(&[]);
        for (id, raw) in cases {
            let line = stored(&worker, id);
            assert!(
                line.contains(&format!(r#""data":{raw},"#)),
                "{id} {round}: {}",
                &line[..line.len().min(200)]
            );
        }
    }
}
