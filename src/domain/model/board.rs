//! Boards (`BoardRead`): the record every area of a board starts from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::DomainResult;

/// `BoardRead` of the reference API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Board {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub gateway_id: Option<Uuid>,
    pub board_group_id: Option<Uuid>,
    pub board_type: String,
    pub objective: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub success_metrics: Option<serde_json::Value>,
    pub target_date: Option<DateTime<Utc>>,
    pub goal_confirmed: bool,
    pub goal_source: Option<String>,
    pub require_approval_for_done: bool,
    pub require_review_before_done: bool,
    pub block_status_changes_with_pending_approval: bool,
    pub only_lead_can_change_status: bool,
    pub max_agents: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns `Board::from_row` reads, in order; prefix with a table alias as `b.`.
pub const BOARD_COLUMNS: &str = "b.id, b.organization_id, b.name, b.slug, b.description, b.gateway_id, b.board_group_id, \
     b.board_type, b.objective, b.success_metrics, b.target_date, b.goal_confirmed, b.goal_source, \
     b.require_approval_for_done, b.require_review_before_done, b.block_status_changes_with_pending_approval, \
     b.only_lead_can_change_status, b.max_agents, b.created_at, b.updated_at";

impl Board {
    pub fn from_row(row: &Row) -> Board {
        Board {
            id: row.get(0),
            organization_id: row.get(1),
            name: row.get(2),
            slug: row.get(3),
            description: row.get(4),
            gateway_id: row.get(5),
            board_group_id: row.get(6),
            board_type: row.get(7),
            objective: row.get(8),
            success_metrics: row.get(9),
            target_date: row.get(10),
            goal_confirmed: row.get(11),
            goal_source: row.get(12),
            require_approval_for_done: row.get(13),
            require_review_before_done: row.get(14),
            block_status_changes_with_pending_approval: row.get(15),
            only_lead_can_change_status: row.get(16),
            max_agents: row.get(17),
            created_at: row.get(18),
            updated_at: row.get(19),
        }
    }
}

/// The board with this id in this organization; another organization's board is `None`.
pub async fn find_in_org(
    client: &impl GenericClient,
    organization_id: Uuid,
    board_id: Uuid,
) -> DomainResult<Option<Board>> {
    let row = crate::db::typed::query_opt(
        client,
        &format!("SELECT {BOARD_COLUMNS} FROM boards b WHERE b.id = $1 AND b.organization_id = $2"),
        &[&board_id, &organization_id],
    )
    .await?;
    Ok(row.as_ref().map(Board::from_row))
}
