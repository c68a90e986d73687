//! The store's health (`shared::health`): what `ping` and `stats` report,
//! and the changes a listener (the worker's push to its supervisor) gets.
//!
//! The writer owns the faults (`heal.rs`) and publishes after each change;
//! readers only copy the current report.

use shared::health::{StoreHealth, StoreState};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::writer::Writer;
use super::{Inner, Store};

/// The current report and who is told about changes.
pub(crate) struct HealthCell {
    current: StoreHealth,
    listener: Option<mpsc::UnboundedSender<StoreHealth>>,
}

impl HealthCell {
    /// Healthy since the store was opened.
    pub fn new() -> HealthCell {
        HealthCell {
            current: StoreHealth::ok_now(),
            listener: None,
        }
    }

    /// Degraded with `last_error`, or ok without one. `since` moves only
    /// when the state does; a listener hears of every change.
    fn set(&mut self, last_error: Option<String>) {
        let state = match last_error {
            Some(_) => StoreState::Degraded,
            None => StoreState::Ok,
        };
        let c = &self.current;
        if state == c.state && last_error == c.last_error {
            return;
        }
        let since = if state == c.state {
            c.since.clone()
        } else {
            shared::time::now_rfc3339()
        };
        match &last_error {
            Some(e) if state != c.state => warn!(error = %e, "store degraded"),
            None => info!("store ok"),
            Some(_) => {}
        }
        self.current = StoreHealth {
            state,
            last_error,
            since,
        };
        if let Some(l) = &self.listener {
            if l.send(self.current.clone()).is_err() {
                self.listener = None;
            }
        }
    }
}

impl Inner {
    fn health_cell(&self) -> std::sync::MutexGuard<'_, HealthCell> {
        self.health.lock().expect("health lock poisoned")
    }
}

impl Writer {
    /// Publishes the health the current faults make: refused writes come
    /// first, then failing snapshots.
    pub(super) fn publish_health(&self) {
        let last_error = match (&self.poisoned, &self.snapshot_fault) {
            (Some(p), _) => Some(p.why()),
            (None, Some(f)) => Some(f.why()),
            (None, None) => None,
        };
        self.inner.health_cell().set(last_error);
    }
}

impl Store {
    /// The store's health now.
    pub fn health(&self) -> StoreHealth {
        self.inner.health_cell().current.clone()
    }

    /// Every change of the store's health from now on, the current one
    /// first. A later call replaces the earlier listener.
    pub fn subscribe_health(&self) -> mpsc::UnboundedReceiver<StoreHealth> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut cell = self.inner.health_cell();
        let _ = tx.send(cell.current.clone());
        cell.listener = Some(tx);
        rx
    }
}
