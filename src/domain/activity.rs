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

pub async fn record(
    client: &impl GenericClient,
    activity: NewActivity<'_>,
) -> DomainResult<ActivityEvent> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO activity_events AS a (id, organization_id, board_id, event_type, message, agent_id, task_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ACTIVITY_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &activity.organization_id,
                &activity.board_id,
                &activity.event_type,
                &activity.message,
                &activity.agent_id,
                &activity.task_id,
            ],
        )
        .await?;
    Ok(ActivityEvent::from_row(&row))
}
