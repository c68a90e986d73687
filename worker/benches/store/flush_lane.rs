//! One flush delay's processes, and the cells measured through them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use harness::{Conn, Worker};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shared::client::Client;
use shared::paths::DataDir;
use tokio::runtime::Runtime;

use super::super::{
    expect_ok, first_answers, payload, populate_ours, rng_for, session_id, socket_put,
    socket_stats, spawn_worker_with, thread_cell, wait_checkpoint_idle, CommitStats, Measured,
    Slice, WORKER_DEADLINE,
};
use super::floor::{self, Floor};
use super::{delay_label, flushing, Inject, CHILD_ENV, PIPELINE};

/// Everything measured at one flush delay: a worker and a child process,
/// both under the same injection.
pub(super) struct Lane {
    pub(super) delay: Duration,
    sessions: usize,
    sock_dir: DataDir,
    /// The worker, or strace running it.
    worker: Worker,
    worker_pid: Pid,
    control: Client,
    /// The bench binary as a child for (b) and the bare loop (or strace).
    child: Child,
    to_child: Option<ChildStdin>,
    from_child: BufReader<ChildStdout>,
    /// Where the child's floor server listens.
    floor_sock: PathBuf,
    stopped: bool,
}

impl Lane {
    pub(super) fn new(
        rt: &Runtime,
        base: &Path,
        n: usize,
        delay: Duration,
        how: Inject,
        log: &Path,
    ) -> Lane {
        let us = delay.as_micros();
        let sock_dir = DataDir::new(base.join(format!("flush-{us}us-worker")));
        populate_ours(rt, &sock_dir, n);
        let t0 = Instant::now();
        let mut worker = spawn_worker_with(
            flushing(Path::new(env!("CARGO_BIN_EXE_worker")), delay, how),
            &sock_dir,
            log,
        );
        let (mut control, _, _) = first_answers(&mut worker, t0, &session_id(n - 1), log);
        let pong = control.call_line(r#"{"op":"ping"}"#).expect("ping");
        let v: serde_json::Value = serde_json::from_str(&pong).expect("ping answers JSON");
        let pid = v["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("ping without pid: {pong}"));
        let worker_pid = Pid::from_raw(pid as i32);

        let child_dir = base.join(format!("flush-{us}us-sqlite"));
        std::fs::create_dir_all(&child_dir).expect("the child's dir");
        let exe = std::env::current_exe().expect("the bench binary's path");
        let mut child = flushing(&exe, delay, how)
            .env(CHILD_ENV, format!("{n}:{}", child_dir.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the bench binary for (b)");
        let to_child = child.stdin.take();
        let from_child = BufReader::new(child.stdout.take().expect("the child's stdout"));
        let mut lane = Lane {
            delay,
            sessions: n,
            sock_dir,
            worker,
            worker_pid,
            control,
            child,
            to_child,
            from_child,
            floor_sock: child_dir.join("floor.sock"),
            stopped: false,
        };
        let ready = lane.read_answer();
        assert_eq!(ready, "ready", "the (b) process said {ready:?}");
        eprintln!(
            "  flush {}: worker and (b) process ready",
            delay_label(delay)
        );
        lane
    }

    fn read_answer(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .from_child
            .read_line(&mut line)
            .expect("read the (b) process's answer");
        assert!(
            n > 0,
            "the (b) process at flush {} exited; see its stderr above",
            delay_label(self.delay)
        );
        line.trim_end().to_string()
    }

    /// Sends one request to the child; its answer's numbers.
    fn ask(&mut self, request: String) -> Vec<f64> {
        let to = self.to_child.as_mut().expect("the child's stdin is open");
        writeln!(to, "{request}").expect("ask the (b) process");
        to.flush().expect("ask the (b) process");
        self.read_answer()
            .split_whitespace()
            .map(|x| x.parse().expect("a number from the (b) process"))
            .collect()
    }

    pub(super) fn bare(&mut self, slice: Slice) -> Measured {
        let a = self.ask(format!(
            "bare {} {}",
            slice.warmup.as_secs_f64(),
            slice.measured.as_secs_f64()
        ));
        Measured {
            ops: a[0] as u64,
            secs: a[1],
        }
    }

    pub(super) fn sqlite(&mut self, slice: Slice, w: usize) -> (Measured, CommitStats) {
        let a = self.ask(format!(
            "sqlite {w} {} {}",
            slice.warmup.as_secs_f64(),
            slice.measured.as_secs_f64()
        ));
        let m = Measured {
            ops: a[0] as u64,
            secs: a[1],
        };
        let stats = CommitStats {
            writes: a[2] as u64,
            commits: a[3] as u64,
            checkpoints: 0,
        };
        (m, stats)
    }

    /// One closed-loop client of a floor server in the child.
    pub(super) fn floor(&mut self, how: Floor, slice: Slice) -> Measured {
        let sock = self.floor_sock.clone();
        let listening = self.ask(format!("floor {} {}", how.word(), sock.display()));
        assert_eq!(listening, [1.0], "the floor server did not start");
        floor::puts(slice, &sock, self.sessions)
    }

    /// One closed-loop client pinging the worker.
    pub(super) fn ping(&mut self, slice: Slice) -> Measured {
        floor::pings(slice, &self.sock_dir.worker_sock(), self.sessions)
    }

    /// `w` closed-loop clients, or one pipelining connection for `None`;
    /// a checkpoint the slice started is waited for and counted in.
    pub(super) fn socket(&mut self, slice: Slice, w: Option<usize>) -> (Measured, CommitStats) {
        let before = socket_stats(&mut self.control);
        let sock = self.sock_dir.worker_sock();
        let mut m = match w {
            Some(w) => thread_cell(slice, w, self.sessions, |_| socket_put(&sock)),
            None => pipelined_cell(slice, &sock, self.sessions),
        };
        m.secs += wait_checkpoint_idle(&self.sock_dir).as_secs_f64();
        (m, socket_stats(&mut self.control).delta(before))
    }

    /// SIGTERM to the worker (its final snapshot), end of input to the
    /// child; both must exit 0.
    pub(super) fn finish(mut self) {
        self.stopped = true;
        kill(self.worker_pid, Signal::SIGTERM).expect("signal the worker");
        let status = self.worker.wait_exit(WORKER_DEADLINE);
        assert!(status.success(), "the worker stopped with {status}");
        drop(self.to_child.take());
        let status = self.child.wait().expect("wait for the (b) process");
        assert!(status.success(), "the (b) process stopped with {status}");
        let _ = std::fs::remove_dir_all(self.sock_dir.root());
    }
}

impl Drop for Lane {
    /// A bench that panics leaves no worker behind: SIGKILL to the worker
    /// itself (strace may run it), then the guard reaps what it started.
    /// The child ends when its stdin closes.
    fn drop(&mut self) {
        if !self.stopped {
            let _ = kill(self.worker_pid, Signal::SIGKILL);
        }
    }
}

/// One connection that sends `PIPELINE` puts, then reads their answers,
/// in a loop. The worker may write a burst's answers together, so the
/// window starts and ends at the end of a burst: whole bursts only.
fn pipelined_cell(slice: Slice, sock: &Path, sessions: usize) -> Measured {
    let mut conn = Conn::open(sock, Duration::from_secs(120)).expect("connect to the worker");
    let mut rng = rng_for(0);
    let mut seq = 0u64;
    let mut burst = || {
        let mut puts = String::new();
        for _ in 0..PIPELINE {
            let id = session_id(rand::Rng::gen_range(&mut rng, 0..sessions));
            let data = payload(0, seq);
            puts.push_str(&format!(
                "{{\"op\":\"put\",\"id\":\"{id}\",\"data\":{data}}}\n"
            ));
            seq += 1;
        }
        // The whole burst in one write: `Conn::send` is one line.
        conn.stream
            .write_all(puts.as_bytes())
            .expect("send the puts");
        for _ in 0..PIPELINE {
            let line = conn
                .recv()
                .expect("read an answer")
                .expect("an answer, not EOF");
            expect_ok(&line, "a pipelined put");
        }
    };
    let warm = Instant::now();
    while warm.elapsed() < slice.warmup {
        burst();
    }
    let (t0, mut bursts) = (Instant::now(), 0u64);
    while t0.elapsed() < slice.measured {
        burst();
        bursts += 1;
    }
    Measured {
        ops: bursts * PIPELINE as u64,
        secs: t0.elapsed().as_secs_f64(),
    }
}
