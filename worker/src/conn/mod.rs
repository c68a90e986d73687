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
//! - time: a request line must be complete within the idle timeout;
//! - requests read ahead of their answers: see [`ahead`].

use std::time::Duration;

use shared::protocol::{ErrorCode, Request, MAX_LINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::debug;

mod ahead;
mod answers;
mod out;

use ahead::Ahead;
use out::Out;

use crate::limits::Shared;
use crate::limits::{LargeRequest, CONNECTION_BUFFER, LARGE_REQUEST};
use crate::store::Store;

/// Answers are written in chunks of about this size.
pub const OUT_CHUNK: usize = 64 * 1024;

/// How long a stopping worker waits for the first request of a
/// connection it has accepted but not yet heard from.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(200);

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
    let mut ahead = Ahead::default();
    let budget = &shared.options.budget;
    loop {
        if let Some(i) = buf[start + scanned..].iter().position(|b| *b == b'\n') {
            let end = start + scanned + i;
            let len = end + 1 - start;
            match Request::parse(&buf[start..end]) {
                Ok(request) if ahead::is_write(&request) => {
                    let buffer_large = buf.capacity() > CONNECTION_BUFFER;
                    if !ahead.admits(len, buffer_large, &mut large, budget) {
                        ahead.settle(store, &mut out).await?;
                        if !buffer_large {
                            // Others waiting for a slot get it now.
                            large = None;
                        }
                    }
                    ahead.push_write(store, request, len);
                }
                Ok(request) => {
                    ahead.settle(store, &mut out).await?;
                    respond(&mut out, store, shared, request).await?;
                }
                Err(e) => ahead.push_done(e.into(), len),
            }
            (start, scanned) = (end + 1, 0);
            answered = true;
            answered_since_read = true;
            continue;
        }
        scanned = buf.len() - start;
        ahead.answer_ready(&mut out).await?;
        if !ahead.is_empty() {
            // Writes in flight: read on while they commit, until the
            // buffer is full, the client stops, or the worker stops.
            if start > 0 {
                buf.drain(..start);
                start = 0;
            }
            if buf.len() == buf.capacity() || *shutdown.borrow() {
                ahead.settle(store, &mut out).await?;
                continue;
            }
            if ahead.has_unsent() {
                // Gather every write that has arrived before handing them
                // to the writer, so that they share its next commit.
                match out.stream.try_read_buf(&mut buf) {
                    Ok(0) => {
                        ahead.settle(store, &mut out).await?;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ahead.send(store).await,
                    Err(e) => return Err(e),
                }
            }
            out.flush().await?;
            tokio::select! {
                n = out.stream.read_buf(&mut buf) => if n? == 0 {
                    ahead.settle(store, &mut out).await?;
                    break;
                },
                () = ahead.oldest_done() => {}
            }
            continue;
        }
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
        }
        if buf.capacity() <= CONNECTION_BUFFER {
            // The slot went to the long line just answered, or to requests
            // read ahead, all answered now.
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

/// Answers one request into `out`.
async fn respond(
    out: &mut Out,
    store: &Store,
    shared: &Shared,
    request: Request,
) -> std::io::Result<()> {
    match request {
        Request::List { prefix, limit } => {
            answers::list(out, store, prefix.as_deref(), limit).await
        }
        request => ahead::write(out, answers::answer(store, request, shared).await).await,
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
