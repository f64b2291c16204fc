//! Approvals (`ApprovalRead`) and what the task gates need to know of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

    pub fn parse(text: &str) -> Option<ApprovalStatus> {
        [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

crate::db::record::text_enum_from_sql!(ApprovalStatus, ApprovalStatus::parse);

crate::db::record! {
    /// `ApprovalRead`. `task_ids` and `task_titles` read empty: the reads that answer them
    /// fill them from the approval's task links.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Approval in "a" {
        pub id: Uuid,
        pub board_id: Uuid,
        pub action_type: String,
        pub task_id: Option<Uuid>,
        pub task_ids: Vec<Uuid> = "'{}'::uuid[]",
        pub task_titles: Vec<String> = "'{}'::text[]",
        #[schema(value_type = Option<Object>)]
        pub payload: Option<Value>,
        pub confidence: f64,
        #[schema(value_type = Option<Object>)]
        pub rubric_scores: Option<Value>,
        /// The column's CHECK constraint admits only the three statuses.
        pub status: ApprovalStatus,
        pub agent_id: Option<Uuid>,
        pub created_at: DateTime<Utc>,
        pub resolved_at: Option<DateTime<Utc>>,
    }
}
