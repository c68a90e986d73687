//! Adaptive group commit: how long the writer may hold a flush back for
//! the writes it can expect.
//!
//! **The convoy it breaks.** When a flush ends, every client it answers
//! sends its next write at once. A writer that starts the next flush
//! immediately takes the one or two writes already there, and the rest
//! wait a whole flush for the one after; batches alternate between full
//! and nearly empty, and with slow flushes (macOS `F_FULLFSYNC`, ~17 ms)
//! throughput halves.
//!
//! **What it expects.** Just before a commit's answers go out, the writer
//! takes what queued during the flush; the next batch can then expect
//! those writes plus one from every client just answered (a closed-loop
//! client answered sends its next write). With N clients each waiting for
//! its answer, that is exactly N. A connection that pipelines counts once
//! per write answered, as it should.
//!
//! **How long it waits.** Only while fewer writes than expected are in,
//! and until a quarter of the recent flush time (an exponentially
//! weighted mean of the last few journal flushes), never more than
//! [`MAX_WAIT`], has passed since the last answers went out: a write that
//! comes after a pause starts its flush at once. It stops as soon as the
//! expected writes are in. Where
//! flushes take under [`SLOW_FLUSH`] (an SSD's `fdatasync`, ~0.15 ms here)
//! it never waits: the wait could only add latency there. A single client
//! never waits either: it expects one write, and its write is the one
//! that starts the batch.
//!
//! **Clients that stop.** A wait that times out commits what arrived, so
//! the commit after it expects only the clients that did write: a client
//! that stops writing costs one bounded wait, not one on every batch.
//!
//! Anchors. PostgreSQL's `commit_delay` sleeps a fixed time before a WAL
//! flush, and only if at least `commit_siblings` other transactions are
//! active, because the delay is wasted when no one else commits
//! (<https://www.postgresql.org/docs/current/runtime-config-wal.html>).
//! MySQL's `binlog_group_commit_sync_delay` waits a fixed time before the
//! binlog sync, cut short once `binlog_group_commit_sync_no_delay_count`
//! transactions are in
//! (<https://dev.mysql.com/doc/refman/8.0/en/replication-options-binary-log.html>);
//! MariaDB's `binlog_commit_wait_count`/`binlog_commit_wait_usec` are the
//! same pair. Here both knobs are derived instead of configured: the count
//! is the writes in flight that the writer just answered, the time a
//! fraction of the flush time it measures, so fast disks get no delay and
//! nothing needs tuning per machine.

use std::time::{Duration, Instant};

/// Flushes faster than this are never waited for.
pub const SLOW_FLUSH: Duration = Duration::from_millis(1);
/// The longest a flush is held back, whatever the flush time.
pub const MAX_WAIT: Duration = Duration::from_millis(10);
/// The wait is at most the flush time divided by this.
const WAIT_FRACTION: u32 = 4;

/// The policy's state, kept by the writer between commits.
#[derive(Debug, Default)]
pub struct GroupCommit {
    /// Mean flush time in nanoseconds (each flush weighs 1/8), if any.
    flush_nanos: Option<f64>,
    /// Writes the next batch can expect.
    expected: usize,
    /// When the last commit's answers went out.
    answered_at: Option<Instant>,
}

impl GroupCommit {
    /// A journal flush (write and sync) took `took`.
    pub fn flushed(&mut self, took: Duration) {
        let t = took.as_nanos() as f64;
        self.flush_nanos = Some(match self.flush_nanos {
            None => t,
            Some(mean) => mean + (t - mean) / 8.0,
        });
    }

    /// The mean flush time, if any flush happened.
    pub fn flush_time(&self) -> Option<Duration> {
        self.flush_nanos.map(|n| Duration::from_nanos(n as u64))
    }

    /// A commit answered `answered` writes; `queued` more were already
    /// waiting when its answers went out at `at`. With clients that wait
    /// for their answer, the next batch can expect both.
    pub fn committed(&mut self, answered: usize, queued: usize, at: Instant) {
        self.expected = answered + queued;
        self.answered_at = Some(at);
    }

    /// Writes the next batch can expect.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// How long to wait for more writes when `have` are in, if at all.
    pub fn wait_for(&self, have: usize) -> Option<Duration> {
        if have == 0 || have >= self.expected {
            return None;
        }
        let flush = self.flush_time()?;
        if flush < SLOW_FLUSH {
            return None;
        }
        Some((flush / WAIT_FRACTION).min(MAX_WAIT))
    }

    /// Until when to wait for more writes when `have` are in, if at all:
    /// the wait is counted from the last answers, so a write that comes
    /// after a pause (its client was not waiting for an answer) starts
    /// its flush at once.
    pub fn deadline(&self, have: usize) -> Option<Instant> {
        Some(self.answered_at? + self.wait_for(have)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> GroupCommit {
        let mut g = GroupCommit::default();
        g.flushed(Duration::from_millis(17));
        g
    }

    #[test]
    fn waits_a_quarter_flush_for_the_writes_it_expects() {
        let mut g = slow();
        g.committed(8, 0, Instant::now());
        assert_eq!(g.wait_for(1), Some(Duration::from_micros(4250)));
        assert_eq!(g.wait_for(7), Some(Duration::from_micros(4250)));
        assert_eq!(g.wait_for(8), None, "all in");
        assert_eq!(g.wait_for(0), None, "nothing to commit yet");
        let at = Instant::now();
        g.committed(8, 0, at);
        assert_eq!(g.deadline(3), Some(at + Duration::from_micros(4250)));
        // Queued during the flush, plus the answered clients' next writes.
        g.committed(5, 3, Instant::now());
        assert_eq!(g.expected(), 8);
    }

    #[test]
    fn a_single_writer_never_waits() {
        let mut g = slow();
        for _ in 0..10 {
            g.committed(1, 0, Instant::now());
            assert_eq!(g.wait_for(1), None);
        }
    }

    #[test]
    fn fast_flushes_never_wait() {
        let mut g = GroupCommit::default();
        g.committed(32, 0, Instant::now());
        assert_eq!(g.wait_for(1), None, "no flush measured yet");
        for _ in 0..20 {
            g.flushed(Duration::from_micros(150));
        }
        assert_eq!(g.wait_for(1), None);
    }

    #[test]
    fn the_wait_follows_the_flush_time_and_is_capped() {
        let mut g = GroupCommit::default();
        g.committed(8, 0, Instant::now());
        g.flushed(Duration::from_millis(2));
        assert_eq!(g.wait_for(1), Some(Duration::from_micros(500)));
        // One slow flush moves the mean by an eighth of the difference.
        g.flushed(Duration::from_millis(10));
        assert_eq!(g.flush_time(), Some(Duration::from_millis(3)));
        for _ in 0..100 {
            g.flushed(Duration::from_secs(1));
        }
        assert_eq!(g.wait_for(1), Some(MAX_WAIT));
    }
}
