//! Approvals and their links to tasks.

use std::collections::HashMap;

use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::DomainResult;

/// What the task gates need to know about a task's approvals on its board.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskApprovalState {
    /// A pending approval is linked to the task (by link row, or legacy `task_id`).
    pub has_pending: bool,
    /// An approved approval on this board is linked to the task.
    pub has_approved: bool,
}

pub async fn task_approval_state(
    _client: &impl GenericClient,
    _board_id: Uuid,
    _task_id: Uuid,
) -> DomainResult<TaskApprovalState> {
    Ok(TaskApprovalState::default())
}

/// Per task: (all approvals, pending approvals) linked to it.
pub async fn approval_counts(
    _client: &impl GenericClient,
    _task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, (i64, i64)>> {
    Ok(HashMap::new())
}
