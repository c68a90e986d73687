//! Failed `accept` calls, logged at a bounded rate. When a listener fails
//! (EMFILE: the open-file limit is reached), the accept loop pauses
//! [`RETRY_PAUSE`] and tries again, which would log 50 lines a second for
//! as long as the condition lasts. [`AcceptFailures`] logs the first failure
//! at once and then at most one line per [`REPORT_EVERY`], counting what it
//! left out.

use std::time::{Duration, Instant};

/// How long an accept loop waits after a failure before it tries again:
/// long enough not to spin, short enough to pick up a freed slot quickly.
pub const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// At most one line about failing accepts per this interval.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The rate limiter for one listener's accept failures.
#[derive(Debug)]
pub struct AcceptFailures {
    what: &'static str,
    every: Duration,
    last_line: Option<Instant>,
    unreported: u64,
}

impl AcceptFailures {
    /// For the listener named `what` (as in "accept failed on `what`").
    pub fn new(what: &'static str) -> AcceptFailures {
        AcceptFailures::with_interval(what, REPORT_EVERY)
    }

    /// Like [`AcceptFailures::new`], reporting at most once per `every`.
    pub fn with_interval(what: &'static str, every: Duration) -> AcceptFailures {
        AcceptFailures {
            what,
            every,
            last_line: None,
            unreported: 0,
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.last_line
            .is_none_or(|t| now.saturating_duration_since(t) >= self.every)
    }

    /// Counts a failure at `now`. When a line is due, returns how many
    /// earlier failures went unreported (0 for the first one).
    pub fn on_failure(&mut self, now: Instant) -> Option<u64> {
        if self.due(now) {
            self.last_line = Some(now);
            Some(std::mem::take(&mut self.unreported))
        } else {
            self.unreported += 1;
            None
        }
    }

    /// Notes a successful accept at `now`. When failures went unreported
    /// and a line is due, returns their number (for "accepting again").
    pub fn on_success(&mut self, now: Instant) -> Option<u64> {
        if self.unreported > 0 && self.due(now) {
            self.last_line = Some(now);
            Some(std::mem::take(&mut self.unreported))
        } else {
            None
        }
    }

    /// Logs a failed accept if a line is due (see [`AcceptFailures`]).
    pub fn failed(&mut self, error: &std::io::Error) {
        let what = self.what;
        match self.on_failure(Instant::now()) {
            Some(0) => tracing::warn!(
                %error,
                "accept failed on {what}; retrying every {} ms, reporting at most every {} s",
                RETRY_PAUSE.as_millis(),
                self.every.as_secs()
            ),
            Some(more) => tracing::warn!(
                %error,
                failed_since = more,
                "accept still failing on {what}"
            ),
            None => {}
        }
    }

    /// Call after each successful accept; logs the recovery if it is due.
    pub fn accepted(&mut self) {
        if let Some(failed) = self.on_success(Instant::now()) {
            tracing::info!(failed_since = failed, "accepting again on {}", self.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_failure_is_reported_then_one_line_per_interval() {
        let t0 = Instant::now();
        let mut f = AcceptFailures::with_interval("test.sock", 10 * SEC);
        assert_eq!(f.on_failure(t0), Some(0), "the first failure is reported");
        // A failure every 20 ms for 25 s: 1250 failures.
        let mut lines = vec![(Duration::ZERO, 0)];
        for i in 1..=1250u32 {
            let at = RETRY_PAUSE * i;
            if let Some(n) = f.on_failure(t0 + at) {
                lines.push((at, n));
            }
        }
        let times: Vec<Duration> = lines.iter().map(|l| l.0).collect();
        assert_eq!(times, [Duration::ZERO, 10 * SEC, 20 * SEC]);
        // Each later line counts the failures left out since the one before.
        assert_eq!(lines[1].1, 499);
        assert_eq!(lines[2].1, 499);
        let total: u64 = lines.iter().map(|l| l.1 + 1).sum::<u64>() + f.unreported;
        assert_eq!(total, 1251, "every failure is counted once");
    }

    #[test]
    fn a_recovery_reports_what_was_left_out_once_a_line_is_due() {
        let t0 = Instant::now();
        let mut f = AcceptFailures::with_interval("test.sock", 10 * SEC);
        assert_eq!(f.on_success(t0), None, "nothing to report");
        assert_eq!(f.on_failure(t0), Some(0));
        assert_eq!(f.on_failure(t0 + SEC), None);
        assert_eq!(f.on_failure(t0 + 2 * SEC), None);
        assert_eq!(f.on_success(t0 + 3 * SEC), None, "not yet due");
        assert_eq!(f.on_success(t0 + 11 * SEC), Some(2));
        assert_eq!(f.on_success(t0 + 30 * SEC), None, "reported once");
        // A new failure after a quiet interval is reported at once.
        assert_eq!(f.on_failure(t0 + 31 * SEC), Some(0));
    }

    #[test]
    fn failures_alternating_with_successes_stay_bounded() {
        let t0 = Instant::now();
        let mut f = AcceptFailures::with_interval("test.sock", 10 * SEC);
        let mut lines = 0;
        // 60 s of: one accept succeeds, the next fails (a slot freed, then
        // the limit reached again), every 20 ms.
        for i in 0..3000u32 {
            let at = t0 + RETRY_PAUSE * i;
            let line = if i % 2 == 0 {
                f.on_failure(at)
            } else {
                f.on_success(at)
            };
            lines += usize::from(line.is_some());
        }
        assert!(lines <= 7, "{lines} lines in 60 s");
        assert!(
            lines >= 6,
            "{lines} lines in 60 s: the storm is still reported"
        );
    }
}
