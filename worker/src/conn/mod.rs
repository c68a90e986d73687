//! One client connection: reads request lines within the shared budget,
//! answers them in order, and lets go of clients that stall.
//!
//! What a connection may hold (README "Limits"):
//! - request bytes: [`CONNECTION_BUFFER`] of its own; a longer request
//!   waits for a [`LARGE_REQUEST`] slot of the shared budget and is not
//!   read until it has one; the buffer shrinks back once it is answered;
//! - answers: one chunk of [`OUT_CHUNK`] bytes at a time (a `list` is
//!   written page by page, a session's data straight from the store's
//!   copy), and only for as long as the client keeps reading (the write
//!   timeout);
//! - time: a request line must be complete within the idle timeout.

use std::time::Duration;

use shared::protocol::{ApiError, ErrorCode, Request, Response, MAX_LINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

mod answers;

use crate::limits::{LargeRequest, CONNECTION_BUFFER, LARGE_REQUEST};
use crate::server::{answer, Shared};
use crate::store::Store;

/// Answers are written in chunks of about this size.
pub const OUT_CHUNK: usize = 64 * 1024;

/// Writing one batch of answers may take this many write timeouts.
const WHOLE_WRITE_STALLS: u32 = 4;

/// How long a stopping worker waits for the first request of a
/// connection it has accepted but not yet heard from.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(200);

/// A connection's socket and the answers not yet written to it.
struct Out {
    stream: UnixStream,
    buf: Vec<u8>,
    write_timeout: Duration,
}

impl Out {
    /// Writes what is buffered; an error if the client stalls (see
    /// [`write_within`]). A large buffer is let go afterwards.
    async fn flush(&mut self) -> std::io::Result<()> {
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
    async fn write_through(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.len() < OUT_CHUNK {
            return self.push(bytes).await;
        }
        self.flush().await?;
        write_within(&mut self.stream, bytes, self.write_timeout).await
    }

    /// Adds `bytes`, writing once a chunk has gathered.
    async fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= OUT_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    /// One error answer, written at once.
    async fn error(&mut self, code: ErrorCode, message: String) -> std::io::Result<()> {
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

/// What reading more of a request came to.
enum Read {
    /// Some bytes arrived.
    More,
    /// The peer closed, or the worker is stopping and nothing more came.
    End,
    /// The idle timeout passed.
    Idle,
}

/// Serves one connection until the client closes it, it stalls, or the
/// worker stops (answering first what has already arrived).
pub async fn serve(
    stream: UnixStream,
    store: &Store,
    mut shutdown: watch::Receiver<bool>,
    shared: &Shared,
) -> std::io::Result<()> {
    let idle = shared.options.idle_timeout;
    let mut out = Out {
        stream,
        buf: Vec::new(),
        write_timeout: shared.options.write_timeout,
    };
    // Pending request bytes: `buf[start..]`; `scanned` of them are known
    // to hold no newline.
    let mut buf: Vec<u8> = Vec::with_capacity(CONNECTION_BUFFER);
    let (mut start, mut scanned) = (0usize, 0usize);
    let mut large: Option<LargeRequest> = None;
    let mut answered = false;
    let mut answered_since_read = false;
    let mut deadline = Instant::now() + idle;
    loop {
        if let Some(i) = buf[start + scanned..].iter().position(|b| *b == b'\n') {
            let end = start + scanned + i;
            respond(&mut out, store, shared, &buf[start..end]).await?;
            (start, scanned) = (end + 1, 0);
            answered = true;
            answered_since_read = true;
            continue;
        }
        scanned = buf.len() - start;
        out.flush().await?;
        if answered_since_read {
            // The idle clock starts once the answers are out.
            deadline = Instant::now() + idle;
            answered_since_read = false;
        }
        if start > 0 {
            buf.drain(..start);
            start = 0;
        }
        if buf.len() > MAX_LINE {
            let message =
                format!("request line longer than {MAX_LINE} bytes; closing the connection");
            out.error(ErrorCode::TooLarge, message).await?;
            discard_rest(&mut out.stream, &mut buf).await;
            break;
        }
        if buf.len() <= CONNECTION_BUFFER && buf.capacity() > CONNECTION_BUFFER {
            // Back to the connection's own buffer; the slot goes back.
            let mut small = Vec::with_capacity(CONNECTION_BUFFER);
            small.extend_from_slice(&buf);
            buf = small;
            large = None;
        }
        if buf.len() == buf.capacity() {
            if large.is_none() {
                let waited = Instant::now();
                tokio::select! {
                    slot = shared.options.budget.reserve() => large = Some(slot),
                    _ = stopping(&mut shutdown) => break,
                }
                // Waiting for the budget is not the client's idleness.
                deadline += waited.elapsed();
            }
            let room = (buf.capacity() * 2).min(CONNECTION_BUFFER + LARGE_REQUEST);
            buf.reserve_exact(room - buf.len());
        }
        let read = if *shutdown.borrow() {
            // Stopping: answer what has already arrived. A connection that
            // has not sent its first request yet was just accepted, so its
            // request is on the way: give it a moment rather than close it.
            let grace = if answered || !buf.is_empty() {
                Duration::ZERO
            } else {
                FIRST_REQUEST_GRACE
            };
            match tokio::time::timeout(grace, out.stream.read_buf(&mut buf)).await {
                Ok(n) => more(n?),
                Err(_) => Read::End,
            }
        } else {
            tokio::select! {
                n = tokio::time::timeout_at(deadline, out.stream.read_buf(&mut buf)) => match n {
                    Ok(n) => more(n?),
                    Err(_) => Read::Idle,
                },
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        match read {
            Read::More => {}
            Read::End => break,
            Read::Idle => {
                if !buf.is_empty() {
                    let message = format!(
                        "the request line did not end within {} ms; closing the connection",
                        idle.as_millis()
                    );
                    out.error(ErrorCode::BadRequest, message).await?;
                }
                debug!(
                    idle_ms = idle.as_millis() as u64,
                    "closed an idle connection"
                );
                break;
            }
        }
    }
    drop(large);
    out.flush().await?;
    out.stream.shutdown().await
}

fn more(n: usize) -> Read {
    if n == 0 {
        Read::End
    } else {
        Read::More
    }
}

/// Resolves once the worker is stopping (or its stop channel is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Answers one request line into `out`.
async fn respond(
    out: &mut Out,
    store: &Store,
    shared: &Shared,
    line: &[u8],
) -> std::io::Result<()> {
    match Request::parse(line) {
        Ok(Request::List { prefix, limit }) => {
            answers::list(out, store, prefix.as_deref(), limit).await
        }
        Ok(request) => match answer(store, request, shared).await {
            Response::Session(session) => answers::session(out, &session).await,
            other => out.push(&other.to_line()).await,
        },
        Err(e) => out.push(&Response::from(e).to_line()).await,
    }
}

/// Discards the rest of an oversized line (bounded), so the peer can read
/// our error before the connection closes.
async fn discard_rest(stream: &mut UnixStream, scratch: &mut Vec<u8>) {
    *scratch = vec![0; CONNECTION_BUFFER];
    let budget = 16 * MAX_LINE;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut seen = 0usize;
        while seen <= budget {
            match stream.read(scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) if scratch[..n].contains(&b'\n') => return,
                Ok(n) => seen += n,
            }
        }
    })
    .await;
}
