//! Checks one crash state with the real worker: write the state to a fresh
//! directory, start `worker --data-dir` on it, and compare every session
//! it serves with what clients were told before the cut.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::expect::{History, Kind, Problem};
use super::fs::View;
use super::ops::Pos;
use harness::{temp_dir, wait_until, worker_bin, Conn, Worker, DEADLINE};

/// Where the data directory is below the traced root.
pub const DATA: &str = "d";

/// Problems found in one state; empty if it is fine.
pub fn check(view: &View, horizon: Option<Pos>, history: &History) -> Vec<Problem> {
    let tmp = temp_dir();
    let root = tmp.path().join("r");
    std::fs::create_dir(&root).expect("create the state's root");
    if let Err(e) = view.write_to(&root) {
        let text = format!("cannot write the state to {}: {e}", root.display());
        return vec![Problem::new(Kind::Other, text)];
    }
    let data = root.join(DATA);
    let log = tmp.path().join("worker.stderr");
    let mut cmd = Command::new(worker_bin());
    cmd.arg("--data-dir")
        .arg(&data)
        .env_remove("SECOND_BRAIN_DATA_DIR");
    for name in shared::launch::LAUNCH_ENV {
        cmd.env_remove(name);
    }
    cmd.env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log file"));
    let mut worker = Worker::spawn(cmd, log, data.join("worker.sock"));
    let started = wait_until(DEADLINE, "the worker to answer ping or exit", || {
        if let Some(status) = worker.try_exit() {
            return Some(Err(status));
        }
        let answer = Conn::try_connect(&worker.sock)?.try_call(&json!({"op": "ping"}))?;
        (answer["ok"] == true).then_some(Ok(()))
    });
    if let Err(status) = started {
        let log = worker.stderr();
        let last = log
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let text = format!("the worker did not start ({status}): {last}");
        return vec![Problem::new(Kind::DidNotStart, text)];
    }
    let problems = compare(&worker.sock, horizon, history);
    drop(worker);
    problems
}

/// Lists and reads every session, and judges each against `history`.
fn compare(sock: &Path, horizon: Option<Pos>, history: &History) -> Vec<Problem> {
    let mut conn = Conn::connect(sock);
    let listed = conn.call(&json!({"op": "list"}));
    let mut problems = Vec::new();
    let mut ids: Vec<String> = history.by_id.keys().cloned().collect();
    for s in listed["sessions"]
        .as_array()
        .expect("list answers sessions")
    {
        let id = s["id"].as_str().expect("sessions have ids").to_string();
        if !history.by_id.contains_key(&id) {
            let text = format!("session {id} exists, but no client ever wrote it");
            problems.push(Problem::new(Kind::Unsent, text));
            ids.push(id);
        }
    }
    for chunk in ids.chunks(64) {
        for id in chunk {
            conn.send(json!({"op": "get", "id": id}).to_string().as_bytes())
                .expect("send a get");
        }
        for id in chunk {
            let line = conn
                .recv()
                .expect("read an answer")
                .expect("an answer, not EOF");
            let answer: Value = serde_json::from_str(&line).expect("answers are JSON");
            let found = if answer["ok"] == true {
                Some(answer["session"]["data"].clone())
            } else if answer["error"]["code"] == "not_found" {
                None
            } else {
                let text = format!("session {id}: get answered {answer}");
                problems.push(Problem::new(Kind::Other, text));
                continue;
            };
            if let Some(p) = history.problem(id, horizon, found.as_ref()) {
                problems.push(p);
            }
        }
    }
    problems
}
