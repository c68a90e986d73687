//! The second-brain worker: owns the session store and serves the session
//! API (README, "The protocol" and "Limits on clients"). `main.rs` parses
//! arguments and calls [`run`].

pub mod call;
pub mod conn;
pub mod limits;
pub mod listener;
pub mod server;
pub mod startup;
pub mod store;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use shared::launch::Report;
use shared::paths::DataDir;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

use limits::ServerOptions;
use listener::{Inherited, ListenSource};
use store::{CheckpointError, OpenError, Store, StoreOptions};

/// Everything `run` needs, already validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: DataDir,
    pub store: StoreOptions,
    /// Most client connections at once, as asked for; `run` lowers it to
    /// fit `open_files` (`limits::connection_cap`).
    pub max_connections: usize,
    /// The soft open-file limit in force (`shared::fdlimit::raise`).
    pub open_files: u64,
    /// How long connections get to finish once a stop begins.
    pub drain_timeout: Duration,
    /// Request bytes all connections may buffer beyond their own
    /// `limits::CONNECTION_BUFFER` (`--request-budget-bytes`).
    pub request_budget: u64,
    /// `--idle-timeout-ms`.
    pub idle_timeout: Duration,
    /// `--write-timeout-ms`.
    pub write_timeout: Duration,
}

/// Exit statuses of the worker (README "Exit codes").
pub mod exit {
    /// A clean stop.
    pub const OK: i32 = 0;
    /// Could not start or serve (another worker owns the directory, I/O).
    pub const FAILURE: i32 = 1;
    /// An invalid flag or environment value.
    pub const CONFIG: i32 = 2;
    /// Refused to start: stored data is damaged (nothing was changed).
    pub const DAMAGED: i32 = 4;
}

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Open(OpenError),
    #[error("{what}: {error}")]
    Io {
        what: String,
        #[source]
        error: std::io::Error,
    },
    /// The final snapshot failed; the journal still holds every write.
    #[error(
        "the final snapshot failed ({0}); every write is still in the journal and will be \
         restored at the next start"
    )]
    FinalSnapshot(#[source] CheckpointError),
    /// Run by hand while the socket is in use (`listener::supervised`,
    /// `listener::listen`).
    #[error("not starting: {0}")]
    SocketInUse(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Open(OpenError::Snapshot { .. } | OpenError::Journal { .. }) => exit::DAMAGED,
            _ => exit::FAILURE,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |error| RunError::Io { what, error }
}

/// Serves until SIGTERM/SIGINT (or the supervisor's pipe closes), then
/// answers what was received, writes `sessions.json` and returns.
pub async fn run(config: Config, inherited: Inherited) -> Result<(), RunError> {
    let started = Instant::now();
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("cannot handle SIGTERM"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("cannot handle SIGINT"))?;
    let mut sigusr1 = signal(SignalKind::user_defined1()).map_err(io("cannot handle SIGUSR1"))?;
    let parent_gone = watch_parent(inherited.parent);

    // Run by hand: never while a supervisor runs the service here (and
    // never on a socket that accepts connections: see `listener::listen`).
    if inherited.listener.is_none() {
        if let Some(why) = listener::supervised(&config.data_dir) {
            return Err(RunError::SocketInUse(why));
        }
    }
    let dir = config.data_dir.clone();
    let store_options = config.store.clone();
    let (store, report) = tokio::task::spawn_blocking(move || Store::open(&dir, store_options))
        .await
        .expect("store open does not panic")
        .map_err(RunError::Open)?;
    for aside in &report.set_aside {
        warn!(file = %aside, "set aside unreadable bytes that were never acknowledged");
    }
    for temp in &report.temps_removed {
        info!(file = %temp, "removed a temp file left by a crash");
    }
    for journal in &report.covered_removed {
        info!(file = %journal, "removed a journal left by a crash that sessions.json already holds");
    }

    let source = match inherited.listener {
        Some(fd) => ListenSource::Inherited(fd),
        None => ListenSource::Bind(config.data_dir.worker_sock()),
    };
    let (listener, bound) = listener::listen(source).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => RunError::SocketInUse(e.to_string()),
        _ => RunError::Io {
            what: "cannot listen".into(),
            error: e,
        },
    })?;
    let owner_uid = config.data_dir.owner_uid().map_err(io(format!(
        "cannot read the owner of {}",
        config.data_dir.root().display()
    )))?;

    let max_connections = limits::connection_cap(config.max_connections, config.open_files);
    if max_connections < config.max_connections {
        warn!(
            max_connections,
            asked = config.max_connections,
            open_files = config.open_files,
            "serving at most {max_connections} connections at once, not {}: the open-file \
             limit is {} and {} descriptors are kept for the store, logs and listener; \
             clients beyond get `unavailable`",
            config.max_connections,
            config.open_files,
            limits::FD_RESERVE
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let options = ServerOptions {
        owner_uid,
        max_connections,
        drain_timeout: config.drain_timeout,
        budget: limits::RequestBudget::new(config.request_budget),
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
    };
    let server = tokio::spawn(server::serve(listener, store.clone(), options, stop_rx));
    info!(
        sessions = report.sessions,
        replayed = report.replayed_records,
        journals = report.journals,
        took_ms = started.elapsed().as_millis() as u64,
        socket = %config.data_dir.worker_sock().display(),
        inherited = bound.is_none(),
        "worker ready"
    );
    if let Some(ready) = inherited.ready {
        announce_ready(ready, &store);
    }

    let parent_gone = async move {
        match parent_gone {
            // Ok or Err: either way the watcher saw the end of the pipe.
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(parent_gone);
    let reason = loop {
        tokio::select! {
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
            _ = &mut parent_gone => break "the supervisor is gone",
            _ = sigusr1.recv() => {
                // Signals of one kind that arrive before this one is taken
                // merge into it; this line says which were taken.
                info!("SIGUSR1 received: writing sessions.json");
                let store = store.clone();
                tokio::spawn(async move {
                    match store.checkpoint().await {
                        Ok(i) => info!(sessions = i.sessions, bytes = i.bytes, took_ms = i.took.as_millis() as u64, "checkpoint written"),
                        Err(e) => error!(error = %e, "checkpoint failed"),
                    }
                });
            }
        }
    };
    info!(
        reason,
        "stopping: no new connections; answering what was received"
    );
    let _ = stop_tx.send(true);
    if let Err(e) = server.await {
        error!(error = %e, "the server task failed");
    }
    let result = store.close().await;
    if let Some(bound) = bound {
        bound.remove_if_ours();
    }
    match result {
        Ok(info) => {
            info!(
                sessions = info.sessions,
                took_ms = started.elapsed().as_millis() as u64,
                "stopped"
            );
            Ok(())
        }
        Err(e) => Err(RunError::FinalSnapshot(e)),
    }
}

/// Tells the supervisor the worker is serving: one line on the ready pipe.
/// Then the pipe carries the store's health, now and at every change
/// (`shared::health`), so that the supervisor shows it in `status` and
/// logs each change once, without asking.
///
/// Why a push on this pipe rather than the supervisor asking the worker:
/// the supervisor learns of a change when it happens (a fault that heals
/// within a second is still logged), it never waits on a busy worker to
/// answer `status`, and the pipe already exists only when a supervisor
/// started the worker; a worker run by hand has none and reports its
/// health in `ping` and `stats` alone.
fn announce_ready(fd: OwnedFd, store: &Store) {
    let mut pipe = std::fs::File::from(fd);
    let mut changes = store.subscribe_health();
    // The health now goes with the ready line, in one write, so that the
    // supervisor never shows a ready worker with its store unknown.
    let mut lines = Report::Ready {
        pid: std::process::id(),
        commit: shared::version::commit_or_null().map(String::from),
    }
    .to_line();
    if let Ok(now) = changes.try_recv() {
        lines.push_str(&Report::Store(now).to_line());
    }
    if let Err(e) = pipe.write_all(lines.as_bytes()) {
        warn!(error = %e, "cannot announce readiness to the supervisor");
        return;
    }
    let pushed = std::thread::Builder::new()
        .name("health-push".into())
        .spawn(move || {
            while let Some(health) = changes.blocking_recv() {
                if let Err(e) = pipe.write_all(Report::Store(health).to_line().as_bytes()) {
                    // A supervisor that does not read them (an older one).
                    info!(error = %e, "the supervisor takes no store health reports");
                    return;
                }
            }
        });
    if let Err(e) = pushed {
        warn!(error = %e, "cannot start the thread that reports the store's health");
    }
}

/// Resolves when the supervisor's end of the parent pipe closes (EOF),
/// which happens when the supervisor dies, however it dies. `None` when
/// the worker runs on its own.
fn watch_parent(fd: Option<OwnedFd>) -> Option<oneshot::Receiver<()>> {
    let (tx, rx) = oneshot::channel();
    match fd {
        Some(fd) => {
            std::thread::Builder::new()
                .name("parent-watch".into())
                .spawn(move || {
                    use std::io::Read;
                    let mut pipe = std::fs::File::from(fd);
                    let mut buf = [0u8; 64];
                    loop {
                        match pipe.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => continue,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(_) => break,
                        }
                    }
                    let _ = tx.send(());
                })
                .expect("a thread can be started at startup");
            Some(rx)
        }
        None => None,
    }
}
