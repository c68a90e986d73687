//! Read-ahead: the requests a connection has taken from its client but not
//! yet answered, oldest first.
//!
//! A client may send requests without waiting for each answer. Its `put`s
//! and `delete`s are gathered while more of them can be read at once, then
//! handed to the store's writer together, so that they share one commit,
//! and answered in the order they came. Any other request first waits for
//! every write before it to be answered, so a `get` after a `put` on the
//! same connection sees the put.
//!
//! Bounds: at most [`MAX_AHEAD`] requests. Beyond the first, the requests
//! in flight take a [`LARGE_REQUEST`] slot of the shared request budget,
//! asked for without waiting, and together stay within it; with no slot
//! free the connection takes one request at a time.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use shared::protocol::{Request, Response};

use super::{answers, Out};
use crate::limits::{LargeRequest, RequestBudget, LARGE_REQUEST};
use crate::store::{Prepared, Store};

/// Requests in flight on one connection at most.
pub const MAX_AHEAD: usize = 64;

/// The answer to a write, once it is durable (or has failed).
type Reply = Pin<Box<dyn Future<Output = Response> + Send>>;

enum Entry {
    /// A write encoded but not yet handed to the writer.
    Unsent(Option<Prepared>, Reply),
    Waiting(Reply),
    Done(Response),
}

/// A connection's requests in flight, in the order they came.
#[derive(Default)]
pub(super) struct Ahead {
    /// Each request's answer and its request bytes (line and newline).
    queue: VecDeque<(Entry, usize)>,
    /// Request bytes of everything in `queue`.
    bytes: usize,
}

/// Whether `request` is handed to the writer (and may be read ahead of
/// its answer).
pub(super) fn is_write(request: &Request) -> bool {
    matches!(request, Request::Put { .. } | Request::Delete { .. })
}

impl Ahead {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether a request of `len` bytes may join those in flight without
    /// waiting for their answers: true when nothing is in flight (as
    /// without read-ahead), else within the bounds, taking a budget slot
    /// into `slot` if it holds none. `buffer_large`: the connection's
    /// buffer holds the slot for a long request line, so none is left.
    pub fn admits(
        &self,
        len: usize,
        buffer_large: bool,
        slot: &mut Option<LargeRequest>,
        budget: &RequestBudget,
    ) -> bool {
        if self.queue.is_empty() {
            return true;
        }
        if buffer_large || self.queue.len() >= MAX_AHEAD || self.bytes + len > LARGE_REQUEST {
            return false;
        }
        if slot.is_none() {
            *slot = budget.try_reserve();
        }
        slot.is_some()
    }

    /// Takes a `put` or `delete` of `len` request bytes and encodes it,
    /// to be handed to the writer with the others by [`Ahead::send`].
    pub fn push_write(&mut self, store: &Store, request: Request, len: usize) {
        let (write, reply) = prepare(store, request);
        self.push(Entry::Unsent(Some(write), reply), len);
    }

    /// Whether some write is not handed to the writer yet.
    pub fn has_unsent(&self) -> bool {
        self.queue
            .iter()
            .any(|(e, _)| matches!(e, Entry::Unsent(..)))
    }

    /// Hands every write taken so far to the writer, one right after
    /// another and in order (all encoded already), so that it finds them
    /// together.
    pub async fn send(&mut self, store: &Store) {
        for (entry, _) in self.queue.iter_mut() {
            if let Entry::Unsent(write, _) = entry {
                let write = write.take().expect("an unsent write is sent once");
                // If the store is closing, the reply says so.
                let _ = store.send(write).await;
                let Entry::Unsent(_, reply) = std::mem::replace(entry, Entry::Done(Response::Done))
                else {
                    unreachable!("matched just above");
                };
                *entry = Entry::Waiting(reply);
            }
        }
    }

    /// Queues an answer known already (a bad request), so it is written
    /// in its place.
    pub fn push_done(&mut self, response: Response, len: usize) {
        self.push(Entry::Done(response), len);
    }

    fn push(&mut self, entry: Entry, len: usize) {
        self.queue.push_back((entry, len));
        self.bytes += len;
    }

    /// Resolves once the oldest request has its answer (at once if none
    /// is in flight). Cancel-safe: an answer is kept until written. Only
    /// after [`Ahead::send`] (an unsent write never completes).
    pub async fn oldest_done(&mut self) {
        if let Some((Entry::Waiting(reply), _)) = self.queue.front_mut() {
            let response = reply.as_mut().await;
            self.queue[0].0 = Entry::Done(response);
        }
    }

    /// Writes into `out` the answers of the oldest requests that have one,
    /// up to the first still waiting or unsent.
    pub async fn answer_ready(&mut self, out: &mut Out) -> std::io::Result<()> {
        while let Some((front, _)) = self.queue.front_mut() {
            match front {
                Entry::Unsent(..) => break,
                Entry::Waiting(reply) => {
                    match poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await {
                        Poll::Ready(response) => *front = Entry::Done(response),
                        Poll::Pending => break,
                    }
                }
                Entry::Done(_) => {}
            }
            self.answer_oldest(out).await?;
        }
        Ok(())
    }

    /// Sends what is unsent, waits for every answer in flight and writes
    /// them into `out`, in order.
    pub async fn settle(&mut self, store: &Store, out: &mut Out) -> std::io::Result<()> {
        self.send(store).await;
        while !self.queue.is_empty() {
            self.oldest_done().await;
            self.answer_oldest(out).await?;
        }
        Ok(())
    }

    /// Writes the oldest answer, which is done, and forgets it.
    async fn answer_oldest(&mut self, out: &mut Out) -> std::io::Result<()> {
        let Some((Entry::Done(response), len)) = self.queue.pop_front() else {
            unreachable!("the oldest answer is done before it is written");
        };
        self.bytes -= len;
        write(out, response).await
    }
}

/// Writes one answer into `out` (a session's data from the store's copy).
pub(super) async fn write(out: &mut Out, response: Response) -> std::io::Result<()> {
    match response {
        Response::Session(session) => answers::session(out, &session).await,
        other => out.push(&other.to_line()).await,
    }
}

/// Encodes a `put` or `delete` for the writer; what answers it once it
/// is durable.
fn prepare(store: &Store, request: Request) -> (Prepared, Reply) {
    match request {
        Request::Put { id, data } => {
            let (write, durable) = store.prepare_put(id, data);
            let reply = Box::pin(async move {
                match durable.await {
                    Ok(session) => Response::Session(session),
                    Err(e) => e.into(),
                }
            });
            (write, reply)
        }
        Request::Delete { id } => {
            let (write, durable) = store.prepare_delete(id);
            let reply = Box::pin(async move {
                match durable.await {
                    Ok(()) => Response::Done,
                    Err(e) => e.into(),
                }
            });
            (write, reply)
        }
        other => unreachable!("only writes are read ahead, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` requests of `len` bytes in flight (answers known, so no store
    /// is needed: the bounds count requests and bytes alike).
    fn in_flight(n: usize, len: usize) -> Ahead {
        let mut ahead = Ahead::default();
        for _ in 0..n {
            ahead.push_done(Response::Done, len);
        }
        ahead
    }

    #[test]
    fn the_first_request_is_always_admitted_and_takes_no_slot() {
        let budget = RequestBudget::new(0);
        let _held = budget.try_reserve().expect("the one slot");
        let mut slot = None;
        assert!(Ahead::default().admits(LARGE_REQUEST, true, &mut slot, &budget));
        assert!(slot.is_none());
    }

    #[test]
    fn requests_in_flight_stay_within_the_count_and_one_slot_of_bytes() {
        let budget = RequestBudget::new(4 * LARGE_REQUEST as u64);
        let mut slot = None;
        // The second request takes a slot, and keeps it for the rest.
        assert!(in_flight(1, 100).admits(100, false, &mut slot, &budget));
        assert!(slot.is_some());
        assert_eq!(budget.used(), LARGE_REQUEST as u64);
        assert!(in_flight(MAX_AHEAD - 1, 100).admits(100, false, &mut slot, &budget));
        assert!(
            !in_flight(MAX_AHEAD, 100).admits(100, false, &mut slot, &budget),
            "more than {MAX_AHEAD} in flight"
        );
        // Bytes: together within one slot.
        let half = LARGE_REQUEST / 2;
        assert!(in_flight(1, half).admits(LARGE_REQUEST - half, false, &mut slot, &budget));
        assert!(
            !in_flight(1, half).admits(LARGE_REQUEST - half + 1, false, &mut slot, &budget),
            "one byte over the slot"
        );
        assert_eq!(budget.used(), LARGE_REQUEST as u64, "still the one slot");
    }

    #[test]
    fn with_no_slot_free_or_a_long_line_held_it_takes_one_request_at_a_time() {
        let budget = RequestBudget::new(LARGE_REQUEST as u64);
        let held = budget.try_reserve().expect("the one slot");
        let mut slot = None;
        assert!(!in_flight(1, 100).admits(100, false, &mut slot, &budget));
        assert!(slot.is_none());
        drop(held);
        // The connection's buffer holds a slot for a long line: no second.
        assert!(!in_flight(1, 100).admits(100, true, &mut slot, &budget));
        assert!(slot.is_none());
        assert!(in_flight(1, 100).admits(100, false, &mut slot, &budget));
    }
}
