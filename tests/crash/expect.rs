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

impl Write {
    pub fn describe(&self) -> String {
        let what = match &self.value {
            Some(v) => format!("put {v}"),
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
        let writes = self.by_id.get(id).map(Vec::as_slice).unwrap_or_default();
        let answered_before = |w: &Write| match &w.answered {
            Some((pos, outcome)) if before(*pos, horizon) => Some(outcome.clone()),
            _ => None,
        };
        let last_ok = writes
            .iter()
            .rposition(|w| answered_before(w) == Some(Outcome::Ok));
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
    pub fn problem(&self, id: &str, horizon: Option<Pos>, found: Option<&Value>) -> Option<String> {
        let e = self.expect(id, horizon);
        if e.allowed.contains(&found) {
            return None;
        }
        let shown = found.map_or("no session".to_string(), |v| format!("data {v}"));
        if let Some(w) = e.refused.iter().find(|w| w.value.as_ref() == found) {
            return Some(format!("session {id}: holds the {}", w.describe()));
        }
        let known = self
            .by_id
            .get(id)
            .is_some_and(|ws| ws.iter().any(|w| w.value.as_ref() == found));
        Some(match e.acked {
            Some(w) if known || found.is_none() => {
                format!("session {id}: lost the {}; found {shown}", w.describe())
            }
            None if found.is_none() => {
                format!("session {id}: missing, but no write was acknowledged (bug in the check)")
            }
            _ => format!("session {id}: {shown}, which no client sent before the cut"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(run_line: u32, conn: u32, dir: Dir, data: &str) -> ClientIo {
        ClientIo {
            pos: Pos {
                run: 0,
                line: run_line,
            },
            conn,
            dir,
            data: data.as_bytes().to_vec(),
        }
    }

    fn pos(line: u32) -> Option<Pos> {
        Some(Pos { run: 0, line })
    }

    fn history() -> History {
        let put = |id: &str, v: u32| {
            format!("{{\"op\":\"put\",\"id\":\"{id}\",\"data\":{{\"v\":{v}}}}}\n")
        };
        let req = format!(
            "{}{}{}",
            put("a", 1),
            put("a", 2),
            r#"{"op":"delete","id":"a"}"#
        );
        History::from_io(&[
            io(10, 0, Dir::Recv, &req[..20]),
            io(
                11,
                0,
                Dir::Recv,
                &format!("{}\n{}", &req[20..], put("b", 9)),
            ),
            io(12, 1, Dir::Recv, &put("c", 5)),
            io(21, 1, Dir::Send, "{\"ok\":true,\"session\":{}}\n"),
            io(20, 0, Dir::Send, "{\"ok\":true,\"session\":{}}\n{\"ok\":tr"),
            io(30, 0, Dir::Send, "ue}\n{\"ok\":true}\n"),
            io(
                40,
                0,
                Dir::Send,
                "{\"ok\":false,\"error\":{\"code\":\"unavailable\"}}\n",
            ),
        ])
        .unwrap()
    }

    #[test]
    fn requests_pair_with_answers_in_order() {
        let h = history();
        assert_eq!((h.requests, h.answers), (5, 5));
        let a = &h.by_id["a"];
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].answered, Some((Pos { run: 0, line: 20 }, Outcome::Ok)));
        // The second answer's newline came at line 30.
        assert_eq!(a[1].answered.as_ref().unwrap().0.line, 30);
        assert_eq!(a[2].value, None);
        assert_eq!(
            h.by_id["b"][0].answered.as_ref().unwrap().1,
            Outcome::Failed("unavailable".into())
        );
    }

    #[test]
    fn allowed_values_at_each_cut() {
        let h = history();
        let v = |n: u32| serde_json::json!({ "v": n });
        // Before anything was read: no session.
        assert!(h.problem("a", pos(5), None).is_none());
        assert!(h
            .problem("a", pos(5), Some(&v(1)))
            .unwrap()
            .contains("no client sent"));
        // Read, not answered: any of them.
        for found in [None, Some(v(1)), Some(v(2))] {
            assert!(h.problem("a", pos(15), found.as_ref()).is_none());
        }
        // The first put answered: it, or a later one (the delete is read).
        assert!(h.problem("a", pos(25), Some(&v(2))).is_none());
        assert!(h
            .problem("c", pos(25), None)
            .unwrap()
            .contains("lost the put"));
        assert!(h.problem("c", pos(15), None).is_none());
        // All answered: the delete.
        assert!(h.problem("a", None, None).is_none());
        assert!(h
            .problem("a", None, Some(&v(2)))
            .unwrap()
            .contains("lost the delete"));
        // A refused put must not appear once refused.
        assert!(h.problem("b", pos(35), Some(&v(9))).is_none());
        assert!(h
            .problem("b", None, Some(&v(9)))
            .unwrap()
            .contains("answered unavailable"));
        assert!(h
            .problem("zz", None, Some(&v(9)))
            .unwrap()
            .contains("no client sent"));
    }

    #[test]
    fn one_id_on_two_connections_at_once_is_refused() {
        let put = "{\"op\":\"put\",\"id\":\"a\",\"data\":1}\n";
        let err =
            History::from_io(&[io(1, 0, Dir::Recv, put), io(2, 1, Dir::Recv, put)]).unwrap_err();
        assert!(err.contains("at once"), "{err}");
    }
}
