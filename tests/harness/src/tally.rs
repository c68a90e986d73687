//! What a client loop counts: answered, refused and failed requests, and
//! the one request that reconnects when a worker closed its connection.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::{refused, Conn};

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

/// What one request of a client loop came to.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The `ok` answer; `None` when the request failed or was refused.
    pub answer: Option<Value>,
    /// Sent a second time after the connection closed unanswered.
    pub retried: bool,
}

/// One request on `conn`, reconnecting once when the connection was closed
/// before any answer (a worker being replaced closes kept-alive connections
/// between requests; a request it did not answer was not executed).
pub fn request(sock: &Path, conn: &mut Option<Conn>, req: &Value, tally: &Tally) -> Option<Value> {
    request_line(sock, conn, req.to_string().as_bytes(), tally).answer
}

/// [`request`] of a line serialized beforehand (without its newline), so
/// that a bench times the exchange alone; also says whether it was retried.
/// Counted in `tally`: an ok answer, a refused connect (not retried), a
/// failure (an error answer, another connect error, or no answer after the
/// one retry), a retry.
pub fn request_line(sock: &Path, conn: &mut Option<Conn>, line: &[u8], tally: &Tally) -> Outcome {
    let mut retried = false;
    let failed = |retried| {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        Outcome {
            answer: None,
            retried,
        }
    };
    for attempt in 0..2 {
        if conn.is_none() {
            match UnixStream::connect(sock) {
                Ok(stream) => *conn = Some(Conn::from_stream(stream)),
                Err(e) if refused(&e) => {
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    return Outcome {
                        answer: None,
                        retried,
                    };
                }
                Err(_) => return failed(retried),
            }
        }
        let Some(c) = conn.as_mut() else {
            return failed(retried);
        };
        let sent = c.send(line);
        match (sent, c.recv()) {
            (Ok(()), Ok(Some(line))) => {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {line}"));
                if v["ok"] == true {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    return Outcome {
                        answer: Some(v),
                        retried,
                    };
                }
                eprintln!("error answer: {v}");
                return failed(retried);
            }
            _ => {
                *conn = None;
                if attempt == 0 {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                    retried = true;
                }
            }
        }
    }
    failed(retried)
}
