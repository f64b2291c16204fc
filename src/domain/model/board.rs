//! Boards (`BoardRead`): the record every area of a board starts from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::DomainResult;

crate::db::record! {
    /// `BoardRead` of the reference API.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Board in "b" {
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
}

/// The board with this id in this organization; another organization's board is `None`.
pub async fn find_in_org(
    client: &impl GenericClient,
    organization_id: Uuid,
    board_id: Uuid,
) -> DomainResult<Option<Board>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM boards b WHERE b.id = $1 AND b.organization_id = $2",
                Board::COLUMNS
            ),
            &[&board_id, &organization_id],
        )
        .await?;
    Ok(row.as_ref().map(Board::from_row).transpose()?)
}
