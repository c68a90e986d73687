//! Where one client's time goes: the floor of any socket server.
//!
//! One closed-loop client through the worker's socket reaches well under a
//! bare `pwrite` + `fdatasync` loop on a fast disk. These cells measure,
//! in the same run and with the same client code, how much of that gap a
//! server could close at all:
//!
//! - echo: a minimal blocking server in the (b) process (one thread, one
//!   connection) that reads each put line and answers it at once. Its
//!   round trip is the cost of the socket itself: two processes, two
//!   wake-ups (the server's, the client's), a read and a write each.
//! - sync on read: the same server, but it writes the line at a rotating
//!   offset of a preallocated file and syncs it (`shared::sync::data_sync`,
//!   held like every other sync at the lane's delay) before answering, on
//!   the thread that read it. No design that answers over a socket after a
//!   sync does less: it is the bare loop plus the echo.
//! - sync hand-off: the same, but the reading thread hands each line to a
//!   second thread that writes and syncs it and hands the result back
//!   (two `std` channels), as the worker's runtime hands writes to its
//!   journal writer. It is the least a server pays that keeps syncs off
//!   the threads that serve sockets.
//! - worker ping: the worker's own socket path with no store work.
//!
//! So `bare ÷ sync-on-read` is the most any socket server can reach of
//! the bare loop on this machine, and `worker put` against `sync
//! hand-off` is what the worker adds to the least its design costs.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use super::super::{connect, expect_ok, thread_cell, Measured, Slice, RECORD_BYTES};
use super::BARE_FILE;

/// The answer of both floor servers: what the worker answers a put.
const ANSWER: &[u8] = b"{\"ok\":true}\n";

/// What the floor server does with each line before answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Floor {
    /// Nothing.
    Echo,
    /// Writes it to a file and syncs that, on the thread that read it.
    SyncOnRead,
    /// Has a second thread write and sync it, and waits for that.
    SyncHandOff,
}

impl Floor {
    pub fn word(self) -> &'static str {
        match self {
            Floor::Echo => "echo",
            Floor::SyncOnRead => "sync",
            Floor::SyncHandOff => "handoff",
        }
    }

    pub fn from_word(word: &str) -> Floor {
        match word {
            "echo" => Floor::Echo,
            "sync" => Floor::SyncOnRead,
            "handoff" => Floor::SyncHandOff,
            other => panic!("unknown floor server {other:?}"),
        }
    }
}

/// Child side: listens on `path` and serves one connection on a thread of
/// its own until the client closes it. The socket exists on return.
pub fn listen(how: Floor, path: PathBuf, file: Arc<std::fs::File>) {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind the floor server's socket");
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept the floor client");
        let mut writer = stream.try_clone().expect("clone the floor stream");
        let mut reader = BufReader::new(stream);
        let mut pos = 0u64;
        let mut sync = move |line: &[u8]| {
            if pos + line.len() as u64 > BARE_FILE {
                pos = 0;
            }
            file.write_all_at(line, pos).expect("pwrite");
            shared::sync::data_sync(&file).expect("fdatasync");
            pos += line.len() as u64;
        };
        let mut line = Vec::with_capacity(2 * RECORD_BYTES);
        let mut read = move || {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(std::mem::take(&mut line)),
            }
        };
        let mut answer = move || writer.write_all(ANSWER).is_ok();
        match how {
            Floor::Echo => while read().is_some() && answer() {},
            Floor::SyncOnRead => {
                while let Some(line) = read() {
                    sync(&line);
                    if !answer() {
                        break;
                    }
                }
            }
            Floor::SyncHandOff => {
                let (to_syncer, lines) = mpsc::channel::<Vec<u8>>();
                let (to_reader, synced) = mpsc::channel::<()>();
                let syncer = std::thread::spawn(move || {
                    for line in lines {
                        sync(&line);
                        if to_reader.send(()).is_err() {
                            break;
                        }
                    }
                });
                while let Some(line) = read() {
                    to_syncer.send(line).expect("the syncing thread is gone");
                    synced.recv().expect("the syncing thread is gone");
                    if !answer() {
                        break;
                    }
                }
                drop(to_syncer);
                syncer.join().expect("the syncing thread panicked");
            }
        }
        let _ = std::fs::remove_file(&path);
    });
}

/// Bench side: one closed-loop client sending put lines to `sock`.
pub fn puts(slice: Slice, sock: &Path, sessions: usize) -> Measured {
    thread_cell(slice, 1, sessions, |_| {
        let mut client = connect(sock);
        move |id: String, data: String| {
            let line = format!(r#"{{"op":"put","id":"{id}","data":{data}}}"#);
            expect_ok(
                &client.call_line(&line).expect("put to the floor server"),
                "the floor server",
            );
        }
    })
}

/// Bench side: one closed-loop client sending `ping` to the worker.
pub fn pings(slice: Slice, sock: &Path, sessions: usize) -> Measured {
    thread_cell(slice, 1, sessions, |_| {
        let mut client = connect(sock);
        move |_: String, _: String| {
            expect_ok(&client.call_line(r#"{"op":"ping"}"#).expect("ping"), "ping");
        }
    })
}
