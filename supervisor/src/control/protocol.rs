//! The control socket's messages: one JSON request line, one JSON answer
//! line (README, "The control socket").

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::status::Status;

/// What a client asks, as `{"op": …}`. Fields beyond those named here are
/// ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// The whole state: supervisor, worker, store, sessions, updates and
    /// paths. Answered with [`ControlResponse::Status`].
    Status,
    /// Replace the worker with a fresh one, without refusing a
    /// connection. Answered once the new worker is ready, with
    /// [`ControlResponse::Restarted`].
    Restart,
    /// Poll git now and apply what is found (`retry`: also the commits
    /// held after a failure). Answered with [`ControlResponse::Updated`]
    /// once the poll, and any deploy it started, is over.
    Update {
        #[serde(default)]
        retry: bool,
    },
}

/// The answer to any request that fails, and to one that is not a
/// [`ControlRequest`].
pub const UNKNOWN_REQUEST: &str =
    "unknown request; expected {\"op\":\"status\"|\"restart\"|\"update\"}";

/// What the supervisor answers.
#[derive(Debug, Clone)]
pub enum ControlResponse {
    /// To `status`: the state, as `supervisor status --json` prints it.
    Status(Box<Status>),
    /// To `restart`: `{"ok": true, "worker": {"pid", "commit"}}`.
    Restarted { pid: u32, commit: Option<String> },
    /// To `update`: `{"ok": true, "outcome": "…"}`, what the poll did.
    Updated { outcome: String },
    /// To any request that failed or could not be taken now (the
    /// supervisor is stopping, every control connection is busy, the
    /// request is not one): `{"ok": false, "error": "…"}`.
    Failed { error: String },
}

impl ControlRequest {
    /// The request on a line, or `None` if it is not one. Only a JSON
    /// object is a request (serde would also read `["status"]` as one).
    pub fn parse(line: &str) -> Option<ControlRequest> {
        match serde_json::from_str::<Value>(line).ok()? {
            object @ Value::Object(_) => serde_json::from_value(object).ok(),
            _ => None,
        }
    }

    /// The request line, without its newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("a control request serializes")
    }
}

impl ControlResponse {
    pub fn failed(error: impl Into<String>) -> ControlResponse {
        ControlResponse::Failed {
            error: error.into(),
        }
    }

    /// The answer as JSON.
    pub fn to_value(&self) -> Value {
        match self {
            ControlResponse::Status(status) => {
                serde_json::to_value(status).expect("status serializes")
            }
            ControlResponse::Restarted { pid, commit } => {
                json!({"ok": true, "worker": {"pid": pid, "commit": commit}})
            }
            ControlResponse::Updated { outcome } => json!({"ok": true, "outcome": outcome}),
            ControlResponse::Failed { error } => json!({"ok": false, "error": error}),
        }
    }

    /// What `answer` says to `request`; an error if it is neither that
    /// request's answer nor a failure.
    pub fn parse(request: &ControlRequest, answer: Value) -> Result<ControlResponse, String> {
        if answer["ok"] == false {
            let error = answer["error"].as_str().unwrap_or("no reason given");
            return Ok(ControlResponse::failed(error));
        }
        let unexpected =
            |e: &dyn std::fmt::Display| format!("unexpected answer to {}: {e}", request.to_line());
        match request {
            ControlRequest::Status => serde_json::from_value(answer)
                .map(|s| ControlResponse::Status(Box::new(s)))
                .map_err(|e| unexpected(&e)),
            ControlRequest::Restart => {
                let pid = answer["worker"]["pid"].as_u64();
                match (answer["ok"] == true, pid) {
                    (true, Some(pid)) => Ok(ControlResponse::Restarted {
                        pid: pid as u32,
                        commit: answer["worker"]["commit"].as_str().map(String::from),
                    }),
                    _ => Err(unexpected(&answer)),
                }
            }
            ControlRequest::Update { .. } => match (answer["ok"] == true, &answer["outcome"]) {
                (true, Value::String(outcome)) => Ok(ControlResponse::Updated {
                    outcome: outcome.clone(),
                }),
                _ => Err(unexpected(&answer)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_before_and_anything_else_is_none() {
        assert_eq!(
            ControlRequest::parse(r#"{"op":"status"}"#),
            Some(ControlRequest::Status)
        );
        assert_eq!(
            ControlRequest::parse(r#"{"op":"update"}"#),
            Some(ControlRequest::Update { retry: false })
        );
        assert_eq!(
            ControlRequest::parse(r#"{"op":"update","retry":true,"extra":1}"#),
            Some(ControlRequest::Update { retry: true })
        );
        assert_eq!(ControlRequest::parse(r#"{"op":"reboot"}"#), None);
        assert_eq!(ControlRequest::parse(r#"["status"]"#), None);
        assert_eq!(ControlRequest::parse(r#"["update",true]"#), None);
        assert_eq!(ControlRequest::parse("not json"), None);
        assert_eq!(
            ControlRequest::Update { retry: true }.to_line(),
            r#"{"op":"update","retry":true}"#
        );
        assert_eq!(ControlRequest::Restart.to_line(), r#"{"op":"restart"}"#);
    }

    #[test]
    fn answers_keep_their_json_and_read_back() {
        let restarted = ControlResponse::Restarted {
            pid: 12,
            commit: None,
        };
        let v = restarted.to_value();
        assert_eq!(
            v,
            json!({"ok": true, "worker": {"pid": 12, "commit": null}})
        );
        match ControlResponse::parse(&ControlRequest::Restart, v) {
            Ok(ControlResponse::Restarted {
                pid: 12,
                commit: None,
            }) => {}
            other => panic!("{other:?}"),
        }
        let updated = ControlResponse::Updated {
            outcome: "up to date".into(),
        };
        let v = updated.to_value();
        assert_eq!(v, json!({"ok": true, "outcome": "up to date"}));
        let request = ControlRequest::Update { retry: false };
        match ControlResponse::parse(&request, v) {
            Ok(ControlResponse::Updated { outcome }) => assert_eq!(outcome, "up to date"),
            other => panic!("{other:?}"),
        }
        let failed = ControlResponse::failed("the supervisor is stopping").to_value();
        assert_eq!(
            failed,
            json!({"ok": false, "error": "the supervisor is stopping"})
        );
        match ControlResponse::parse(&ControlRequest::Status, failed) {
            Ok(ControlResponse::Failed { error }) => {
                assert_eq!(error, "the supervisor is stopping")
            }
            other => panic!("{other:?}"),
        }
        assert!(ControlResponse::parse(&ControlRequest::Restart, json!({"ok": true})).is_err());
        assert!(ControlResponse::parse(&ControlRequest::Status, json!({"x": 1})).is_err());
    }
}
