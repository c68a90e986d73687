//! Failures that are not a commit's fault (no network, a full disk, a
//! busy staging area, ...) are tried again at later polls. Each failure in
//! a row doubles the wait, starting from the poll interval, up to a cap;
//! a poll that does not fail this way ends it. A person's `supervisor
//! update` always tries at once.

use std::time::{Duration, SystemTime};

use super::{Outcome, Updater};
use crate::status::UpdateRetry;

/// The longest wait between two tries (unless polls are rarer anyway).
pub const CAP: Duration = Duration::from_secs(30 * 60);

/// The wait before the next poll after `attempts` failures in a row:
/// the interval, then twice, four times that, ... up to [`CAP`].
pub fn delay(interval: Duration, attempts: u32) -> Duration {
    let cap = CAP.max(interval);
    let doublings = attempts.saturating_sub(1).min(31);
    interval
        .checked_mul(1u32 << doublings)
        .map_or(cap, |d| d.min(cap))
}

/// The retry shown in status after one more failure for `reason`.
/// `interval` zero: polling is off, no try is scheduled.
pub fn after_failure(
    previous: Option<&UpdateRetry>,
    reason: &str,
    interval: Duration,
) -> UpdateRetry {
    let attempts = previous.map_or(0, |r| r.attempts).saturating_add(1);
    let next_at = (!interval.is_zero())
        .then(|| shared::time::rfc3339(SystemTime::now() + delay(interval, attempts)));
    UpdateRetry {
        reason: reason.to_string(),
        attempts,
        next_at,
    }
}

impl Updater {
    /// For a poll that ended in `Outcome::Retry`: the retry to show (one
    /// more failure in a row), and the outcome says it is not held. None
    /// for any other outcome: the failures in a row are over.
    pub(super) fn retry_after(&self, outcome: &mut Outcome) -> Option<UpdateRetry> {
        let Outcome::Retry(text) = outcome else {
            return None;
        };
        let interval = Duration::from_millis(self.cfg.poll_interval_ms);
        let retry = after_failure(self.view.borrow().retry.as_ref(), text, interval);
        text.push_str(match retry.next_at {
            Some(_) => "; not held: trying again at the next poll",
            None => "; not held: `supervisor update` tries again",
        });
        Some(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_the_interval_up_to_the_cap() {
        let five_min = Duration::from_secs(300);
        assert_eq!(delay(five_min, 0), five_min);
        assert_eq!(delay(five_min, 1), five_min);
        assert_eq!(delay(five_min, 2), five_min * 2);
        assert_eq!(delay(five_min, 3), five_min * 4);
        assert_eq!(delay(five_min, 4), CAP);
        assert_eq!(delay(five_min, u32::MAX), CAP);
        // Polls rarer than the cap keep their interval.
        let two_h = Duration::from_secs(7200);
        assert_eq!(delay(two_h, 9), two_h);
    }

    #[test]
    fn attempts_count_up_and_the_next_try_is_shown() {
        let interval = Duration::from_millis(300);
        let first = after_failure(None, "offline", interval);
        assert_eq!(first.attempts, 1);
        let next = shared::time::parse_rfc3339(first.next_at.as_deref().unwrap()).unwrap();
        assert!(next > SystemTime::now() - Duration::from_secs(1));
        let second = after_failure(Some(&first), "disk full", interval);
        assert_eq!((second.attempts, second.reason.as_str()), (2, "disk full"));
        // Polling off: nothing is scheduled.
        assert_eq!(after_failure(None, "x", Duration::ZERO).next_at, None);
    }
}
