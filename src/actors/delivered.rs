//! `DeliveredMarks`: one per instance. What each user's sockets were handed
//! (`domain::h5::stream::delivered`) is recorded in group commits: a write goes
//! [`LINGER`] after the first mark it carries, with every mark that came meanwhile (one
//! statement, the highest number per user), and the next waits for it to finish. Without
//! the wait, a write that finished before the next reply made a statement per reply (a
//! quarter of all chat statements). A mark is a hint for a client that reconnects without
//! saying where it is (it is sent again what came after the mark), so a failed write is
//! logged and not retried (the next mark covers it), and marks lingering when the instance
//! stops are dropped: at worst a reconnecting client is sent a reply twice, with its id.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use crate::db::PgPool;
use crate::domain::h5::stream;

/// A socket of `user_id` was handed the user's messages up to `seq`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handed {
    pub user_id: Uuid,
    pub seq: i64,
}

/// How long the first mark of a write waits for others.
pub const LINGER: Duration = Duration::from_millis(20);

pub struct DeliveredMarks {
    db: PgPool,
    /// The highest number per user not yet written.
    waiting: BTreeMap<Uuid, i64>,
    /// A write is due (lingering) or running: new marks wait for the next.
    busy: bool,
}

impl DeliveredMarks {
    pub fn new(db: PgPool) -> Self {
        DeliveredMarks {
            db,
            waiting: BTreeMap::new(),
            busy: false,
        }
    }

    /// Writes what is waiting after the linger, unless a write is already due or running.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.waiting.is_empty() {
            return;
        }
        self.busy = true;
        ctx.run_later(LINGER, Self::write);
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        let marks: Vec<(Uuid, i64)> = std::mem::take(&mut self.waiting).into_iter().collect();
        let db = self.db.clone();
        let work = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            stream::delivered(&*conn, &marks)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                tracing::warn!(error = %e, "delivered marks not recorded");
            }
            act.busy = false;
            act.schedule(ctx);
        }));
    }
}

impl Actor for DeliveredMarks {
    type Context = Context<Self>;
}

impl Supervised for DeliveredMarks {}

impl Handler<Handed> for DeliveredMarks {
    type Result = ();

    fn handle(&mut self, mark: Handed, ctx: &mut Context<Self>) {
        let seq = self.waiting.entry(mark.user_id).or_insert(mark.seq);
        *seq = (*seq).max(mark.seq);
        self.schedule(ctx);
    }
}
