//! `GroupCommit<W>`: one per instance for each kind of write that many callers make at once
//! and each must hear of only after it committed (gateways' heartbeats, H5 users' chat
//! messages). An item waits while the batch before it is written, then goes with every
//! item that came meanwhile (at most [`Write::BATCH`]) in one transaction, and each caller
//! hears its own item's outcome after that commit. So a thousand writes cost a few
//! commits, not a thousand, and an item answered "stored" is stored, as before.

use std::future::Future;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use tokio::sync::oneshot;

use crate::domain::DomainError;

/// One kind of batched write.
pub trait Write: Unpin + 'static {
    type Item: Send + Unpin + 'static;
    type Outcome: Send + 'static;
    /// Items in one batch at most (a statement's arrays, a transaction's locks, stay small).
    const BATCH: usize;
    /// Writes `items` and answers each one's outcome, in the order given.
    fn write(&self, items: Vec<Self::Item>) -> LocalBoxFuture<'static, Vec<Self::Outcome>>;
}

/// An item to write; `done` hears its outcome once its batch is written.
pub struct Submit<W: Write> {
    pub item: W::Item,
    pub done: oneshot::Sender<W::Outcome>,
}

impl<W: Write> Message for Submit<W> {
    type Result = ();
}

/// Writes `item` through `writer` and waits for its outcome; `None` when the writer is
/// gone (the instance is stopping).
pub async fn submit<W: Write>(writer: &Addr<GroupCommit<W>>, item: W::Item) -> Option<W::Outcome> {
    let (done, outcome) = oneshot::channel();
    writer.do_send(Submit { item, done });
    outcome.await.ok()
}

/// Each item's outcome once a batch was written `together` (in one transaction): when the
/// database refused the batch (or it lost a deadlock), each item written by itself
/// (`alone`), so an item the database refuses fails alone; when the database is away, its
/// error for every item at once (item by item, each would wait for it again). `what` names
/// the items in the log.
pub async fn each_outcome<'i, I, O, F>(
    what: &str,
    items: &'i [I],
    together: Result<Vec<O>, DomainError>,
    alone: impl Fn(&'i I) -> F,
) -> Vec<Result<O, String>>
where
    F: Future<Output = Result<O, String>>,
{
    let error = match together {
        Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
        Err(e) => e,
    };
    if error.is_database_away() {
        tracing::warn!(items = items.len(), %error, "{what} not stored");
        return items.iter().map(|_| Err(error.to_string())).collect();
    }
    tracing::warn!(items = items.len(), %error, "{what} not stored together; one by one");
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        outcomes.push(alone(item).await);
    }
    outcomes
}

pub struct GroupCommit<W: Write> {
    writer: W,
    waiting: Vec<Submit<W>>,
    writing: bool,
}

impl<W: Write> GroupCommit<W> {
    pub fn new(writer: W) -> Self {
        GroupCommit {
            writer,
            waiting: Vec::new(),
            writing: false,
        }
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.waiting.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.waiting.len().min(W::BATCH);
        let (items, done): (Vec<W::Item>, Vec<_>) =
            self.waiting.drain(..take).map(|s| (s.item, s.done)).unzip();
        ctx.spawn(
            self.writer
                .write(items)
                .into_actor(self)
                .map(move |outcomes, act, ctx| {
                    for (done, outcome) in done.into_iter().zip(outcomes) {
                        let _ = done.send(outcome);
                    }
                    act.writing = false;
                    act.write(ctx);
                }),
        );
    }
}

impl<W: Write> Actor for GroupCommit<W> {
    type Context = Context<Self>;
}

impl<W: Write> Supervised for GroupCommit<W> {}

impl<W: Write> Handler<Submit<W>> for GroupCommit<W> {
    type Result = ();

    fn handle(&mut self, submit: Submit<W>, ctx: &mut Context<Self>) {
        self.waiting.push(submit);
        self.write(ctx);
    }
}
