//! The actor with a fake worker and paused time: what it starts, signals
//! and answers, and when. No process is started, and no test waits on
//! the clock: tokio's paused clock jumps to the actor's next deadline
//! whenever everything is idle.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::launcher::{Launched, Launcher};
use super::{channel, Actor, ActorHandle, Event, HeldFds};
use crate::logs::Sink;
use crate::RunConfig;

/// What the actor asked of the fake, in order.
#[derive(Debug)]
enum Call {
    Start {
        pid: u32,
        generation: u64,
        events: mpsc::UnboundedSender<Event>,
    },
    Signal {
        pid: u32,
        signal: Signal,
    },
}

/// A launcher that starts nothing and tells the test what was asked.
struct Fake {
    next_pid: u32,
    calls: mpsc::UnboundedSender<Call>,
}

impl Launcher for Fake {
    fn start(
        &mut self,
        _bin: &Path,
        _listener: BorrowedFd<'_>,
        generation: u64,
        events: &mpsc::UnboundedSender<Event>,
    ) -> io::Result<Launched> {
        self.next_pid += 1;
        let pid = self.next_pid;
        let (_read, parent) = shared::fd::pipe()?;
        let _ = self.calls.send(Call::Start {
            pid,
            generation,
            events: events.clone(),
        });
        Ok(Launched {
            pid,
            parent,
            ready: None,
            stdout_fd: -1,
            stderr_fd: -1,
        })
    }

    fn signal(&mut self, pid: u32, signal: Signal) {
        let _ = self.calls.send(Call::Signal { pid, signal });
    }
}

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const BACKOFF_BASE: Duration = Duration::from_millis(100);

fn config(dir: &Path) -> Arc<RunConfig> {
    Arc::new(RunConfig {
        data_dir: shared::paths::DataDir::new(dir.join("data")),
        log_dir: dir.join("logs"),
        log_retention_days: 7,
        log_filter: "info".into(),
        poll_interval_ms: 0,
        repo: None,
        branch: "main".into(),
        worker_bin: Some(PathBuf::from("/fake/worker")),
        ready_timeout: READY_TIMEOUT,
        stop_timeout: Duration::from_secs(10),
        checkpoint_interval: Duration::from_secs(60),
        backoff_base: BACKOFF_BASE,
        backoff_max: Duration::from_secs(15),
        stable_after: Duration::from_secs(10),
        probation: Duration::from_secs(10),
        staging_dir: None,
        build_profile: "release".into(),
        build_timeout: Duration::from_secs(60),
        git_timeout: Duration::from_secs(60),
        supervisor_probation: Duration::from_secs(30),
        open_files: 1024,
        control_timeout: Duration::from_secs(10),
    })
}

/// A running actor on a fake launcher, its handle, and what it asks.
struct Harness {
    handle: ActorHandle,
    calls: mpsc::UnboundedReceiver<Call>,
    _dir: tempfile::TempDir,
}

fn start_actor() -> Harness {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let fake = Box::new(Fake {
        next_pid: 1000,
        calls: calls_tx,
    });
    // Any fd will do as the listener: the fake never passes it on.
    let (listener, _) = shared::fd::pipe().expect("a pipe");
    let held = HeldFds {
        control: -1,
        lock: -1,
    };
    let sink = Sink::new(dir.path(), "worker", false);
    let actor = Actor::with_launcher(config(dir.path()), listener, held, sink, fake);
    let (handle, inbox) = channel();
    tokio::spawn(actor.run(inbox, None));
    Harness {
        handle,
        calls,
        _dir: dir,
    }
}

impl Harness {
    /// The actor's next call. With the clock paused, a call that never
    /// comes fails the test at once (the hour passes as soon as
    /// everything is idle) instead of hanging it.
    async fn next(&mut self) -> Call {
        tokio::time::timeout(Duration::from_secs(3600), self.calls.recv())
            .await
            .expect("the actor asked nothing more within an hour")
            .expect("the actor runs")
    }

    /// The next call must be a start; its pid, generation and events.
    async fn started(&mut self) -> (u32, u64, mpsc::UnboundedSender<Event>) {
        match self.next().await {
            Call::Start {
                pid,
                generation,
                events,
            } => (pid, generation, events),
            other => panic!("expected a start, the actor asked {other:?}"),
        }
    }

    async fn signalled(&mut self) -> (u32, Signal) {
        match self.next().await {
            Call::Signal { pid, signal } => (pid, signal),
            other => panic!("expected a signal, the actor asked {other:?}"),
        }
    }

    /// Nothing more was asked so far.
    fn quiet(&mut self) {
        if let Ok(call) = self.calls.try_recv() {
            panic!("the actor asked {call:?} too early");
        }
    }
}

fn ready(events: &mpsc::UnboundedSender<Event>, generation: u64) {
    events
        .send(Event::Ready {
            generation,
            commit: None,
            store: None,
        })
        .expect("the actor listens");
}

fn exited(events: &mpsc::UnboundedSender<Event>, generation: u64, pid: u32, code: i32) {
    events
        .send(Event::Exited {
            generation,
            status: Ok(WaitStatus::Exited(Pid::from_raw(pid as i32), code)),
        })
        .expect("the actor listens");
}

#[tokio::test(start_paused = true)]
async fn a_restart_starts_the_new_worker_only_after_the_old_one_exited() {
    let mut h = start_actor();
    let (old, generation, events) = h.started().await;
    ready(&events, generation);
    let restart = tokio::spawn({
        let handle = h.handle.clone();
        async move { handle.restart().await }
    });
    assert_eq!(h.signalled().await, (old, Signal::SIGTERM));
    // Both cannot hold the store: nothing starts while the old one runs.
    tokio::task::yield_now().await;
    h.quiet();
    exited(&events, generation, old, 0);
    let (new, next, events) = h.started().await;
    assert_eq!((new, next), (old + 1, generation + 1));
    assert!(
        !restart.is_finished(),
        "answered before the new worker was ready"
    );
    ready(&events, next);
    let done = restart
        .await
        .expect("the restart task")
        .expect("the actor runs")
        .expect("the restart worked");
    assert_eq!(done.pid, new);
}

#[tokio::test(start_paused = true)]
async fn a_crashing_worker_is_restarted_at_once_then_after_100_and_200_ms() {
    let mut h = start_actor();
    let mut waits = Vec::new();
    let (mut pid, mut generation, mut events) = h.started().await;
    for _ in 0..3 {
        ready(&events, generation);
        exited(&events, generation, pid, 1);
        let crashed = Instant::now();
        (pid, generation, events) = h.started().await;
        waits.push(crashed.elapsed());
    }
    assert_eq!(
        waits,
        [Duration::ZERO, BACKOFF_BASE, BACKOFF_BASE * 2],
        "the restart delays"
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_not_ready_in_time_is_killed_and_started_again() {
    let mut h = start_actor();
    let started = Instant::now();
    let (pid, generation, events) = h.started().await;
    assert_eq!(h.signalled().await, (pid, Signal::SIGKILL));
    assert_eq!(
        started.elapsed(),
        READY_TIMEOUT,
        "killed at the ready timeout"
    );
    exited(&events, generation, pid, 137);
    let (next, next_generation, _) = h.started().await;
    assert_eq!((next, next_generation), (pid + 1, generation + 1));
}

fn ready_at(events: &mpsc::UnboundedSender<Event>, generation: u64, commit: &str) {
    events
        .send(Event::Ready {
            generation,
            commit: Some(commit.into()),
            store: None,
        })
        .expect("the actor listens");
}

#[tokio::test(start_paused = true)]
async fn status_names_the_serving_commit_and_a_probation_with_its_time_left() {
    let mut h = start_actor();
    let (old, generation, events) = h.started().await;
    ready_at(&events, generation, "aaaa");
    // The ready line and the status request reach the actor on different
    // channels: ask until it has taken the line in.
    let s = loop {
        let s = h.handle.status().await.expect("the actor runs");
        if s.worker.state == "ready" {
            break s;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(s.update.view.deployed_commit.as_deref(), Some("aaaa"));
    assert!(s.worker.probation.is_none());

    let deploy = tokio::spawn({
        let handle = h.handle.clone();
        async move {
            handle
                .deploy("bbbb".into(), PathBuf::from("/fake/new"))
                .await
        }
    });
    assert_eq!(h.signalled().await, (old, Signal::SIGTERM));
    exited(&events, generation, old, 0);
    let (_, next, events) = h.started().await;
    ready_at(&events, next, "bbbb");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = h.handle.status().await.expect("the actor runs");
    let p = s.worker.probation.expect("on probation");
    assert_eq!(p.commit.as_deref(), Some("bbbb"));
    assert_eq!(p.left_ms, 6_000, "10 s of probation, 4 s gone");
    // On trial, it is not yet the deployed commit.
    assert_eq!(s.update.view.deployed_commit, None);

    deploy
        .await
        .expect("the deploy task")
        .expect("passed its probation");
    let s = h.handle.status().await.expect("the actor runs");
    assert!(s.worker.probation.is_none());
    assert_eq!(s.update.view.deployed_commit.as_deref(), Some("bbbb"));
}
