//! The client side of the control socket: `supervisor status`, `restart`
//! and `update` send one request line and read one answer line.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::protocol::ControlRequest;

/// Client side: sends one request and reads the answer (blocking).
pub fn request(
    sock: &Path,
    request: &ControlRequest,
    timeout: Option<Duration>,
) -> std::io::Result<Value> {
    use std::io::{BufRead, Write};
    shared::paths::check_socket_path(sock)?;
    let mut stream = std::os::unix::net::UnixStream::connect(sock)?;
    stream.set_read_timeout(timeout)?;
    stream.write_all(format!("{}\n", request.to_line()).as_bytes())?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the supervisor answered something that is not JSON: {e}"),
        )
    })
}

/// Asks for the status. A connection closed before the answer (the
/// supervisor was replacing itself in place at that moment) is retried:
/// asking for the status twice is harmless.
pub fn status(sock: &Path) -> std::io::Result<Value> {
    let ask = || request(sock, &ControlRequest::Status, Some(Duration::from_secs(5)));
    let mut last = ask();
    for _ in 0..3 {
        match &last {
            Err(e)
                if e.kind() == std::io::ErrorKind::InvalidData
                    || e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                last = ask();
            }
            _ => break,
        }
    }
    last
}
