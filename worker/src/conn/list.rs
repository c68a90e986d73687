//! `list` answers, written page by page.

use shared::protocol::SessionHeader;

use super::Out;
use crate::store::Store;

/// Headers read from the store at a time while a `list` is written.
pub const LIST_PAGE: usize = 256;

/// Writes a `list` answer page by page: the same line as
/// `Response::List`, but never more than a page and a chunk of it in
/// memory. Each page is read from the store on its own, so a session
/// written while a long list is sent may or may not be in it; each id
/// appears once, in order.
pub(super) async fn write(
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
