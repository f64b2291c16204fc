//! `Heartbeats`: one per instance. Gateways' HTTP heartbeats are written in group commits:
//! a heartbeat waits while the batch before it commits, then goes with every heartbeat that
//! came meanwhile in one transaction (`domain::gateways::registry::heartbeats`), and each is
//! answered after that commit. So a heartbeat answered `ok` is stored, as before, but a
//! thousand heartbeats cost a few transactions, not a thousand.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::db::PgPool;
use crate::domain::gateways::registry::{self, Beat};
use crate::domain::DomainError;

/// Heartbeats in one transaction at most (the statement's arrays stay small).
const BATCH: usize = 1000;

/// A heartbeat to store; `done` hears once its transaction committed, or why it failed
/// (the whole batch failed with it: the database away, say).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Store {
    pub beat: Beat,
    pub done: oneshot::Sender<Result<(), String>>,
}

pub struct Heartbeats {
    db: PgPool,
    instance_id: String,
    waiting: Vec<Store>,
    writing: bool,
}

impl Heartbeats {
    pub fn new(db: PgPool, instance_id: String) -> Self {
        Heartbeats {
            db,
            instance_id,
            waiting: Vec::new(),
            writing: false,
        }
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.waiting.is_empty() {
            return;
        }
        self.writing = true;
        let take = self.waiting.len().min(BATCH);
        let (beats, done): (Vec<Beat>, Vec<_>) =
            self.waiting.drain(..take).map(|s| (s.beat, s.done)).unzip();
        let (db, instance_id) = (self.db.clone(), self.instance_id.clone());
        let work = async move {
            let mut conn = db.get().await?;
            let tx = conn.transaction().await?;
            registry::heartbeats(&tx, &beats, "heartbeat", &instance_id).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(())
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            let result = result.map_err(|e| {
                tracing::warn!(error = %e, heartbeats = done.len(), "heartbeats not stored");
                e.to_string()
            });
            for done in done {
                let _ = done.send(result.clone());
            }
            act.writing = false;
            act.write(ctx);
        }));
    }
}

impl Actor for Heartbeats {
    type Context = Context<Self>;
}

impl Supervised for Heartbeats {}

impl Handler<Store> for Heartbeats {
    type Result = ();

    fn handle(&mut self, store: Store, ctx: &mut Context<Self>) {
        self.waiting.push(store);
        self.write(ctx);
    }
}
