//! SIGUSR1's promise: once answered ("checkpoint written"), `sessions.json`
//! is durable and holds every write acknowledged before the signal.

use serde_json::Value;

use super::check::DATA;
use super::expect::{short, History, Kind, Problem};
use super::fs::View;
use super::ops::Pos;

/// A SIGUSR1 answered "checkpoint written": from `answered` on,
/// `sessions.json` must hold every write acknowledged before `signal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promise {
    pub signal: Pos,
    pub answered: Pos,
}

/// Pairs each SIGUSR1 with the next checkpoint log line, in order (each
/// signal is answered by one "checkpoint written" or "checkpoint failed").
pub fn promises(signals: &[(Pos, String)], log: &[(Pos, String)]) -> Vec<Promise> {
    let mut events: Vec<(Pos, bool, bool)> = signals
        .iter()
        .filter(|(_, name)| name == "SIGUSR1")
        .map(|(pos, _)| (*pos, true, false))
        .collect();
    for (pos, line) in log {
        if line.contains("checkpoint written") || line.contains("checkpoint failed") {
            events.push((*pos, false, line.contains("checkpoint written")));
        }
    }
    events.sort_by_key(|e| e.0);
    let mut waiting = std::collections::VecDeque::new();
    let mut out = Vec::new();
    for (pos, is_signal, written) in events {
        if is_signal {
            waiting.push_back(pos);
        } else if let Some(signal) = waiting.pop_front() {
            if written {
                out.push(Promise {
                    signal,
                    answered: pos,
                });
            }
        }
    }
    out
}

/// Problems with `sessions.json` in a state cut before `horizon`: once a
/// SIGUSR1 was answered "checkpoint written", it must hold every write
/// acknowledged before that signal (or newer data).
pub fn check_promises(
    view: &View,
    horizon: Option<Pos>,
    promises: &[Promise],
    history: &History,
) -> Vec<Problem> {
    let due = promises
        .iter()
        .filter(|p| horizon.is_none_or(|h| p.answered < h))
        .max_by_key(|p| p.signal);
    let Some(promise) = due else {
        return Vec::new();
    };
    let problem = |text: String| vec![Problem::new(Kind::Checkpoint, text)];
    let path = format!("{DATA}/sessions.json");
    let said = format!(
        "the SIGUSR1 at {} was answered at {}",
        promise.signal, promise.answered
    );
    let Some((_, Some(content))) = view.0.iter().find(|(p, _)| *p == path) else {
        return problem(format!("{path} is missing, but {said}"));
    };
    let doc: Value = match serde_json::from_slice(&content.to_vec()) {
        Ok(doc) => doc,
        Err(e) => return problem(format!("{path} is unreadable ({e}), but {said}")),
    };
    let mut problems = Vec::new();
    for id in history.by_id.keys() {
        let found = doc["sessions"].get(id).map(|s| &s["data"]);
        let e = history.expect_since(id, Some(promise.signal), horizon);
        if !e.allowed.contains(&found) {
            let acked = e.acked.map_or("no write".to_string(), |w| w.describe());
            let shown = found.map_or("no session".to_string(), |v| format!("data {}", short(v)));
            let text = format!("{path}: session {id} has {shown}, but {said} after the {acked}");
            problems.push(Problem::new(Kind::Checkpoint, text));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sigusr1_pairs_with_the_next_checkpoint_line() {
        let p = |line| Pos { run: 0, line };
        let signals = [
            (p(1), "SIGUSR1".to_string()),
            (p(2), "SIGTERM".into()),
            (p(5), "SIGUSR1".into()),
        ];
        let log = [
            (p(3), "INFO checkpoint written sessions=3".to_string()),
            (p(4), "INFO other".into()),
            (p(6), "ERROR checkpoint failed".into()),
        ];
        assert_eq!(
            promises(&signals, &log),
            [Promise {
                signal: p(1),
                answered: p(3)
            }]
        );
    }
}
