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
//! and never past half the recent flush time (an exponentially weighted
//! mean of the last journal flushes; at most [`MAX_WAIT`]) after the last
//! answers went out. It stops as soon as the expected writes are in, and
//! gives up early when they come too slowly to all be in within one
//! flush time: the i-th of the n answered clients' writes is due i/n of a
//! flush after the first. Writes
//! that come slowly mean the machine, not the disk, is the bottleneck
//! (each client's round trip costs CPU); there a wait only leaves the
//! disk idle, while writes that miss this flush join the next one. Where
//! flushes take under [`SLOW_FLUSH`] (an SSD's `fdatasync`, ~0.15 ms
//! here) it never waits: the wait could only add latency there. A single
//! client never waits either: it expects one write, and its write is the
//! one that starts the batch. A write that comes after a pause (its
//! client was not waiting for an answer) starts its flush at once.
//!
//! Why half a flush: with N clients whose round trips take R in all, a
//! writer that waits for all of them commits N writes per T + R, one that
//! does not about N per 2T; waiting pays while R < T. Half keeps the
//! added latency bounded; in the flush model (17 ms flushes, 32 clients)
//! the round trips took ~5 ms, more than a quarter of a flush.
//!
//! **Clients that stop.** A wait that gives up commits what arrived, so
//! the commit after it expects only the clients that did write: a client
//! that stops writing costs one wait, of about one client's share of the
//! pace, not one on every batch.
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
const WAIT_FRACTION: u32 = 2;

/// The policy's state, kept by the writer between commits.
#[derive(Debug, Default)]
pub struct GroupCommit {
    /// Mean flush time in nanoseconds (each flush weighs 1/8), if any.
    flush_nanos: Option<f64>,
    /// Writes the last commit answered: their clients' next writes are
    /// the ones to wait for.
    answered: usize,
    /// Writes already queued when those answers went out.
    queued: usize,
    /// When those answers went out.
    answered_at: Option<Instant>,
    /// When the first of the answered clients' writes was seen.
    first_seen: Option<Instant>,
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

    /// A commit answered `answered` writes at `at`; `queued` more were
    /// already waiting then. With clients that wait for their answer, the
    /// next batch can expect both.
    pub fn committed(&mut self, answered: usize, queued: usize, at: Instant) {
        self.answered = answered;
        self.queued = queued;
        self.answered_at = Some(at);
        self.first_seen = None;
    }

    /// Writes the next batch can expect.
    pub fn expected(&self) -> usize {
        self.answered + self.queued
    }

    /// The longest the next flush may be held back, if at all.
    pub fn max_wait(&self) -> Option<Duration> {
        let flush = self.flush_time()?;
        if flush < SLOW_FLUSH {
            return None;
        }
        Some((flush / WAIT_FRACTION).min(MAX_WAIT))
    }

    /// With `have` writes in at `now`, until when to wait for the next
    /// one, if at all: none once every expected write is in, never past
    /// the longest wait after the answers. Once the first of the answered
    /// clients' writes is in, the others must keep pace with all of them
    /// being in within one flush time: the i-th of n is due i/n of a flush
    /// after the first. (The first comes late: the answers go out through
    /// every connection before any client can write again.) A write that
    /// comes after a pause (its client was not waiting for an answer)
    /// therefore starts its flush at once, and so does a batch whose
    /// writes come too slowly for a wait to pay (the machine is busy
    /// rather than the disk, and the writes would join the next flush).
    pub fn due(&mut self, have: usize, now: Instant) -> Option<Instant> {
        if have == 0 || have >= self.expected() {
            return None;
        }
        let flush = self.flush_time()?;
        let limit = self.answered_at? + self.max_wait()?;
        let arrived = have.saturating_sub(self.queued);
        if arrived == 0 {
            return Some(limit);
        }
        let first = *self.first_seen.get_or_insert(now);
        let pace = flush * arrived as u32 / self.answered.max(1) as u32;
        Some((first + pace).min(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> GroupCommit {
        let mut g = GroupCommit::default();
        g.flushed(Duration::from_millis(16));
        g
    }

    #[test]
    fn the_expected_writes_are_due_at_the_pace_of_a_flush_within_half_a_flush() {
        let mut g = slow();
        let at = Instant::now();
        let ms = Duration::from_millis;
        g.committed(8, 0, at);
        assert_eq!(g.max_wait(), Some(ms(8)));
        assert_eq!(g.due(0, at), None, "nothing to commit yet");
        // The first answered client's write came 1 ms after the answers:
        // the next is due a quarter flush after it (2 of 8).
        assert_eq!(g.due(1, at + ms(1)), Some(at + ms(3)));
        assert_eq!(g.due(2, at + ms(2)), Some(at + ms(5)));
        assert_eq!(g.due(7, at + ms(5)), Some(at + ms(8)), "the longest wait");
        assert_eq!(g.due(8, at + ms(5)), None, "all in");
        // Queued during the flush, plus the answered clients' next writes;
        // until the first of those is in, only the longest wait applies.
        g.committed(4, 4, at);
        assert_eq!(g.expected(), 8);
        assert_eq!(g.due(4, at), Some(at + ms(8)));
        assert_eq!(g.due(5, at + ms(1)), Some(at + ms(5)));
    }

    #[test]
    fn a_single_writer_never_waits() {
        let mut g = slow();
        for _ in 0..10 {
            let at = Instant::now();
            g.committed(1, 0, at);
            assert_eq!(g.due(1, at), None);
        }
    }

    #[test]
    fn fast_flushes_never_wait() {
        let mut g = GroupCommit::default();
        let at = Instant::now();
        g.committed(32, 0, at);
        assert_eq!(g.due(1, at), None, "no flush measured yet");
        for _ in 0..20 {
            g.flushed(Duration::from_micros(150));
        }
        assert_eq!(g.due(1, at), None);
    }

    #[test]
    fn the_wait_follows_the_flush_time_and_is_capped() {
        let mut g = GroupCommit::default();
        g.flushed(Duration::from_millis(2));
        assert_eq!(g.max_wait(), Some(Duration::from_millis(1)));
        // One slow flush moves the mean by an eighth of the difference.
        g.flushed(Duration::from_millis(10));
        assert_eq!(g.flush_time(), Some(Duration::from_millis(3)));
        for _ in 0..100 {
            g.flushed(Duration::from_secs(1));
        }
        assert_eq!(g.max_wait(), Some(MAX_WAIT));
    }
}
