//! Writing a connection's answers: buffered in chunks, and only for as
//! long as the client keeps reading them.

use std::time::Duration;

use shared::protocol::{ApiError, ErrorCode, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::OUT_CHUNK;

/// Writing one batch of answers may take this many write timeouts.
const WHOLE_WRITE_STALLS: u32 = 4;

/// A connection's socket and the answers not yet written to it.
pub(super) struct Out {
    pub stream: UnixStream,
    pub buf: Vec<u8>,
    pub write_timeout: Duration,
}

impl Out {
    /// Writes what is buffered; an error if the client stalls (see
    /// [`write_within`]). A large buffer is let go afterwards.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = write_within(&mut self.stream, &self.buf, self.write_timeout).await;
        self.buf.clear();
        if self.buf.capacity() > 2 * OUT_CHUNK {
            self.buf = Vec::new();
        }
        result
    }

    /// Writes `bytes` after what is buffered; a large slice is written
    /// from where it is, not copied.
    pub async fn write_through(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() < OUT_CHUNK {
            return self.push(bytes).await;
        }
        self.flush().await?;
        write_within(&mut self.stream, bytes, self.write_timeout).await
    }

    /// Adds `bytes`, writing once a chunk has gathered.
    pub async fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= OUT_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    /// One error answer, written at once.
    pub async fn error(&mut self, code: ErrorCode, message: String) -> std::io::Result<()> {
        self.buf
            .extend_from_slice(&Response::Error(ApiError::new(code, message)).to_line());
        self.flush().await
    }
}

/// Writes all of `bytes`. Each write must make progress within `stall`
/// (a slow reader is not a stalled one), and the whole within
/// [`WHOLE_WRITE_STALLS`] times that (nor may a reader that takes a byte
/// now and then hold an answer forever).
async fn write_within(
    stream: &mut UnixStream,
    bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let write_all = async {
        let mut done = 0;
        while done < bytes.len() {
            match tokio::time::timeout(stall, stream.write(&bytes[done..])).await {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => done += n,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(stalled(stall)),
            }
        }
        Ok(())
    };
    match tokio::time::timeout(stall * WHOLE_WRITE_STALLS, write_all).await {
        Ok(r) => r,
        Err(_) => Err(stalled(stall)),
    }
}

fn stalled(timeout: Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the client read none of its answers for {} ms; closing",
            timeout.as_millis()
        ),
    )
}
