//! The two storage faults the writer can be in (how it repairs them:
//! `heal.rs`).

use super::retry::Backoff;

/// After a failed append: why writes are refused, and what is left to do.
pub struct Poisoned {
    /// The failed append.
    failure: String,
    /// Why the last attempt to set it aside failed, if one did.
    pub(super) heal_error: Option<String>,
    /// Whether the journal in use is the one whose append failed (no new
    /// generation could be started yet).
    pub journal_failed: bool,
    pub backoff: Backoff,
}

impl Poisoned {
    /// After a failed append to the journal in use; an attempt is due now.
    pub fn new(failure: String) -> Poisoned {
        Poisoned {
            failure,
            heal_error: None,
            journal_failed: true,
            backoff: Backoff::now(),
        }
    }

    /// What refused writes are answered, and the store's `last_error`.
    pub fn why(&self) -> String {
        match &self.heal_error {
            None => format!(
                "{}; writes are refused until it is set aside (reads work)",
                self.failure
            ),
            Some(e) => format!(
                "{}; setting it aside failed ({e}); writes are refused until that works \
                 (tried again automatically; reads work)",
                self.failure
            ),
        }
    }
}

/// After a failed snapshot or a failed start of a journal for one.
pub struct SnapshotFault {
    pub(super) why: String,
    pub backoff: Backoff,
}

impl SnapshotFault {
    /// The store's `last_error` meanwhile.
    pub fn why(&self) -> String {
        format!(
            "{}; writes are still accepted and durable in the journal, which grows until a \
             snapshot succeeds (tried again automatically)",
            self.why
        )
    }
}
