//! How long the writer waits before it tries again to repair a storage
//! fault (`heal.rs`): 1 s after the first failed attempt, doubling with
//! each failure, at most 30 s apart, for as long as it takes.

use std::time::{Duration, Instant};

/// How long the writer waits between attempts to repair a fault.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The wait after the first failed attempt; it doubles with each one.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// Failed attempts so far, and when the next one is due.
#[derive(Debug)]
pub struct Backoff {
    failures: u32,
    pub next_try: Instant,
}

impl Backoff {
    /// Due now.
    pub fn now() -> Backoff {
        Backoff {
            failures: 0,
            next_try: Instant::now(),
        }
    }

    /// Another attempt failed: the next waits twice as long, up to the cap.
    pub fn failed(&mut self, policy: RetryPolicy) -> Duration {
        let wait = policy
            .first
            .saturating_mul(1 << self.failures.min(16))
            .min(policy.max);
        self.failures = self.failures.saturating_add(1);
        self.next_try = Instant::now() + wait;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let mut b = Backoff::now();
        let waits: Vec<u64> = (0..8).map(|_| b.failed(policy).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Far past any shift width, still the cap.
        for _ in 0..100 {
            b.failed(policy);
        }
        assert_eq!(b.failed(policy), policy.max);
    }
}
