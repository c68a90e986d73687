//! The store's health, as the worker reports it in `ping`/`stats` and
//! pushes to the supervisor, and as `supervisor status` shows it.
//!
//! The worker pushes every change on the ready pipe as a
//! [`crate::launch::Report::Store`] line.

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
}
