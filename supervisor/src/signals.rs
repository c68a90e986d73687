//! The stop and restart signals (SIGTERM, SIGINT, SIGHUP), taken so that
//! none is lost when the supervisor replaces itself with `execve`.
//!
//! Why not tokio's signal handlers: a handler runs on whichever thread the
//! kernel picks among those that do not block the signal, and only notes
//! the signal in the process's memory for the runtime to read later. A
//! signal noted just before the exec is gone with the old image. Blocking
//! the signals around the exec in the exec'ing thread alone does not help:
//! the supervisor has other threads (tokio's blocking pool, the threads
//! that wait for the worker and copy its output), and the kernel hands a
//! signal sent to the process to any thread that does not block it.
//!
//! So instead:
//! 1. [`block`] blocks the signals in the main thread before any other
//!    thread exists. A new thread starts with its creator's mask, so every
//!    thread of the process, tokio's included whenever tokio creates them,
//!    blocks them for its whole life, and nothing unblocks them. A program
//!    started from here would inherit that mask (a worker would then ignore
//!    SIGTERM), so every command the service runs goes through
//!    [`unblocked`] or [`unblocked_tokio`], which empty the mask in the
//!    child just before it runs the program.
//! 2. One thread ([`Signals::start`]) takes them with `sigwait` and
//!    forwards them to the actor on a channel. A blocked signal that no
//!    thread takes stays pending on the process.
//! 3. Before an exec, [`Signals::pause`] stops that thread and waits until
//!    it has stopped: from then on no thread takes a signal. One it took
//!    before is in the channel, and the caller handles it instead of
//!    exec'ing; one that comes later stays pending, `execve` keeps both the
//!    pending signals and the mask, and the new image's thread takes it.
//!    If the exec fails, [`Signals::resume`].
//!
//! The thread is woken for a pause by [`WAKE`] (SIGUSR2, blocked the same
//! way, so sending it to the supervisor does nothing else). Only POSIX
//! calls are used (`pthread_sigmask`, `sigwait`, `kill`), the same on
//! Linux and macOS: no `signalfd`, no `sigtimedwait` (macOS has neither).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;
use tracing::error;

/// What the actor reacts to: SIGTERM and SIGINT stop, SIGHUP restarts the
/// worker.
pub const HANDLED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Wakes the signal thread for a pause; never forwarded.
pub const WAKE: Signal = Signal::SIGUSR2;

/// How long a pause waits for the signal thread before giving up.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

fn all() -> SigSet {
    let mut set = SigSet::empty();
    for s in HANDLED.into_iter().chain([WAKE]) {
        set.add(s);
    }
    set
}

/// Blocks the handled signals (and [`WAKE`]) in the calling thread. Call
/// first in `supervisor run`, before any thread is started: every later
/// thread inherits the mask.
pub fn block() -> nix::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&all()), None)
}

/// For `pre_exec`: the program about to run starts with no signal
/// blocked. Async-signal-safe (`sigemptyset`, `pthread_sigmask` only).
pub fn unblock_in_child() -> std::io::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(std::io::Error::from)
}

/// `cmd`, set to run its program with no signal blocked.
pub fn unblocked(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook only makes async-signal-safe calls.
    unsafe { cmd.pre_exec(unblock_in_child) }
}

/// [`unblocked`] for tokio's commands.
pub fn unblocked_tokio(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    // SAFETY: the hook only makes async-signal-safe calls.
    unsafe { cmd.pre_exec(unblock_in_child) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Taking,
    PauseAsked,
    Paused,
}

struct Shared {
    mode: Mutex<Mode>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mode> {
        // A panic while holding it cannot leave a half-written mode.
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The receiving end: signals the thread took, in order.
pub struct Signals {
    rx: mpsc::UnboundedReceiver<Signal>,
    shared: Arc<Shared>,
}

impl Signals {
    /// Starts the thread that takes the signals. [`block`] must have run
    /// in the main thread before any thread was started.
    pub fn start() -> std::io::Result<Signals> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Taking),
            changed: Condvar::new(),
        });
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || take(tx, theirs))?;
        Ok(Signals { rx, shared })
    }

    /// The next signal taken.
    pub async fn recv(&mut self) -> Option<Signal> {
        self.rx.recv().await
    }

    /// Stops the thread from taking signals and returns those it took that
    /// were not received yet (handle them instead of exec'ing). `Err` if
    /// the thread did not stop in time: do not exec then.
    pub fn pause(&mut self) -> Result<Vec<Signal>, String> {
        *self.shared.lock() = Mode::PauseAsked;
        if let Err(e) = kill(Pid::this(), WAKE) {
            self.resume();
            return Err(format!("cannot wake the signal thread: {e}"));
        }
        let guard = self.shared.lock();
        let (guard, waited) = self
            .shared
            .changed
            .wait_timeout_while(guard, PAUSE_TIMEOUT, |m| *m != Mode::Paused)
            .unwrap_or_else(|e| e.into_inner());
        drop(guard);
        if waited.timed_out() {
            self.resume();
            return Err("the signal thread did not pause in time".into());
        }
        let mut taken = Vec::new();
        while let Ok(s) = self.rx.try_recv() {
            taken.push(s);
        }
        Ok(taken)
    }

    /// Lets the thread take signals again (after a pause and no exec).
    pub fn resume(&mut self) {
        *self.shared.lock() = Mode::Taking;
        self.shared.changed.notify_all();
    }
}

/// The signal thread: takes a signal, forwards it, and parks while a
/// pause is asked for. A signal is forwarded before the pause is
/// acknowledged, so the pausing side finds it in the channel.
fn take(tx: mpsc::UnboundedSender<Signal>, shared: Arc<Shared>) {
    let set = all();
    loop {
        let signal = match set.wait() {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot wait for signals; SIGTERM and SIGHUP are not handled");
                return;
            }
        };
        if signal != WAKE && tx.send(signal).is_err() {
            return;
        }
        let mut mode = shared.lock();
        if *mode == Mode::PauseAsked {
            *mode = Mode::Paused;
            shared.changed.notify_all();
            while *mode == Mode::Paused {
                mode = shared.changed.wait(mode).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
