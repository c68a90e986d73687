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
//! and never past the recent flush time (an exponentially weighted mean
//! of the last journal flushes; at most [`MAX_WAIT`]) after the last
//! answers went out. It stops as soon as the expected writes are in, and
//! gives up early when they come too slowly to all be in within about one
//! flush time: the i-th of the n answered clients' writes is due (i+1)/n
//! of a flush after the first (one share of slack, so one late write
//! among many does not end the wait). Where flushes take under
//! [`SLOW_FLUSH`] (an SSD's `fdatasync`, ~0.15 ms here) it never waits:
//! the wait could only add latency there. A single client never waits
//! either: it expects one write, and its write is the one that starts the
//! batch. A write that comes after a pause (its client was not waiting
//! for an answer) starts its flush at once.
//!
//! **When it waits at all.** With N clients whose writes take R to come
//! back after their answers, a writer that waits for all of them commits
//! N writes per T + R (T the flush time), one that does not about N per
//! 2T: waiting pays while R < T. The writer measures R after every batch
//! (all in: the time since the answers; given up: the rest projected at
//! the pace the others came) and stops waiting while its mean is a flush
//! or more. It then waits once every [`PROBE_EVERY`] commits anyway, to
//! see whether waiting pays again. R is the machine's cost of answering
//! N clients and reading their next writes, so it grows with N and with
//! a busy CPU; where it passes a flush (many clients, fast flushes, a
//! loaded machine), not waiting does better.
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
/// While waiting does not pay, one commit in this many waits anyway, to
/// see whether it pays again.
const PROBE_EVERY: u32 = 16;
/// Shares of slack in the pace rule: one late write among many does not
/// end the wait.
const PACE_SLACK: u32 = 1;

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
    /// Mean time in nanoseconds from a commit's answers until all the
    /// writes expected after it were in (each measure weighs 1/4), if
    /// measured.
    return_nanos: Option<f64>,
    /// Commits since the last one that waited while waiting was off.
    since_probe: u32,
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
        self.since_probe = self.since_probe.wrapping_add(1);
    }

    /// The batch after the last commit is complete at `now` with `have`
    /// writes; `gave_up`: it stopped waiting for the others. Measures how
    /// long the expected writes take to come back: all in, the time since
    /// the answers; given up, the rest projected at the pace the ones that
    /// came had (the first comes late, as the answers go out first). A
    /// first write later than a flush after the answers ends a pause, not
    /// a round trip: not measured. One measure counts for at most two
    /// flushes, so that no single one turns waiting off.
    pub fn gathered(&mut self, have: usize, now: Instant, gave_up: bool) {
        let (Some(at), Some(flush)) = (self.answered_at, self.flush_nanos) else {
            return;
        };
        if self.expected() <= 1 || self.max_wait().is_none() {
            // Nothing to wait for, or flushes too fast to wait at all.
            return;
        }
        let since = |t: Instant| t.saturating_duration_since(at).as_nanos() as f64;
        let first = self.first_seen.unwrap_or(now);
        if since(first) > flush {
            return;
        }
        let sample = if have >= self.expected() {
            since(now)
        } else if gave_up {
            // The gaps after the first so far, stretched to all of them.
            let arrived = have.saturating_sub(self.queued);
            let gaps = now.saturating_duration_since(first).as_nanos() as f64;
            let all = self.answered.saturating_sub(1) as f64;
            since(first) + gaps * all / arrived.saturating_sub(1).max(1) as f64
        } else {
            return;
        };
        let sample = sample.min(2.0 * flush);
        self.return_nanos = Some(match self.return_nanos {
            None => sample,
            Some(mean) => mean + (sample - mean) / 4.0,
        });
    }

    /// Whether waiting pays: a writer that waits for all N expected writes
    /// commits N per flush time T plus their return time R, one that does
    /// not about N per 2T (the convoy). So it waits only while R < T, and
    /// while R >= T, once every [`PROBE_EVERY`] commits, to measure R again.
    fn waiting_pays(&self) -> bool {
        match (self.return_nanos, self.flush_nanos) {
            (Some(r), Some(t)) if r >= t => self.since_probe.is_multiple_of(PROBE_EVERY),
            _ => true,
        }
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
        Some(flush.min(MAX_WAIT))
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
        if !self.waiting_pays() {
            return None;
        }
        let arrived = have.saturating_sub(self.queued);
        if arrived == 0 {
            return Some(limit);
        }
        let first = *self.first_seen.get_or_insert(now);
        let pace = flush * (arrived as u32 + PACE_SLACK) / self.answered.max(1) as u32;
        Some((first + pace).min(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow() -> GroupCommit {
        let mut g = GroupCommit::default();
        g.flushed(Duration::from_millis(8));
        g
    }

    #[test]
    fn the_expected_writes_are_due_at_the_pace_of_a_flush_within_a_flush() {
        let mut g = slow();
        let at = Instant::now();
        let ms = Duration::from_millis;
        g.committed(8, 0, at);
        assert_eq!(g.max_wait(), Some(ms(8)));
        assert_eq!(g.due(0, at), None, "nothing to commit yet");
        // The first answered client's write came 1 ms after the answers:
        // the next is due a quarter flush after it (its share and one of
        // slack, 2 of 8).
        assert_eq!(g.due(1, at + ms(1)), Some(at + ms(3)));
        assert_eq!(g.due(2, at + ms(2)), Some(at + ms(4)));
        assert_eq!(g.due(7, at + ms(5)), Some(at + ms(8)), "the longest wait");
        assert_eq!(g.due(8, at + ms(5)), None, "all in");
        // Queued during the flush, plus the answered clients' next writes;
        // until the first of those is in, only the longest wait applies.
        g.committed(4, 4, at);
        assert_eq!(g.expected(), 8);
        assert_eq!(g.due(4, at), Some(at + ms(8)));
        assert_eq!(g.due(5, at + ms(1)), Some(at + ms(5)));
    }

    /// The rest of a round after `g.committed(8, 0, at)`: the 8 writes
    /// come back `lead` after the answers, then one every `gap`; whether
    /// all were waited for.
    fn round(g: &mut GroupCommit, at: Instant, lead: Duration, gap: Duration) -> bool {
        let mut now = at + lead;
        for have in 1..=8 {
            match g.due(have, now) {
                None if have == 8 => {
                    g.gathered(have, now, false);
                    return true;
                }
                Some(due) if now + gap <= due => now += gap,
                _ => {
                    g.gathered(have, now, true);
                    return false;
                }
            }
        }
        unreachable!()
    }

    #[test]
    fn it_stops_waiting_while_the_writes_take_a_flush_to_come_back_and_probes() {
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut g = slow();
        let mut at = Instant::now();
        // Back within 3 ms of an 8 ms flush: every round waits for all.
        for _ in 0..20 {
            g.committed(8, 0, at);
            assert!(round(&mut g, at, ms(1), us(250)));
            at += ms(20);
        }
        // Now they come at 1.5 ms each: 12 ms in all, more than a flush.
        // The wait gives up, and after a few rounds waiting stops.
        let mut waits = 0;
        for _ in 0..8 {
            g.committed(8, 0, at);
            if g.due(1, at + ms(1)).is_some() {
                waits += 1;
                assert!(!round(&mut g, at, ms(1), us(1500)));
            }
            at += ms(20);
        }
        assert!(waits < 8, "it went on waiting: {waits} of 8");
        // Off, except one commit in PROBE_EVERY.
        let mut probes = 0;
        for _ in 0..PROBE_EVERY * 2 {
            g.committed(8, 0, at);
            if g.due(1, at + ms(1)).is_some() {
                probes += 1;
                assert!(!round(&mut g, at, ms(1), us(1500)));
            }
            at += ms(20);
        }
        assert_eq!(probes, 2);
        // Fast again: the probes see it, and waiting comes back.
        let mut all_in = 0;
        for _ in 0..PROBE_EVERY * 12 {
            g.committed(8, 0, at);
            if g.due(1, at + ms(1)).is_some() && round(&mut g, at, ms(1), us(250)) {
                all_in += 1;
            }
            at += ms(20);
        }
        assert!(
            all_in > PROBE_EVERY * 6,
            "waiting did not come back: {all_in}"
        );
    }

    #[test]
    fn a_write_after_a_pause_is_not_a_slow_return() {
        let ms = Duration::from_millis;
        let mut g = slow();
        let at = Instant::now();
        // 1,000 writes answered (a bulk load), then nothing for 3 s.
        g.committed(1000, 0, at);
        let later = at + Duration::from_secs(3);
        assert_eq!(g.due(1, later), Some(at + ms(8)), "past the wait: at once");
        g.gathered(1, later, true);
        assert_eq!(g.return_nanos, None, "not measured");
        // So the next round still waits.
        g.committed(8, 0, later);
        assert!(round(&mut g, later, ms(1), ms(0)));
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
        assert_eq!(g.max_wait(), Some(Duration::from_millis(2)));
        // One slow flush moves the mean by an eighth of the difference.
        g.flushed(Duration::from_millis(10));
        assert_eq!(g.flush_time(), Some(Duration::from_millis(3)));
        for _ in 0..100 {
            g.flushed(Duration::from_secs(1));
        }
        assert_eq!(g.max_wait(), Some(MAX_WAIT));
    }
}
