//! Gateways' HTTP heartbeats, written in group commits (`GroupCommit<HeartbeatWrites>`, one
//! per instance): all that came while the batch before them committed go in one
//! transaction (`domain::gateways::registry::heartbeats`), each answered after that commit.

use futures_util::future::{FutureExt, LocalBoxFuture};

use super::group_commit::{GroupCommit, Write};
use crate::db::PgPool;
use crate::domain::gateways::registry::{self, Beat};
use crate::domain::DomainError;

/// The instance's heartbeat writer.
pub type Heartbeats = GroupCommit<HeartbeatWrites>;

pub struct HeartbeatWrites {
    pub db: PgPool,
    pub instance_id: String,
}

impl Write for HeartbeatWrites {
    type Item = Beat;
    /// Stored, or why not (the whole batch failed with it: the database away, say).
    type Outcome = Result<(), String>;
    const BATCH: usize = 1000;

    fn write(&self, beats: Vec<Beat>) -> LocalBoxFuture<'static, Vec<Self::Outcome>> {
        let (db, instance_id) = (self.db.clone(), self.instance_id.clone());
        async move {
            let written = async {
                let mut conn = db.get().await?;
                let tx = conn.transaction().await?;
                registry::heartbeats(&tx, &beats, "heartbeat", &instance_id).await?;
                tx.commit().await?;
                Ok::<_, DomainError>(())
            };
            let outcome = written.await.map_err(|e| {
                tracing::warn!(error = %e, heartbeats = beats.len(), "heartbeats not stored");
                e.to_string()
            });
            vec![outcome; beats.len()]
        }
        .boxed_local()
    }
}
