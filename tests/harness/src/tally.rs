//! What a client loop counts: answered, refused and failed requests, and
//! the one request that reconnects when a worker closed its connection.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::Conn;

/// What a client loop saw.
#[derive(Default, Debug)]
pub struct Tally {
    pub ok: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

impl Tally {
    /// Asserts that no connection was refused and no request failed.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.refused.load(Ordering::Relaxed),
            0,
            "refused connections: {self:?}"
        );
        assert_eq!(
            self.failed.load(Ordering::Relaxed),
            0,
            "failed requests: {self:?}"
        );
    }
}

/// One request on `conn`, reconnecting once when the connection was closed
/// before any answer (a worker being replaced closes kept-alive connections
/// between requests; a request it did not answer was not executed).
pub fn request(sock: &Path, conn: &mut Option<Conn>, req: &Value, tally: &Tally) -> Option<Value> {
    for attempt in 0..2 {
        if conn.is_none() {
            match std::os::unix::net::UnixStream::connect(sock) {
                Ok(stream) => *conn = Some(Conn::from_stream(stream)),
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) =>
                {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                Err(_) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let sent = c.send(req.to_string().as_bytes());
        match (sent, c.recv()) {
            (Ok(()), Ok(Some(line))) => {
                let v: Value = serde_json::from_str(&line).unwrap();
                if v["ok"] == true {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    return Some(v);
                }
                tally.failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("error answer: {v}");
                return None;
            }
            _ => {
                *conn = None;
                if attempt == 0 {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    tally.failed.fetch_add(1, Ordering::Relaxed);
    None
}
