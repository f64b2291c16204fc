//! Comments on tasks: the list, and a new comment with its activity, its mentions and the
//! agents it notifies.

use super::crud::find;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Actor, Board, TaskChange, TaskRow, TaskStatus};
use crate::domain::outbox::task_notices;
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::support::mentions;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `TaskCommentRead`: a `task.comment` activity event (`activity_events a`).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct TaskComment in "a" {
        pub id: Uuid,
        pub message: Option<String>,
        pub agent_id: Option<Uuid>,
        pub task_id: Option<Uuid>,
        pub created_at: DateTime<Utc>,
    }
}

/// `TaskCommentCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskCommentCreate {
    pub message: String,
}

/// The task's comments, oldest first.
pub async fn comments(
    client: &impl GenericClient,
    board: &Board,
    task_id: Uuid,
    page: PageParams,
) -> DomainResult<Page<TaskComment>> {
    find(client, board.id, task_id, false).await?;
    fetch_page(
        client,
        TaskComment::COLUMNS,
        "FROM activity_events a WHERE a.task_id = $1 AND a.event_type = 'task.comment'",
        "a.created_at, a.id",
        &[&task_id],
        page,
        TaskComment::from_row,
    )
    .await
}

pub async fn add_comment(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    task_id: Uuid,
    input: TaskCommentCreate,
) -> DomainResult<(TaskComment, Vec<TaskChange>)> {
    let message = non_empty("message", &input.message)?;
    let task = find(client, board.id, task_id, false).await?;
    if let Actor::Agent(agent) = actor {
        if agent.is_board_lead && !lead_may_comment(client, &task, agent.id).await? {
            return Err(DomainError::forbidden(
                "Board leads can only comment during review, when mentioned, or on tasks they created.",
            ));
        }
    }
    let event = activity::record(
        client,
        NewActivity {
            organization_id: board.organization_id,
            board_id: Some(board.id),
            event_type: "task.comment",
            message: Some(message),
            agent_id: actor.agent_id(),
            task_id: Some(task_id),
        },
    )
    .await?;
    let comment = TaskComment {
        id: event.id,
        message: event.message,
        agent_id: event.agent_id,
        task_id: event.task_id,
        created_at: event.created_at,
    };
    let notices = task_notices::commented(client, board, actor, &task, &input.message).await?;
    let changes = std::iter::once(TaskChange::Commented { task_id }).chain(notices);
    Ok((comment, changes.collect()))
}

/// A lead comments on a task in review, on a task it created, or where an earlier comment
/// mentions it (`@lead`, its name, or the first word of its name).
async fn lead_may_comment(
    client: &impl GenericClient,
    task: &TaskRow,
    lead_id: Uuid,
) -> DomainResult<bool> {
    if task.status == TaskStatus::Review {
        return Ok(true);
    }
    let row = client
        .query_one(
            "SELECT t.auto_reason, a.name FROM tasks t, agents a WHERE t.id = $1 AND a.id = $2",
            &[&task.id, &lead_id],
        )
        .await?;
    let auto_reason: Option<String> = get(&row, "auto_reason")?;
    let name: String = get(&row, "name")?;
    if auto_reason.as_deref() == Some(format!("lead_agent:{lead_id}").as_str()) {
        return Ok(true);
    }
    let comments: Vec<String> = client
        .query(
            "SELECT coalesce(message, '') AS message FROM activity_events \
             WHERE task_id = $1 AND event_type = 'task.comment'",
            &[&task.id],
        )
        .await?
        .iter()
        .map(|r| get(r, "message"))
        .collect::<Result<_, _>>()?;
    Ok(comments.iter().any(|c| {
        mentions::extract(c)
            .iter()
            .any(|m| mentions::names(m, &name, true))
    }))
}
