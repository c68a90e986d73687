//! What a journal record holds: the whole new state of one session, or its
//! deletion. Replaying a record twice gives the same state.

use serde::{Deserialize, Serialize};
use shared::protocol::Session;

/// A journal entry as read back.
#[derive(Deserialize)]
pub enum JournalOp {
    #[serde(rename = "put")]
    Put(Session),
    #[serde(rename = "del")]
    Del(String),
}

/// A journal entry as written.
#[derive(Serialize)]
pub enum JournalOpRef<'a> {
    #[serde(rename = "put")]
    Put(&'a Session),
    #[serde(rename = "del")]
    Del(&'a str),
}
