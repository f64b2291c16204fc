//! The activity feed: one row per notable change, written in the same transaction as the
//! change itself.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::DomainResult;

/// `ActivityEventRead` (plus `board_id`, which the reference lacks).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityEvent {
    pub id: Uuid,
    pub event_type: String,
    pub message: Option<String>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub board_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

pub const ACTIVITY_COLUMNS: &str =
    "a.id, a.event_type, a.message, a.agent_id, a.task_id, a.board_id, a.created_at";

impl ActivityEvent {
    pub fn from_row(row: &Row) -> ActivityEvent {
        ActivityEvent {
            id: row.get(0),
            event_type: row.get(1),
            message: row.get(2),
            agent_id: row.get(3),
            task_id: row.get(4),
            board_id: row.get(5),
            created_at: row.get(6),
        }
    }
}

pub struct NewActivity<'a> {
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub event_type: &'a str,
    pub message: Option<String>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
}

/// Records an event. A board's events take the board's next feed number (see
/// `next_feed_seq`).
pub async fn record(
    client: &impl GenericClient,
    activity: NewActivity<'_>,
) -> DomainResult<ActivityEvent> {
    let seq = match activity.board_id {
        Some(board_id) => Some(next_feed_seq(client, board_id).await?),
        None => None,
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO activity_events AS a (id, organization_id, board_id, event_type, message, agent_id, task_id, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ACTIVITY_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &activity.organization_id,
                &activity.board_id,
                &activity.event_type,
                &activity.message,
                &activity.agent_id,
                &activity.task_id,
                &seq,
            ],
        )
        .await?;
    Ok(ActivityEvent::from_row(&row))
}

/// The board's next feed number. The board row stays locked until the transaction ends,
/// so numbers are handed out in commit order: a stream that has seen number n has seen
/// every change before it.
pub async fn next_feed_seq(client: &impl GenericClient, board_id: Uuid) -> DomainResult<i64> {
    Ok(client
        .query_one(
            "UPDATE boards SET feed_seq = feed_seq + 1 WHERE id = $1 RETURNING feed_seq",
            &[&board_id],
        )
        .await?
        .get(0))
}
