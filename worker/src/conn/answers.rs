//! What each request is answered, and the answers that may be large,
//! written in pieces: `list` page by page, and a session with its `data`
//! written straight from the store's copy.

use std::sync::atomic::Ordering;

use shared::protocol::{ApiError, ErrorCode, Request, Response, Session, SessionHeader};

use super::Out;
use crate::limits::Shared;
use crate::store::Store;

/// Answers one request (`list` is written by `conn`, page by page).
pub(super) async fn answer(store: &Store, request: Request, shared: &Shared) -> Response {
    match request {
        Request::Ping => Response::Pong {
            pid: std::process::id(),
            version: shared::version::VERSION,
            commit: shared::version::commit_or_null(),
            store: store.health(),
        },
        Request::Put { id, data } => match store.put(id, data).await {
            Ok(s) => Response::Session(s),
            Err(e) => e.into(),
        },
        Request::Get { id } => match store.get(&id) {
            Some(s) => Response::Session(s),
            None => ApiError::new(ErrorCode::NotFound, format!("no session with id {id:?}")).into(),
        },
        Request::Delete { id } => match store.delete(id).await {
            Ok(()) => Response::Done,
            Err(e) => e.into(),
        },
        Request::List { prefix, limit } => Response::List(store.list(prefix.as_deref(), limit)),
        Request::Stats => {
            let mut stats = store.stats();
            stats.connections = shared.active.load(Ordering::Relaxed);
            stats.request_budget = shared.options.budget.bytes();
            stats.request_budget_used = shared.options.budget.used();
            Response::Stats(stats)
        }
    }
}

/// Headers read from the store at a time while a `list` is written.
pub const LIST_PAGE: usize = 256;

/// Writes a `list` answer page by page: the same line as
/// `Response::List`, but never more than a page and a chunk of it in
/// memory. Each page is read from the store on its own, so a session
/// written while a long list is sent may or may not be in it; each id
/// appears once, in order.
pub(super) async fn list(
    out: &mut Out,
    store: &Store,
    prefix: Option<&str>,
    limit: Option<usize>,
) -> std::io::Result<()> {
    out.push(LIST_OPEN).await?;
    let mut left = limit.unwrap_or(usize::MAX);
    let mut after: Option<String> = None;
    let mut first = true;
    while left > 0 {
        let want = left.min(LIST_PAGE);
        let page = store.list_after(prefix, after.as_deref(), want);
        let mut bytes = Vec::with_capacity(page.len() * 96);
        for header in &page {
            if !first {
                bytes.push(b',');
            }
            first = false;
            write_header(&mut bytes, header);
        }
        out.push(&bytes).await?;
        left -= page.len();
        match page.last() {
            Some(last) if page.len() == want => after = Some(last.id.clone()),
            _ => break,
        }
    }
    out.push(LIST_CLOSE).await
}

/// Writes `{"ok":true,"session":SESSION}`: the same line as
/// `Response::Session`, with `data` (up to 1 MiB) written from the
/// session the store shares rather than from a copy.
pub(super) async fn session(out: &mut Out, session: &Session) -> std::io::Result<()> {
    let (head, tail) = session_parts(session);
    out.push(&head).await?;
    out.write_through(session.data.get().as_bytes()).await?;
    out.push(&tail).await
}

/// What comes before and after `data` in a session answer.
fn session_parts(session: &Session) -> (Vec<u8>, Vec<u8>) {
    let text = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let head = format!(
        r#"{{"ok":true,"session":{{"id":{},"data":"#,
        text(&session.id)
    );
    let tail = format!(
        r#","created_at":{},"updated_at":{}}}}}"#,
        text(&session.created_at),
        text(&session.updated_at)
    );
    let mut tail = tail.into_bytes();
    tail.push(b'\n');
    (head.into_bytes(), tail)
}

const LIST_OPEN: &[u8] = br#"{"ok":true,"sessions":["#;
const LIST_CLOSE: &[u8] = b"]}\n";

fn write_header(out: &mut Vec<u8>, header: &SessionHeader) {
    serde_json::to_writer(out, header).expect("a session header serializes");
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol::Response;

    #[test]
    fn a_session_written_in_parts_is_the_same_line_as_a_session_answer() {
        for data in [r#"{"k": [1, "two"]}"#, "null", r#""\u00e9\"q\"""#] {
            let session = Session {
                id: "a:b@c".into(),
                data: serde_json::value::RawValue::from_string(data.into()).unwrap(),
                created_at: "2026-01-01T00:00:00.000Z".into(),
                updated_at: "2026-01-02T00:00:00.000Z".into(),
            };
            let (head, tail) = session_parts(&session);
            let parts = [&head[..], data.as_bytes(), &tail[..]].concat();
            let whole = Response::Session(std::sync::Arc::new(session)).to_line();
            assert_eq!(String::from_utf8(parts), String::from_utf8(whole));
        }
    }

    #[test]
    fn a_list_written_in_pages_is_the_same_line_as_a_list_answer() {
        let headers: Vec<SessionHeader> = (0..3)
            .map(|i| SessionHeader {
                id: format!("id-\"{i}\""),
                created_at: "2026-01-01T00:00:00.000Z".into(),
                updated_at: "2026-01-02T00:00:00.000Z".into(),
            })
            .collect();
        for n in 0..=headers.len() {
            let mut paged = LIST_OPEN.to_vec();
            for (i, h) in headers[..n].iter().enumerate() {
                if i > 0 {
                    paged.push(b',');
                }
                write_header(&mut paged, h);
            }
            paged.extend_from_slice(LIST_CLOSE);
            assert_eq!(
                String::from_utf8(paged).unwrap(),
                String::from_utf8(Response::List(headers[..n].to_vec()).to_line()).unwrap()
            );
        }
    }
}
