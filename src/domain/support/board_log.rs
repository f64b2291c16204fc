//! Board sync events (docs/board-sync-protocol.md): each committed task change of a board
//! becomes one event with the board's next sync number, written in the change's own
//! transaction. Numbers follow commit order because they are taken under the board row's
//! lock, so a reader that has number n has everything before it.

use chrono::Utc;
use tokio_postgres::types::Json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::record::{get, RowError};
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
        | TaskChange::Recorded { .. } => return None,
    };
    Some(event)
}

/// Records `change` as the board's next event (in the caller's transaction).
pub async fn append(
    client: &impl GenericClient,
    board_id: Uuid,
    change: &TaskChange,
) -> DomainResult<()> {
    let Some(event) = frame(change) else {
        return Ok(());
    };
    let timestamp = Utc::now();
    let row = client
        .query_one(
            "UPDATE boards SET sync_seq = sync_seq + 1 WHERE id = $1 RETURNING sync_seq",
            &[&board_id],
        )
        .await?;
    let seq: i64 = get(&row, "sync_seq")?;
    let payload = Numbered {
        event,
        timestamp,
        seq,
    };
    client
        .execute(
            "INSERT INTO board_sync_events (board_id, seq, payload) VALUES ($1, $2, $3)",
            &[&board_id, &seq, &Json(&payload)],
        )
        .await?;
    if seq % 100 == 0 {
        client
            .execute(
                "DELETE FROM board_sync_events WHERE board_id = $1 AND seq <= $2",
                &[&board_id, &(seq - KEPT)],
            )
            .await?;
    }
    Ok(())
}

pub async fn append_all(
    client: &impl GenericClient,
    board_id: Uuid,
    changes: &[TaskChange],
) -> DomainResult<()> {
    for change in changes {
        append(client, board_id, change).await?;
    }
    Ok(())
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
    let events: Vec<(i64, String)> = rows
        .iter()
        .map(|r| Ok((get(r, "seq")?, get(r, "payload")?)))
        .collect::<Result<_, RowError>>()?;
    match events.first() {
        Some((first, _)) if *first != after + 1 => Ok(None),
        _ => Ok(Some(events)),
    }
}

/// The board's current sync number.
pub async fn current(client: &impl GenericClient, board_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one("SELECT sync_seq FROM boards WHERE id = $1", &[&board_id])
        .await?;
    Ok(get(&row, "sync_seq")?)
}
