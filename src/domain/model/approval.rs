//! Approvals (`ApprovalRead`) and what the task gates need to know of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// What the task gates need to know about a task's approvals on its board.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskApprovalState {
    /// A pending approval is linked to the task (by link row, or legacy `task_id`).
    pub has_pending: bool,
    /// An approved approval on this board is linked to the task.
    pub has_approved: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> ApprovalStatus {
        match text {
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            // The column's CHECK constraint admits only the three statuses.
            _ => ApprovalStatus::Pending,
        }
    }
}

/// `ApprovalRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Approval {
    pub id: Uuid,
    pub board_id: Uuid,
    pub action_type: String,
    pub task_id: Option<Uuid>,
    pub task_ids: Vec<Uuid>,
    pub task_titles: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    pub confidence: f64,
    #[schema(value_type = Option<Object>)]
    pub rubric_scores: Option<Value>,
    pub status: ApprovalStatus,
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub const APPROVAL_COLUMNS: &str =
    "a.id, a.board_id, a.action_type, a.task_id, a.payload, a.confidence, \
     a.rubric_scores, a.status, a.agent_id, a.created_at, a.resolved_at";

impl Approval {
    pub fn from_row(row: &Row) -> Approval {
        Approval {
            id: row.get(0),
            board_id: row.get(1),
            action_type: row.get(2),
            task_id: row.get(3),
            task_ids: Vec::new(),
            task_titles: Vec::new(),
            payload: row.get(4),
            confidence: row.get(5),
            rubric_scores: row.get(6),
            status: ApprovalStatus::parse(row.get(7)),
            agent_id: row.get(8),
            created_at: row.get(9),
            resolved_at: row.get(10),
        }
    }
}
