//! The session API server: accepts on the listener, one task a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::accept_log::{self, AcceptFailures};
use shared::protocol::{ApiError, ErrorCode, Request, Response, MAX_LINE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::store::Store;

/// Limits and identity the server enforces.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Only this uid may connect (the owner of the data directory).
    pub owner_uid: u32,
    /// Connections beyond this get `unavailable` and are closed. Already
    /// kept below the open-file limit (`limits::connection_cap`).
    pub max_connections: usize,
    /// How long open connections get to finish once shutdown starts.
    pub drain_timeout: Duration,
}

/// Serves until `shutdown` turns true, then stops accepting, lets every
/// connection answer what it has received, and returns.
pub async fn serve(
    listener: UnixListener,
    store: Store,
    options: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    let mut failures = AcceptFailures::new("the session socket");
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        failures.accepted();
                        stream
                    }
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than
                        // spin, and log at a bounded rate. (The connection
                        // cap keeps EMFILE from happening in the first place;
                        // see `limits`.)
                        failures.failed(&e);
                        tokio::time::sleep(accept_log::RETRY_PAUSE).await;
                        continue;
                    }
                };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == options.owner_uid => {}
                    Ok(cred) => {
                        warn!(uid = cred.uid(), "refused a connection from another user");
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read peer credentials; connection refused");
                        continue;
                    }
                }
                if active.load(Ordering::Relaxed) >= options.max_connections {
                    refuse(stream, options.max_connections);
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (store, shutdown, active) = (store.clone(), shutdown.clone(), active.clone());
                tasks.spawn(async move {
                    if let Err(e) = connection(stream, &store, shutdown, &active).await {
                        debug!(error = %e, "connection ended with an error");
                    }
                    active.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(options.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = tasks.len(),
            "connections did not finish in time; closing them"
        );
        tasks.abort_all();
    }
}

/// Answers `unavailable` and closes, before accepting anything else: so a
/// refused connection holds its descriptor only for one `write` (the reserve
/// in `limits` counts one). The line is short and the socket new, so the
/// write fits its buffer at once; if it ever does not, the client sees the
/// connection close without an answer rather than the worker waiting.
fn refuse(stream: UnixStream, max: usize) {
    use std::io::Write;
    let err = ApiError::new(
        ErrorCode::Unavailable,
        format!("too many connections (the limit is {max}); try again"),
    );
    // Out of the runtime: tokio's `try_write` would report WouldBlock until
    // the reactor has seen the new socket become writable.
    match stream.into_std() {
        Ok(mut std_stream) => {
            if let Err(e) = std_stream.write_all(&Response::Error(err).to_line()) {
                debug!(error = %e, "could not answer a refused connection");
            }
        }
        Err(e) => debug!(error = %e, "could not answer a refused connection"),
    }
}

/// How long a stopping worker waits for the first request of a
/// connection it has accepted but not yet heard from.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(200);

enum Line {
    /// A whole line is in the buffer (newline removed).
    Complete,
    /// The peer closed; a partial line, if any, is dropped.
    Eof,
    /// More than `MAX_LINE` bytes without a newline.
    TooLarge,
}

/// Reads up to the next newline into `buf`, never holding more than
/// `MAX_LINE + 1` bytes. Cancel-safe: bytes read stay in `buf`.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(i) = available.iter().position(|b| *b == b'\n') {
            if buf.len() + i > MAX_LINE {
                return Ok(Line::TooLarge);
            }
            buf.extend_from_slice(&available[..i]);
            r.consume(i + 1);
            return Ok(Line::Complete);
        }
        let n = available.len();
        if buf.len() + n > MAX_LINE {
            return Ok(Line::TooLarge);
        }
        buf.extend_from_slice(available);
        r.consume(n);
    }
}

/// Discards the rest of an oversized line (bounded), so the peer can read
/// our error before the connection closes.
async fn discard_rest<R: AsyncBufReadExt + Unpin>(r: &mut R) {
    let budget = 16 * MAX_LINE;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut seen = 0usize;
        loop {
            let Ok(available) = r.fill_buf().await else {
                return;
            };
            if available.is_empty() {
                return;
            }
            if let Some(i) = available.iter().position(|b| *b == b'\n') {
                r.consume(i + 1);
                return;
            }
            let n = available.len();
            r.consume(n);
            seen += n;
            if seen > budget {
                return;
            }
        }
    })
    .await;
}

async fn connection(
    stream: UnixStream,
    store: &Store,
    mut shutdown: watch::Receiver<bool>,
    active: &AtomicUsize,
) -> std::io::Result<()> {
    let (r, w) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    let mut writer = BufWriter::with_capacity(64 * 1024, w);
    let mut buf = Vec::new();
    let mut answered = false;
    loop {
        let line = if *shutdown.borrow() {
            // Stopping: answer what has already arrived. A connection that
            // has not sent its first request yet was just accepted, so its
            // request is on the way: give it a moment rather than close it.
            let grace = if answered || !buf.is_empty() {
                Duration::ZERO
            } else {
                FIRST_REQUEST_GRACE
            };
            match tokio::time::timeout(grace, read_line(&mut reader, &mut buf)).await {
                Ok(line) => line?,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                line = read_line(&mut reader, &mut buf) => line?,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            }
        };
        match line {
            Line::Complete => {
                let response = handle(store, &buf, active).await;
                buf.clear();
                answered = true;
                writer.write_all(&response.to_line()).await?;
                // Batch answers to pipelined requests, but never hold one
                // back waiting for a request that has not fully arrived.
                if !reader.buffer().contains(&b'\n') {
                    writer.flush().await?;
                }
            }
            Line::Eof => break,
            Line::TooLarge => {
                let err = ApiError::new(
                    ErrorCode::TooLarge,
                    format!("request line longer than {MAX_LINE} bytes; closing the connection"),
                );
                writer.write_all(&Response::Error(err).to_line()).await?;
                writer.flush().await?;
                discard_rest(&mut reader).await;
                break;
            }
        }
    }
    writer.flush().await?;
    writer.shutdown().await
}

/// Answers one request line.
pub async fn handle(store: &Store, line: &[u8], active: &AtomicUsize) -> Response {
    let request = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    match request {
        Request::Ping => Response::Pong {
            pid: std::process::id(),
            version: shared::version::VERSION,
            commit: shared::version::commit_or_null(),
            store: store.health(),
        },
        Request::Put { id, data } => match store.put(id, data).await {
            Ok(s) => Response::Session(s),
            Err(e) => e.into(),
        },
        Request::Get { id } => match store.get(&id) {
            Some(s) => Response::Session(s),
            None => ApiError::new(ErrorCode::NotFound, format!("no session with id {id:?}")).into(),
        },
        Request::Delete { id } => match store.delete(id).await {
            Ok(()) => Response::Done,
            Err(e) => e.into(),
        },
        Request::List { prefix, limit } => Response::List(store.list(prefix.as_deref(), limit)),
        Request::Stats => {
            let mut stats = store.stats();
            stats.connections = active.load(Ordering::Relaxed);
            Response::Stats(stats)
        }
    }
}
