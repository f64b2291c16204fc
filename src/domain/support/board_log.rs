//! Board sync events (docs/board-sync-protocol.md) and the board's feed numbers: each
//! committed task change of a board becomes one sync event with the board's next sync
//! number, and each activity event of a board takes the board's next feed number, written
//! in the change's own transaction. Numbers follow commit order because they are taken
//! under the lock of the board's counter row (`board_seqs`), held to the commit; a reader
//! that has number n has everything before it.
//!
//! A task write takes that lock once, last ([`close`]): its activity events and sync
//! events are gathered while it works ([`Activities`]) and written, numbered, by one
//! statement just before the organization's event and the commit, so writers of one board
//! wait on each other for that statement and the commit only.

use chrono::Utc;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::record::{get, RowError};
use crate::db::GenericClient;
use crate::domain::model::TaskChange;
use crate::domain::DomainResult;
use crate::protocol::board::{Numbered, TaskEvent};

/// Events kept per board; older ones are dropped as new ones come.
const KEPT: i64 = 1000;

/// The wire event of a change (the reference's fields; `append` numbers it); `None` for
/// changes board sync does not carry (comments, notices).
fn frame(change: &TaskChange) -> Option<TaskEvent<'_>> {
    let event = match change {
        TaskChange::Created { task } => TaskEvent::Created { task },
        TaskChange::Updated {
            task_id,
            changes,
            updated_by,
        } => TaskEvent::Updated {
            task_id: *task_id,
            changes,
            updated_by,
        },
        TaskChange::Deleted { task_id } => TaskEvent::Deleted { task_id: *task_id },
        TaskChange::Commented { .. }
        | TaskChange::Notified { .. }
        | TaskChange::Recorded { .. }
        | TaskChange::Synced { .. } => return None,
    };
    Some(event)
}

/// The activity events of one board write, in order: written and numbered by [`close`].
#[derive(Debug, Default)]
pub struct Activities {
    event_types: Vec<String>,
    messages: Vec<String>,
    agent_ids: Vec<Option<Uuid>>,
    task_ids: Vec<Uuid>,
}

impl Activities {
    pub fn push(
        &mut self,
        task_id: Uuid,
        agent_id: Option<Uuid>,
        event_type: &str,
        message: String,
    ) {
        self.event_types.push(event_type.to_string());
        self.messages.push(message);
        self.agent_ids.push(agent_id);
        self.task_ids.push(task_id);
    }
}

/// Ends a write to a board (of `organization_id`): numbers and writes its `activities` in
/// the board's feed and its `changes` in the board's sync log, and every hundred sync
/// numbers drops what is older than the `KEPT` last. One statement, which locks the
/// board's counters until the commit: call it last, before the organization's event only.
/// Answers the sync events it wrote (`TaskChange::Synced`), to be handed on after the commit.
pub async fn close(
    client: &impl GenericClient,
    board_id: Uuid,
    organization_id: Uuid,
    activities: Activities,
    changes: &[TaskChange],
) -> DomainResult<Option<TaskChange>> {
    let timestamp = Utc::now();
    // Numbered again by the statement (`||` replaces the key).
    let payloads: Vec<Json<Numbered<'_>>> = changes
        .iter()
        .filter_map(frame)
        .map(|event| {
            Json(Numbered {
                event,
                timestamp,
                seq: 0,
            })
        })
        .collect();
    if payloads.is_empty() && activities.event_types.is_empty() {
        return Ok(None);
    }
    let feed = activities.event_types.len() as i64;
    let sync = payloads.len() as i64;
    let rows = client
        .query(
            "WITH n AS ( \
               INSERT INTO board_seqs AS s (board_id, feed_seq, sync_seq) VALUES ($1, $3, $4) \
               ON CONFLICT (board_id) DO UPDATE \
                 SET feed_seq = s.feed_seq + EXCLUDED.feed_seq, sync_seq = s.sync_seq + EXCLUDED.sync_seq \
               RETURNING s.feed_seq - $3 AS feed0, s.sync_seq - $4 AS sync0), \
             a AS ( \
               INSERT INTO activity_events (id, organization_id, board_id, event_type, message, agent_id, task_id, seq) \
               SELECT gen_random_uuid(), $2, $1, x.event_type, x.message, x.agent_id, x.task_id, n.feed0 + x.i \
               FROM n, unnest($5::text[], $6::text[], $7::uuid[], $8::uuid[]) \
                 WITH ORDINALITY AS x(event_type, message, agent_id, task_id, i)), \
             e AS ( \
               INSERT INTO board_sync_events (board_id, seq, payload) \
               SELECT $1, n.sync0 + p.i, p.payload || jsonb_build_object('seq', n.sync0 + p.i) \
               FROM n, unnest($9::jsonb[]) WITH ORDINALITY AS p(payload, i) \
               RETURNING seq, payload::text AS payload), \
             dropped AS ( \
               DELETE FROM board_sync_events o USING n \
               WHERE o.board_id = $1 AND (n.sync0 + $4) / 100 > n.sync0 / 100 AND o.seq <= n.sync0 + $4 - $10) \
             SELECT seq, payload FROM e ORDER BY seq",
            &[
                &board_id,
                &organization_id,
                &feed,
                &sync,
                &activities.event_types,
                &activities.messages,
                &activities.agent_ids,
                &activities.task_ids,
                &payloads,
                &KEPT,
            ],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(TaskChange::Synced {
        events: numbered(&rows)?,
    }))
}

/// Records `changes` as the board's next sync events (in the caller's transaction; see
/// [`close`]).
pub async fn append_all(
    client: &impl GenericClient,
    board_id: Uuid,
    changes: &[TaskChange],
) -> DomainResult<Option<TaskChange>> {
    // No activity rows, so no organization is written.
    close(
        client,
        board_id,
        Uuid::nil(),
        Activities::default(),
        changes,
    )
    .await
}

/// The events after `after`, in order, as `(seq, frame text)`; `None` when some of them
/// are no longer kept (the reader must start again from a fresh state).
pub async fn events_after(
    client: &impl GenericClient,
    board_id: Uuid,
    after: i64,
    limit: i64,
) -> DomainResult<Option<Vec<(i64, String)>>> {
    let rows = client
        .query(
            "SELECT seq, payload::text AS payload FROM board_sync_events WHERE board_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            &[&board_id, &after, &limit],
        )
        .await?;
    let events = numbered(&rows)?;
    match events.first() {
        Some((first, _)) if *first != after + 1 => Ok(None),
        _ => Ok(Some(events)),
    }
}

/// Rows of `seq` and `payload` (text) as `(seq, frame)`.
fn numbered(rows: &[Row]) -> Result<Vec<(i64, String)>, RowError> {
    rows.iter()
        .map(|r| Ok((get(r, "seq")?, get(r, "payload")?)))
        .collect()
}

/// The board's current sync number.
pub async fn current(client: &impl GenericClient, board_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one(
            "SELECT COALESCE((SELECT sync_seq FROM board_seqs WHERE board_id = $1), 0) AS sync_seq",
            &[&board_id],
        )
        .await?;
    Ok(get(&row, "sync_seq")?)
}
