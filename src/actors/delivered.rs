//! `DeliveredMarks`: one per instance. What each user's sockets were handed
//! (`domain::h5::stream::delivered`) is recorded in group commits: the marks that come while
//! one write runs go together in the next (one statement, the highest number per user), so a
//! busy instance writes a few of these a second, not one per reply. A mark is a hint for a
//! client that reconnects without saying where it is (it is sent again what came after the
//! mark), so a failed write is logged and not retried: the next mark covers it.

use std::collections::BTreeMap;

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

pub struct DeliveredMarks {
    db: PgPool,
    /// The highest number per user not yet written.
    waiting: BTreeMap<Uuid, i64>,
    writing: bool,
}

impl DeliveredMarks {
    pub fn new(db: PgPool) -> Self {
        DeliveredMarks {
            db,
            waiting: BTreeMap::new(),
            writing: false,
        }
    }

    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.waiting.is_empty() {
            return;
        }
        self.writing = true;
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
            act.writing = false;
            act.write(ctx);
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
        self.write(ctx);
    }
}
