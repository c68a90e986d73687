//! The session API: newline-delimited JSON over a Unix socket (README,
//! "The protocol").
//!
//! Requests are parsed by hand from a flat struct so that every problem maps
//! to a precise `bad_request` message and `data` stays raw JSON (never
//! turned into a tree, never re-formatted).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::ids::validate_id;

/// The longest request line accepted, in bytes before the newline.
pub const MAX_LINE: usize = 1024 * 1024;

/// One request, as sent on the socket.
#[derive(Debug, Clone)]
pub enum Request {
    /// Liveness: answers the worker's pid, version and commit.
    Ping,
    /// Create a session, or replace its `data` keeping `created_at`.
    Put { id: String, data: Box<RawValue> },
    /// Read one session.
    Get { id: String },
    /// Remove one session; `not_found` if there is none.
    Delete { id: String },
    /// Session headers sorted by id, optionally filtered and limited.
    List {
        prefix: Option<String>,
        limit: Option<usize>,
    },
    /// Counters about the store.
    Stats,
}

/// The error codes of §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Invalid JSON, unknown op, missing or wrong field, bad id.
    BadRequest,
    /// No session with that id.
    NotFound,
    /// The request line is longer than [`MAX_LINE`].
    TooLarge,
    /// Shutting down, or the disk is full or failing.
    Unavailable,
    /// A bug.
    Internal,
}

/// A request that could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

#[derive(Deserialize)]
struct WireRequest<'a> {
    op: Option<String>,
    id: Option<String>,
    #[serde(default, borrow, deserialize_with = "present_raw")]
    data: Option<&'a RawValue>,
    prefix: Option<String>,
    limit: Option<u64>,
}

/// `"data": null` is a value, not a missing field.
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Requests are equal when they serialize to the same line.
impl PartialEq for Request {
    fn eq(&self, other: &Self) -> bool {
        self.to_line() == other.to_line()
    }
}

impl Request {
    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Request, ApiError> {
        let text = std::str::from_utf8(line)
            .map_err(|e| ApiError::bad_request(format!("request is not valid UTF-8: {e}")))?;
        let wire: WireRequest = serde_json::from_str(text).map_err(|e| {
            ApiError::bad_request(format!("request is not a valid JSON object: {e}"))
        })?;
        let op = wire
            .op
            .ok_or_else(|| ApiError::bad_request("missing field \"op\""))?;
        let id = || -> Result<String, ApiError> {
            let id = wire
                .id
                .clone()
                .ok_or_else(|| ApiError::bad_request(format!("op {op:?} needs a string \"id\"")))?;
            validate_id(&id).map_err(|m| ApiError::bad_request(format!("bad id: {m}")))?;
            Ok(id)
        };
        match op.as_str() {
            "ping" => Ok(Request::Ping),
            "put" => {
                let id = id()?;
                let data = wire
                    .data
                    .ok_or_else(|| ApiError::bad_request("op \"put\" needs a \"data\" field"))?;
                Ok(Request::Put {
                    id,
                    data: data.to_owned(),
                })
            }
            "get" => Ok(Request::Get { id: id()? }),
            "delete" => Ok(Request::Delete { id: id()? }),
            "list" => Ok(Request::List {
                prefix: wire.prefix,
                limit: wire.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
            }),
            "stats" => Ok(Request::Stats),
            other => Err(ApiError::bad_request(format!(
                "unknown op {other:?}; expected ping, put, get, delete, list or stats"
            ))),
        }
    }

    /// The request as one JSON line (without newline), for clients.
    pub fn to_line(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            op: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            data: Option<&'a RawValue>,
            #[serde(skip_serializing_if = "Option::is_none")]
            prefix: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<usize>,
        }
        let mut out = Out {
            op: "",
            id: None,
            data: None,
            prefix: None,
            limit: None,
        };
        match self {
            Request::Ping => out.op = "ping",
            Request::Put { id, data } => {
                out.op = "put";
                out.id = Some(id);
                out.data = Some(data);
            }
            Request::Get { id } => {
                out.op = "get";
                out.id = Some(id);
            }
            Request::Delete { id } => {
                out.op = "delete";
                out.id = Some(id);
            }
            Request::List { prefix, limit } => {
                out.op = "list";
                out.prefix = prefix.as_deref();
                out.limit = *limit;
            }
            Request::Stats => out.op = "stats",
        }
        serde_json::to_string(&out).expect("a request always serializes")
    }
}

/// A stored session (README, "Files"), `data` kept as the raw JSON it
/// came as.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub data: Box<RawValue>,
    pub created_at: String,
    pub updated_at: String,
}

/// A session without its data, as `list` answers it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionHeader {
    pub id: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Counters the `stats` op answers besides `count`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub count: usize,
    pub journal_bytes: u64,
    pub snapshot_bytes: u64,
    pub writes: u64,
    pub commits: u64,
    pub checkpoints: u64,
    pub last_checkpoint_at: Option<String>,
    pub connections: usize,
    /// The request budget in bytes (`--request-budget-bytes`, in whole
    /// large-request slots), and how much of it connections hold now.
    /// Absent from older workers' answers.
    #[serde(default)]
    pub request_budget: u64,
    #[serde(default)]
    pub request_budget_used: u64,
    /// How each acknowledged write is synced on this volume: `F_FULLFSYNC`,
    /// `F_BARRIERFSYNC` or `fsync` on macOS, `fdatasync` or `fsync`
    /// elsewhere; null until the first sync (answers of older workers lack
    /// it).
    #[serde(default)]
    pub sync: Option<String>,
    /// Addition: the store's health (`ok` or `degraded`, why, since when);
    /// null in answers of older workers.
    #[serde(default)]
    pub store: Option<crate::health::StoreHealth>,
    /// Addition: flushes the writer held back for writes it expected
    /// (group commit on slow disks), and how many of those waits ended
    /// before all of them came; 0 in answers of older workers.
    #[serde(default)]
    pub group_waits: u64,
    #[serde(default)]
    pub group_wait_timeouts: u64,
}

/// One response line.
#[derive(Debug, Clone)]
pub enum Response {
    /// `{"ok":true,"pid":N,"version":V,"commit":C,"store":HEALTH}`.
    Pong {
        pid: u32,
        version: &'static str,
        commit: Option<&'static str>,
        /// Addition: the store's health.
        store: crate::health::StoreHealth,
    },
    /// `{"ok":true,"session":SESSION}`.
    Session(std::sync::Arc<Session>),
    /// `{"ok":true}`.
    Done,
    /// `{"ok":true,"sessions":[HEADER,…]}`.
    List(Vec<SessionHeader>),
    /// `{"ok":true,"count":N,…}`.
    Stats(Stats),
    /// `{"ok":false,"error":{"code":C,"message":M}}`.
    Error(ApiError),
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        Response::Error(e)
    }
}

impl Response {
    /// The response as one JSON line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct ErrBody<'a> {
            code: ErrorCode,
            message: &'a str,
        }
        let mut buf = Vec::with_capacity(128);
        let res = match self {
            Response::Pong {
                pid,
                version,
                commit,
                store,
            } => {
                #[derive(Serialize)]
                struct Out<'a> {
                    ok: bool,
                    pid: u32,
                    version: &'a str,
                    commit: Option<&'a str>,
                    store: &'a crate::health::StoreHealth,
                }
                serde_json::to_writer(
                    &mut buf,
                    &Out {
                        ok: true,
                        pid: *pid,
                        version,
                        commit: *commit,
                        store,
                    },
                )
            }
            Response::Session(s) => {
                #[derive(Serialize)]
                struct Out<'a> {
                    ok: bool,
                    session: &'a Session,
                }
                serde_json::to_writer(
                    &mut buf,
                    &Out {
                        ok: true,
                        session: s,
                    },
                )
            }
            Response::Done => {
                buf.extend_from_slice(br#"{"ok":true}"#);
                Ok(())
            }
            Response::List(items) => {
                #[derive(Serialize)]
                struct Out<'a> {
                    ok: bool,
                    sessions: &'a [SessionHeader],
                }
                serde_json::to_writer(
                    &mut buf,
                    &Out {
                        ok: true,
                        sessions: items,
                    },
                )
            }
            Response::Stats(stats) => {
                #[derive(Serialize)]
                struct Out<'a> {
                    ok: bool,
                    #[serde(flatten)]
                    stats: &'a Stats,
                }
                serde_json::to_writer(&mut buf, &Out { ok: true, stats })
            }
            Response::Error(e) => {
                #[derive(Serialize)]
                struct Out<'a> {
                    ok: bool,
                    error: ErrBody<'a>,
                }
                serde_json::to_writer(
                    &mut buf,
                    &Out {
                        ok: false,
                        error: ErrBody {
                            code: e.code,
                            message: &e.message,
                        },
                    },
                )
            }
        };
        res.expect("responses serialize into a Vec");
        buf.push(b'\n');
        buf
    }
}

#[cfg(test)]
mod tests;
