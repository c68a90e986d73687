//! A small blocking client for the session API, for the CLI and tests.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One connection to a worker socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects, with `timeout` on every read and write. A path too long
    /// for a socket is an error that names it.
    pub fn connect(socket: &Path, timeout: Duration) -> io::Result<Client> {
        crate::paths::check_socket_path(socket)?;
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one line (a newline is added) and reads one response line.
    pub fn call_line(&mut self, line: &str) -> io::Result<String> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.writer.write_all(&buf)?;
        let mut out = String::new();
        let n = self.reader.read_line(&mut out)?;
        if n == 0 || !out.ends_with('\n') {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the worker closed the connection before answering",
            ));
        }
        out.pop();
        Ok(out)
    }
}
