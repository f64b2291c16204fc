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
    client: &impl GenericClient,
    board_id: Uuid,
    task_id: Uuid,
) -> DomainResult<TaskApprovalState> {
    // Approvals linked by a link row or, for legacy rows, only by their primary `task_id`.
    let row = client
        .query_one(
            "SELECT \
               coalesce(bool_or(a.status = 'pending'), false), \
               coalesce(bool_or(a.status = 'approved'), false) \
             FROM approvals a \
             WHERE a.board_id = $1 \
               AND (a.task_id = $2 OR EXISTS ( \
                 SELECT 1 FROM approval_task_links l WHERE l.approval_id = a.id AND l.task_id = $2))",
            &[&board_id, &task_id],
        )
        .await?;
    Ok(TaskApprovalState {
        has_pending: row.get(0),
        has_approved: row.get(1),
    })
}

/// Per task: (all approvals, pending approvals) linked to it.
pub async fn approval_counts(
    client: &impl GenericClient,
    task_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, (i64, i64)>> {
    if task_ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Union of link rows and legacy primary `task_id`s, each approval counted once per task.
    let rows = client
        .query(
            "WITH linked AS ( \
               SELECT l.task_id, l.approval_id FROM approval_task_links l WHERE l.task_id = ANY($1) \
               UNION \
               SELECT a.task_id, a.id FROM approvals a WHERE a.task_id = ANY($1)) \
             SELECT linked.task_id, count(*), count(*) FILTER (WHERE a.status = 'pending') \
             FROM linked JOIN approvals a ON a.id = linked.approval_id \
             GROUP BY linked.task_id",
            &[&task_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}
