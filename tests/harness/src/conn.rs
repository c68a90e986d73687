//! A line client of a worker (or control) socket.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::DEADLINE;

/// One connection to a worker socket: lines in, lines out.
pub struct Conn {
    reader: BufReader<UnixStream>,
    pub stream: UnixStream,
}

impl Conn {
    pub fn connect(sock: &Path) -> Conn {
        Conn::try_connect(sock).unwrap_or_else(|| panic!("connect to {}", sock.display()))
    }

    pub fn try_connect(sock: &Path) -> Option<Conn> {
        Some(Conn::from_stream(UnixStream::connect(sock).ok()?))
    }

    /// Wraps a connected stream (read and write time out after `DEADLINE`).
    pub fn from_stream(stream: UnixStream) -> Conn {
        Conn::with_timeout(stream, DEADLINE).expect("set up a socket: timeouts and a clone")
    }

    /// Connects to `sock`; reads and writes time out after `timeout`.
    pub fn open(sock: &Path, timeout: Duration) -> io::Result<Conn> {
        Conn::with_timeout(UnixStream::connect(sock)?, timeout)
    }

    /// Wraps a connected stream whose reads and writes time out after
    /// `timeout`.
    pub fn with_timeout(stream: UnixStream, timeout: Duration) -> io::Result<Conn> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            stream,
        })
    }

    /// Sends `line` plus a newline.
    pub fn send(&mut self, line: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.stream.write_all(&buf)
    }

    /// The next response line (without newline); `Ok(None)` at EOF.
    pub fn recv(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line.pop() != Some('\n') {
            let what = format!("the connection ended inside a response line: {line:?}");
            return Err(io::Error::new(ErrorKind::UnexpectedEof, what));
        }
        Ok(Some(line))
    }

    /// Sends one raw line and parses the one answer.
    pub fn call_raw(&mut self, line: &[u8]) -> Value {
        self.send(line).expect("send a request");
        let answer = self
            .recv()
            .expect("read an answer")
            .expect("an answer, not EOF");
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {answer}"))
    }

    pub fn call(&mut self, request: &Value) -> Value {
        self.call_raw(request.to_string().as_bytes())
    }

    /// Like `call`, but `None` on any I/O failure or EOF.
    pub fn try_call(&mut self, request: &Value) -> Option<Value> {
        self.send(request.to_string().as_bytes()).ok()?;
        serde_json::from_str(&self.recv().ok()??).ok()
    }
}

/// Whether a connect failed because nobody listens: the socket refused
/// (ECONNREFUSED) or is not there (ENOENT).
pub fn refused(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound)
}

/// Puts the small session `{"id": ID}` under `id`; the answer.
pub fn put_id(conn: &mut Conn, id: &str) -> Value {
    conn.call(&json!({"op": "put", "id": id, "data": {"id": id}}))
}

/// The ids a worker serves, sorted (`list`).
pub fn ids(conn: &mut Conn) -> Vec<String> {
    let list = conn.call(&json!({"op": "list"}));
    list["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|s| s["id"].as_str().expect("an id").to_string())
        .collect()
}
