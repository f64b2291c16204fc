//! `Invalidations`: one per instance serving requests. Listens for the row changes that
//! make the instance's memos (`domain::memos`) stale, on a PostgreSQL connection of its
//! own: the notifications come at commit from every writer (this instance, the others, a
//! migration, an operator's SQL), which a message over the bridge sent after a commit
//! could not promise. While the connection is down the memos are off (see `db::memo`).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::db::memo::CACHE_CHANNEL;
use crate::domain::memos::Memos;

/// A lost connection is tried again after this (the memos are off meanwhile).
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Invalidations {
    database: tokio_postgres::Config,
    memos: Arc<Memos>,
}

impl Invalidations {
    pub fn new(database: tokio_postgres::Config, memos: Arc<Memos>) -> Self {
        Invalidations { database, memos }
    }

    fn listen(&mut self, ctx: &mut Context<Self>) {
        let (database, memos) = (self.database.clone(), self.memos.clone());
        let work = async move {
            let ready = || memos.set_live(true);
            let heard = |payload: &str| memos.heard(payload);
            crate::db::listen::listen(&database, CACHE_CHANNEL, ready, heard).await
        };
        ctx.spawn(work.into_actor(self).map(|why, act, ctx| {
            act.memos.set_live(false);
            tracing::warn!(error = %why, "cache invalidations stopped; memos off until listening again");
            ctx.run_later(RETRY_AFTER, |act, ctx| act.listen(ctx));
        }));
    }
}

impl Actor for Invalidations {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.listen(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.memos.set_live(false);
    }
}

impl Supervised for Invalidations {}
