//! RFC 3339 timestamps in UTC with millisecond precision.

use std::time::SystemTime;

/// Now, as `2026-11-24T06:00:00.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A point in time as `2026-11-24T06:00:00.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_with_millis_and_z() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_500_000_123);
        assert_eq!(rfc3339(t), "2026-11-24T06:00:00.123Z");
        assert_eq!(parse_rfc3339("2026-11-24T06:00:00.123Z"), Some(t));
    }
}
