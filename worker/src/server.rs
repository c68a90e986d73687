//! The session API server: accepts on the listener, one task a connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use shared::accept_log::{self, AcceptFailures};
use shared::protocol::{ApiError, ErrorCode, Request, Response};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::conn;
use crate::limits::RequestBudget;
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
    /// Request bytes beyond each connection's own buffer, shared by all.
    pub budget: RequestBudget,
    /// A connection that has not finished a request line for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// A connection whose client takes none of its answers for this long
    /// is closed.
    pub write_timeout: Duration,
}

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

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub options: ServerOptions,
    /// Connections open now.
    pub active: AtomicUsize,
}

/// Answers one request (`list` is written by `conn`, page by page).
pub async fn answer(store: &Store, request: Request, shared: &Shared) -> Response {
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
            stats.connections = shared.active.load(Ordering::Relaxed);
            stats.request_budget = shared.options.budget.bytes();
            stats.request_budget_used = shared.options.budget.used();
            Response::Stats(stats)
        }
    }
}
