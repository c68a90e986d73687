//! The store's health, as the worker reports it in `ping`/`stats` and
//! pushes to the supervisor, and as `supervisor status` shows it.
//!
//! The worker pushes every change on the pipe it announces readiness on
//! (`SECOND_BRAIN_READY_FD`): after the `ready <pid> <commit>` line, one
//! `store <json>` line per change (see [`StoreHealth::to_line`]). The
//! first comes right after the ready line. Both sides encode and parse
//! those lines here.

use serde::{Deserialize, Serialize};

/// `ok`: writes are taken and made durable. `degraded`: a storage fault
/// is not repaired yet (`last_error` says which and what still works).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreState {
    Ok,
    Degraded,
}

/// `{"state", "last_error", "since"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealth {
    pub state: StoreState,
    /// Why the store is degraded, and what works meanwhile; null when ok.
    pub last_error: Option<String>,
    /// When the store entered this state (RFC 3339, UTC).
    pub since: String,
}

/// The word that starts a health line on the ready pipe.
const LINE_PREFIX: &str = "store ";

impl StoreHealth {
    /// Healthy since now.
    pub fn ok_now() -> StoreHealth {
        StoreHealth {
            state: StoreState::Ok,
            last_error: None,
            since: crate::time::now_rfc3339(),
        }
    }

    pub fn is_degraded(&self) -> bool {
        self.state == StoreState::Degraded
    }

    /// `store {"state":…,"last_error":…,"since":…}` and a newline: one
    /// line, whatever the error text holds (JSON escapes newlines).
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("a health report serializes");
        format!("{LINE_PREFIX}{json}\n")
    }

    /// The health a `store …` line carries; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<StoreHealth> {
        serde_json::from_str(line.trim_end().strip_prefix(LINE_PREFIX)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_stay_one_line() {
        let h = StoreHealth {
            state: StoreState::Degraded,
            last_error: Some("a write to /d/j failed\n(Input/output error)".into()),
            since: "2026-12-02T14:00:00.000Z".into(),
        };
        let line = h.to_line();
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.contains(r#""state":"degraded""#), "{line}");
        assert_eq!(StoreHealth::parse_line(&line), Some(h));
        let ok = StoreHealth::ok_now();
        assert_eq!(StoreHealth::parse_line(&ok.to_line()), Some(ok));
        assert_eq!(StoreHealth::parse_line("ready 12 unknown\n"), None);
        assert_eq!(StoreHealth::parse_line("store {nonsense\n"), None);
    }
}
