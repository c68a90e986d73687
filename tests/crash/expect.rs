//! What clients were told, from the bytes the worker read and sent: each
//! write request, where it was read, and where and how it was answered;
//! from that, what a crash state may hold for each session.
//!
//! Answers on a connection come in the order of its requests, so the n-th
//! line sent answers the n-th line read. Each session must be written by
//! one connection at a time (the workload's ids are per connection), so
//! the order of its writes is the order they were read.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ops::{ClientIo, Dir, Pos};

/// How a write was answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    /// The error code (`unavailable`, `not_found`, ...).
    Failed(String),
}

/// One put or delete.
#[derive(Debug, Clone)]
pub struct Write {
    pub conn: u32,
    /// The data put; `None` for a delete.
    pub value: Option<Value>,
    pub received: Pos,
    pub answered: Option<(Pos, Outcome)>,
}

/// `v` as JSON, cut to 60 characters.
pub fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

impl Write {
    pub fn describe(&self) -> String {
        let what = match &self.value {
            Some(v) => format!("put {}", short(v)),
            None => "delete".to_string(),
        };
        match &self.answered {
            Some((pos, Outcome::Ok)) => format!("{what} (acknowledged at {pos})"),
            Some((pos, Outcome::Failed(code))) => format!("{what} (answered {code} at {pos})"),
            None => format!("{what} (read at {}, never answered)", self.received),
        }
    }
}

/// Every write, by session id.
#[derive(Debug, Default)]
pub struct History {
    pub by_id: BTreeMap<String, Vec<Write>>,
    pub requests: usize,
    pub answers: usize,
}

/// What kind of broken promise a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The worker did not start (exit 4: damaged; or any other failure).
    DidNotStart,
    /// An acknowledged write is gone (or an older value is back).
    Lost,
    /// The data of a put answered with an error is there.
    Refused,
    /// Data no client sent (before the cut) is there.
    Unsent,
    /// `sessions.json` lacks a write acknowledged before a SIGUSR1 that
    /// was answered ("checkpoint written") before the cut.
    Checkpoint,
    /// Anything else (an odd answer from the worker).
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::DidNotStart => "the worker did not start",
            Kind::Lost => "an acknowledged write was lost",
            Kind::Refused => "a refused write came back",
            Kind::Unsent => "data no client sent",
            Kind::Checkpoint => "a checkpoint answered before it held the writes",
            Kind::Other => "other",
        }
    }
}

/// One broken promise in one state.
#[derive(Debug, Clone)]
pub struct Problem {
    pub kind: Kind,
    pub text: String,
}

impl Problem {
    pub fn new(kind: Kind, text: impl Into<String>) -> Problem {
        Problem {
            kind,
            text: text.into(),
        }
    }
}

/// What a state may hold for one session, for answers sent before a cut.
#[derive(Debug)]
pub struct Expect<'a> {
    /// The last write acknowledged before the cut.
    pub acked: Option<&'a Write>,
    /// Values it may hold (`None`: no session): the acknowledged one and
    /// those of writes read but not answered before the cut.
    pub allowed: Vec<Option<&'a Value>>,
    /// Puts refused before the cut: their data must not be there.
    pub refused: Vec<&'a Write>,
}

fn before(pos: Pos, horizon: Option<Pos>) -> bool {
    horizon.is_none_or(|h| pos < h)
}

impl History {
    /// Pairs requests and answers per connection.
    pub fn from_io(io: &[ClientIo]) -> Result<History, String> {
        #[derive(Default)]
        struct Conn {
            inbuf: Vec<u8>,
            outbuf: Vec<u8>,
            requests: Vec<(Pos, Vec<u8>)>,
            answers: Vec<(Pos, Vec<u8>)>,
        }
        let mut conns: BTreeMap<u32, Conn> = BTreeMap::new();
        for chunk in io {
            let c = conns.entry(chunk.conn).or_default();
            let (buf, lines) = match chunk.dir {
                Dir::Recv => (&mut c.inbuf, &mut c.requests),
                Dir::Send => (&mut c.outbuf, &mut c.answers),
            };
            buf.extend_from_slice(&chunk.data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                lines.push((chunk.pos, line));
            }
        }
        let mut h = History::default();
        let mut writes: Vec<(String, Write)> = Vec::new();
        for (conn, c) in &conns {
            h.requests += c.requests.len();
            h.answers += c.answers.len();
            if c.answers.len() > c.requests.len() {
                return Err(format!("connection {conn}: more answers than requests"));
            }
            for (i, (received, line)) in c.requests.iter().enumerate() {
                let Ok(req) = serde_json::from_slice::<Value>(line) else {
                    continue;
                };
                let id = req["id"].as_str().unwrap_or_default().to_string();
                let value = match req["op"].as_str() {
                    Some("put") => Some(req["data"].clone()),
                    Some("delete") => None,
                    _ => continue,
                };
                let answered = match c.answers.get(i) {
                    None => None,
                    Some((pos, line)) => {
                        let a: Value = serde_json::from_slice(line).map_err(|e| {
                            format!("connection {conn}: answer {i} is not JSON ({e})")
                        })?;
                        let outcome = if a["ok"] == true {
                            Outcome::Ok
                        } else {
                            Outcome::Failed(a["error"]["code"].as_str().unwrap_or("?").to_string())
                        };
                        Some((*pos, outcome))
                    }
                };
                let w = Write {
                    conn: *conn,
                    value,
                    received: *received,
                    answered,
                };
                writes.push((id, w));
            }
        }
        writes.sort_by_key(|(_, w)| w.received);
        for (id, w) in writes {
            let list = h.by_id.entry(id.clone()).or_default();
            if let Some(prev) = list.last() {
                let done = prev.answered.as_ref().is_some_and(|(p, _)| *p < w.received);
                if prev.conn != w.conn && !done {
                    return Err(format!(
                        "session {id} was written by connections {} and {} at once; \
                         the workload must keep each id on one connection",
                        prev.conn, w.conn
                    ));
                }
            }
            list.push(w);
        }
        Ok(h)
    }

    /// What session `id` may be after a cut with answers sent before
    /// `horizon` (`None`: every answer).
    pub fn expect(&self, id: &str, horizon: Option<Pos>) -> Expect<'_> {
        self.expect_since(id, horizon, horizon)
    }

    /// Like [`expect`](Self::expect), but only writes acknowledged before
    /// `acked_before` must be there (later ones may).
    pub fn expect_since(
        &self,
        id: &str,
        acked_before: Option<Pos>,
        horizon: Option<Pos>,
    ) -> Expect<'_> {
        let writes = self.by_id.get(id).map(Vec::as_slice).unwrap_or_default();
        let answered_before = |w: &Write| match &w.answered {
            Some((pos, outcome)) if before(*pos, horizon) => Some(outcome.clone()),
            _ => None,
        };
        let acked_in_time = |w: &Write| matches!(&w.answered, Some((pos, Outcome::Ok)) if before(*pos, acked_before));
        let last_ok = writes.iter().rposition(acked_in_time);
        let acked = last_ok.map(|i| &writes[i]);
        let mut allowed = vec![acked.and_then(|w| w.value.as_ref())];
        let mut refused = Vec::new();
        for w in &writes[last_ok.map_or(0, |i| i + 1)..] {
            match answered_before(w) {
                Some(Outcome::Failed(_)) if w.value.is_some() => refused.push(w),
                Some(Outcome::Failed(_)) => {}
                _ if before(w.received, horizon) => allowed.push(w.value.as_ref()),
                _ => {}
            }
        }
        Expect {
            acked,
            allowed,
            refused,
        }
    }

    /// Why `found` (`None`: no session) breaks the promise, if it does.
    pub fn problem(
        &self,
        id: &str,
        horizon: Option<Pos>,
        found: Option<&Value>,
    ) -> Option<Problem> {
        let e = self.expect(id, horizon);
        if e.allowed.contains(&found) {
            return None;
        }
        let shown = found.map_or("no session".to_string(), |v| format!("data {}", short(v)));
        if let Some(w) = e.refused.iter().find(|w| w.value.as_ref() == found) {
            return Some(Problem::new(
                Kind::Refused,
                format!("session {id}: holds the {}", w.describe()),
            ));
        }
        let known = self
            .by_id
            .get(id)
            .is_some_and(|ws| ws.iter().any(|w| w.value.as_ref() == found));
        Some(match e.acked {
            Some(w) if known || found.is_none() => Problem::new(
                Kind::Lost,
                format!("session {id}: lost the {}; found {shown}", w.describe()),
            ),
            None if found.is_none() => Problem::new(
                Kind::Other,
                format!("session {id}: missing, but no write was acknowledged (bug in the check)"),
            ),
            _ => Problem::new(
                Kind::Unsent,
                format!("session {id}: {shown}, which no client sent before the cut"),
            ),
        })
    }
}

#[cfg(test)]
mod tests;
