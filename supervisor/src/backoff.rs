//! Restart delays: the first restart is immediate, then exponential with a
//! cap; a worker that stayed up for a while resets the count. Never gives up.

use std::time::Duration;

/// The restart policy and how many quick failures came in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// A worker ready for this long counts as healthy: the next failure
    /// starts the sequence again.
    pub stable_after: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, stable_after: Duration) -> Self {
        Backoff {
            base,
            max,
            stable_after,
            failures: 0,
        }
    }

    /// The delay before the next start, after a worker that was ready for
    /// `ready_for` (None: never became ready) ended.
    pub fn next_delay(&mut self, ready_for: Option<Duration>) -> Duration {
        if ready_for.is_some_and(|d| d >= self.stable_after) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures == 1 {
            return Duration::ZERO;
        }
        let exp = (self.failures - 2).min(30);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }

    /// Quick failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(15),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_up_to_the_cap() {
        let mut b = policy();
        let delays: Vec<u64> = (0..12)
            .map(|_| b.next_delay(None).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [0, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 15000, 15000, 15000]
        );
        // Never gives up, never overflows.
        for _ in 0..1000 {
            assert_eq!(
                b.next_delay(Some(Duration::from_secs(1))),
                Duration::from_secs(15)
            );
        }
    }

    #[test]
    fn a_stable_run_resets_the_sequence() {
        let mut b = policy();
        b.next_delay(None);
        b.next_delay(None);
        assert_eq!(b.next_delay(None), Duration::from_millis(200));
        assert_eq!(b.next_delay(Some(Duration::from_secs(10))), Duration::ZERO);
        assert_eq!(b.failures(), 1);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(9))),
            Duration::from_millis(100)
        );
    }
}
