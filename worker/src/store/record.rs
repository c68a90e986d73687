//! What a journal record holds, and how a put is applied.
//!
//! A put record is `{"put":{"id","data","updated_at"}}`: it carries no
//! `created_at`, which is derived when the record is applied (the existing
//! session's, or `updated_at` for a new one). The writer applies records in
//! journal order and replay does the same, so both give the same state, and
//! replaying records a snapshot already holds changes nothing. Records of
//! the first release also carried `created_at`; it is used when present.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use shared::protocol::Session;

use super::journal;
use super::snapshot::Sessions;

/// A journal entry as read back.
#[derive(Deserialize)]
pub enum JournalOp {
    #[serde(rename = "put")]
    Put(PutRecord),
    #[serde(rename = "del")]
    Del(String),
}

/// The body of a put record.
#[derive(Deserialize)]
pub struct PutRecord {
    pub id: String,
    pub data: Box<RawValue>,
    #[serde(default)]
    pub created_at: Option<String>,
    pub updated_at: String,
}

#[derive(Serialize)]
enum OpRef<'a> {
    #[serde(rename = "put")]
    Put {
        id: &'a str,
        data: &'a RawValue,
        updated_at: &'a str,
    },
    #[serde(rename = "del")]
    Del(&'a str),
}

fn framed(op: &OpRef<'_>) -> Vec<u8> {
    let payload = serde_json::to_vec(op).expect("journal entries serialize");
    let mut out = Vec::with_capacity(payload.len() + journal::RECORD_HEADER_LEN);
    journal::encode_record(&payload, &mut out);
    out
}

/// A complete put record (length, checksum, payload).
pub fn encode_put(id: &str, data: &RawValue, updated_at: &str) -> Vec<u8> {
    framed(&OpRef::Put {
        id,
        data,
        updated_at,
    })
}

/// A complete delete record.
pub fn encode_del(id: &str) -> Vec<u8> {
    framed(&OpRef::Del(id))
}

/// Applies a put: keeps the existing `created_at` (or `created_at` when
/// the record names one), returns the stored session and the one replaced.
pub fn apply_put(
    sessions: &mut Sessions,
    id: String,
    data: Box<RawValue>,
    updated_at: String,
    created_at: Option<String>,
) -> (Arc<Session>, Option<Arc<Session>>) {
    use std::collections::btree_map::Entry;
    match sessions.entry(id) {
        Entry::Occupied(mut e) => {
            let created_at = created_at.unwrap_or_else(|| e.get().created_at.clone());
            let session = Arc::new(Session {
                id: e.key().clone(),
                data,
                created_at,
                updated_at,
            });
            let old = e.insert(session.clone());
            (session, Some(old))
        }
        Entry::Vacant(e) => {
            let session = Arc::new(Session {
                id: e.key().clone(),
                data,
                created_at: created_at.unwrap_or_else(|| updated_at.clone()),
                updated_at,
            });
            e.insert(session.clone());
            (session, None)
        }
    }
}
