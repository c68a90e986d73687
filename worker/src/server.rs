//! The session API server: accepts on the listener, one task a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shared::accept_log::{self, AcceptFailures};
use shared::protocol::{ApiError, ErrorCode, Response};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::conn;
use crate::limits::{ServerOptions, Shared};
use crate::store::Store;

/// Serves until `shutdown` turns true, then stops accepting, lets every
/// connection answer what it has received, and returns.
pub async fn serve(
    listener: UnixListener,
    store: Store,
    options: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_connections = options.max_connections;
    let drain_timeout = options.drain_timeout;
    let owner_uid = options.owner_uid;
    let shared = Arc::new(Shared {
        options,
        active: AtomicUsize::new(0),
    });
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
                    Ok(cred) if cred.uid() == owner_uid => {}
                    Ok(cred) => {
                        warn!(uid = cred.uid(), "refused a connection from another user");
                        continue;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read peer credentials; connection refused");
                        continue;
                    }
                }
                if shared.active.load(Ordering::Relaxed) >= max_connections {
                    refuse(stream, max_connections);
                    continue;
                }
                shared.active.fetch_add(1, Ordering::Relaxed);
                let (store, shutdown, shared) = (store.clone(), shutdown.clone(), shared.clone());
                tasks.spawn(async move {
                    if let Err(e) = conn::serve(stream, &store, shutdown, &shared).await {
                        debug!(error = %e, "connection ended with an error");
                    }
                    shared.active.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(drain_timeout, async {
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
