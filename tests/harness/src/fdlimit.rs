//! Open-file limits for the tests' child processes, and a burst of clients
//! that all hold a connection at the same time.

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use serde_json::{json, Value};

use super::{Conn, DEADLINE};

/// Raises this test process's own soft open-file limit (each `Conn` holds
/// two descriptors: the stream and its reader's clone) and checks that it
/// allows `need`.
pub fn raise_own_limit(need: u64) {
    let limit = shared::fdlimit::raise();
    assert!(
        limit.soft >= need,
        "this test holds about {need} open files, but its limit is {limit:?}: \
         raise the hard limit (`ulimit -Hn {need}`) and run it again"
    );
}

/// Starts `cmd` with a soft open-file limit of `soft`, keeping the hard
/// limit this process has (so the child may raise it again).
pub fn limit_soft(cmd: &mut Command, soft: u64) {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("read the open-file limit");
    assert!(
        hard > 2 * soft,
        "the hard open-file limit ({hard}) leaves no room above {soft} to raise to"
    );
    // SAFETY: the closure only makes the setrlimit system call.
    unsafe {
        cmd.pre_exec(move || Ok(setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?));
    }
}

/// Starts `cmd` with both open-file limits at `limit`: it cannot raise it.
pub fn limit_hard(cmd: &mut Command, limit: u64) {
    // SAFETY: the closure only makes the setrlimit system call.
    unsafe {
        cmd.pre_exec(move || Ok(setrlimit(Resource::RLIMIT_NOFILE, limit, limit)?));
    }
}

/// What a burst of clients saw.
#[derive(Default)]
pub struct Burst {
    /// Clients whose put and get were both answered as expected; their
    /// connections are still open.
    pub served: Vec<Conn>,
    /// Clients answered `unavailable` (and then closed by the server).
    pub unavailable: usize,
    /// Anything else: a failed connect, no answer, a reset before the
    /// answer, a wrong answer. One line each, naming the client.
    pub other: Vec<String>,
}

impl std::fmt::Debug for Burst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("served", &self.served.len())
            .field("unavailable", &self.unavailable)
            .field("other", &self.other)
            .finish()
    }
}

/// The id client `i` of a burst writes.
pub fn burst_id(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i}")
}

/// Connects `n` clients to the session socket `sock` one after the other
/// and keeps every connection open; then each sends a put, every answer
/// is read, and each served client sends a get of what it put. The served
/// connections are returned open: the caller decides when they close.
pub fn burst(sock: &Path, n: usize, prefix: &str) -> Burst {
    let mut out = Burst::default();
    // One deadline for the whole burst: a server that never answers costs
    // the test one `DEADLINE`, not one per client.
    let deadline = Instant::now() + DEADLINE;
    let patience = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10))
    };
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        match UnixStream::connect(sock) {
            Ok(stream) => open.push((i, Conn::from_stream(stream))),
            Err(e) => out.other.push(format!("client {i}: connect: {e}")),
        }
    }
    for (i, conn) in &mut open {
        let put = json!({"op": "put", "id": burst_id(prefix, *i), "data": {"n": *i}});
        // A refused client may find the connection closed already (EPIPE):
        // its `unavailable` answer is waiting to be read all the same.
        let _ = conn.send(put.to_string().as_bytes());
    }
    let mut put_ok = Vec::new();
    for (i, mut conn) in open {
        let id = burst_id(prefix, i);
        match answer(&mut conn, patience()) {
            Ok(a) if a["ok"] == true && a["session"]["id"] == id.as_str() => put_ok.push((i, conn)),
            Ok(a) if a["error"]["code"] == "unavailable" => out.unavailable += 1,
            Ok(a) => out.other.push(format!("client {i}: put answered {a}")),
            Err(e) => out.other.push(format!("client {i}: put: {e}")),
        }
    }
    for (i, conn) in &mut put_ok {
        let get = json!({"op": "get", "id": burst_id(prefix, *i)});
        if let Err(e) = conn.send(get.to_string().as_bytes()) {
            out.other.push(format!("client {i}: send get: {e}"));
        }
    }
    for (i, mut conn) in put_ok {
        match answer(&mut conn, patience()) {
            Ok(a) if a["session"]["data"] == json!({"n": i}) => out.served.push(conn),
            Ok(a) => out.other.push(format!("client {i}: get answered {a}")),
            Err(e) => out.other.push(format!("client {i}: get: {e}")),
        }
    }
    out
}

/// One answer line, parsed, waiting at most `patience`.
fn answer(conn: &mut Conn, patience: Duration) -> Result<Value, String> {
    conn.stream
        .set_read_timeout(Some(patience))
        .expect("set a read timeout");
    match conn.recv() {
        Ok(Some(line)) => {
            serde_json::from_str(&line).map_err(|e| format!("not JSON ({e}): {line}"))
        }
        Ok(None) => Err("closed without an answer".into()),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// The lines of `log` about failed accepts (see `shared::accept_log`).
pub fn accept_failure_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("accept failed on") || l.contains("accept still failing on"))
        .collect()
}
