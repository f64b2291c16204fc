//! The task state machine (domain.md §A7): who may change what, what a status change does
//! to the assignee and the progress timestamps, and the board gates before a status
//! change. Pure functions over what the caller has loaded, so every rule is unit-tested.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::domain::model::{Actor, AgentRef, Board, Progress, TaskApprovalState, TaskStatus};
use crate::domain::{DomainError, DomainResult};

/// The `status` query of task lists: a comma list of statuses; blank items are ignored.
pub fn parse_status_filter(filter: Option<&str>) -> DomainResult<Vec<&'static str>> {
    filter
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            TaskStatus::parse(s)
                .map(TaskStatus::as_str)
                .ok_or_else(|| DomainError::unprocessable("Unsupported task status filter."))
        })
        .collect()
}

/// What a task patch asks for, as far as the rules care.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub status: Option<TaskStatus>,
    /// `Some(None)` clears the assignee.
    pub assigned_agent_id: Option<Option<Uuid>>,
    /// The requested assignee, looked up by the caller (`None` when absent or not found).
    pub assignee: Option<AgentRef>,
    /// Plain fields sent (`title`, `description`, `priority`, `due_at`).
    pub plain_fields: Vec<&'static str>,
    pub comment: bool,
    pub dependencies: bool,
    pub tags: bool,
    pub custom_fields: bool,
}

/// The outcome of the actor rules: the task's new lifecycle fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub progress: Progress,
    /// The status that was asked for and differs from the current one (the pending-approval
    /// gate only guards explicit changes).
    pub status_requested: bool,
    /// Entering review needs a comment (user and non-lead agent paths).
    pub needs_review_comment: bool,
}

pub fn blocked_error(blocked_by: &[Uuid]) -> DomainError {
    DomainError::Conflict(json!({
        "message": "Task is blocked by incomplete dependencies.",
        "code": "task_blocked_cannot_transition",
        "blocked_by_task_ids": blocked_by,
    }))
}

pub fn dependencies_of_done_task_error() -> DomainError {
    DomainError::conflict("Cannot change task dependencies after a task is done.")
}

fn gate_error(message: &str) -> DomainError {
    DomainError::Conflict(json!({"message": message, "blocked_by_task_ids": []}))
}

fn agent_forbidden(code: &str, message: &str) -> DomainError {
    DomainError::Forbidden(json!({"message": message, "code": code}))
}

/// The effect of moving to `status` on the assignee and the progress timestamps.
fn enter(progress: &mut Progress, status: TaskStatus, now: DateTime<Utc>) {
    progress.status = status;
    match status {
        TaskStatus::Inbox | TaskStatus::Review => {
            progress.previous_in_progress_at = progress.in_progress_at;
            progress.assigned_agent_id = None;
            progress.in_progress_at = None;
        }
        TaskStatus::InProgress => progress.in_progress_at = Some(now),
        TaskStatus::Done => {}
    }
}

/// An assignee must exist (404) and be on the task's board (409); a gateway-main agent,
/// on no board, may take any task.
fn check_assignee(request: &Request, board_id: Uuid) -> DomainResult<Option<AgentRef>> {
    match request.assigned_agent_id {
        None | Some(None) => Ok(None),
        Some(Some(_)) => {
            let agent = request.assignee.ok_or_else(DomainError::not_found)?;
            if agent.board_id.is_some_and(|b| b != board_id) {
                return Err(DomainError::Conflict(json!("Conflict")));
            }
            Ok(Some(agent))
        }
    }
}

/// Applies the rules of `actor` to a task on `board` that is currently `current` and
/// blocked by `blocked_by` (its dependencies after this request's replacement, if any).
pub fn decide(
    actor: &Actor,
    board: &Board,
    current: Progress,
    blocked_by: &[Uuid],
    request: &Request,
    now: DateTime<Utc>,
) -> DomainResult<Decision> {
    let status_requested = request.status.is_some_and(|s| s != current.status);
    let mut progress = current;
    let needs_review_comment = match actor {
        Actor::User(_) | Actor::Pipeline(_) => {
            let target = request.status.unwrap_or(current.status);
            let mut status = request.status;
            let mut assign = request.assigned_agent_id;
            // A user's change to a blocked task puts it back in the inbox, unless it is done
            // and stays done.
            let stays_done = current.status == TaskStatus::Done && target == TaskStatus::Done;
            if !blocked_by.is_empty() && !stays_done {
                progress.in_progress_at = None;
                status = Some(TaskStatus::Inbox);
                assign = Some(None);
            }
            if let Some(status) = status {
                enter(&mut progress, status, now);
            }
            if let Some(Some(_)) = assign {
                check_assignee(request, board.id)?;
            }
            if let Some(assign) = assign {
                progress.assigned_agent_id = assign;
            }
            status == Some(TaskStatus::Review)
        }
        Actor::Agent(agent) if agent.is_board_lead => {
            decide_for_lead(board, &mut progress, blocked_by, request)?;
            false
        }
        Actor::Agent(agent) => {
            decide_for_agent(agent, board, &mut progress, blocked_by, request, now)?;
            request.status == Some(TaskStatus::Review)
        }
    };
    Ok(Decision {
        progress,
        status_requested,
        needs_review_comment,
    })
}

const LEAD_FIELDS: [&str; 5] = [
    "assigned_agent_id",
    "custom_field_values",
    "depends_on_task_ids",
    "status",
    "tag_ids",
];

/// The fields a request sends, by their body names.
fn requested_fields(request: &Request) -> Vec<&'static str> {
    let mut fields = request.plain_fields.clone();
    for (sent, name) in [
        (request.status.is_some(), "status"),
        (request.assigned_agent_id.is_some(), "assigned_agent_id"),
        (request.dependencies, "depends_on_task_ids"),
        (request.tags, "tag_ids"),
        (request.custom_fields, "custom_field_values"),
    ] {
        if sent {
            fields.push(name);
        }
    }
    fields
}

/// A board lead assigns and closes reviews; it may not edit content or comment inline.
fn decide_for_lead(
    board: &Board,
    progress: &mut Progress,
    blocked_by: &[Uuid],
    request: &Request,
) -> DomainResult<()> {
    if request.comment {
        return Err(DomainError::forbidden(
            "Lead comment gate failed: board leads cannot include `comment` in task PATCH. \
             Use the task comments endpoint instead.",
        ));
    }
    let mut disallowed: Vec<&str> = requested_fields(request)
        .into_iter()
        .filter(|f| !LEAD_FIELDS.contains(f))
        .collect();
    if !disallowed.is_empty() {
        disallowed.sort_unstable();
        return Err(DomainError::forbidden(format!(
            "Lead field gate failed: unsupported fields for board leads: {}. Allowed fields: {}.",
            disallowed.join(", "),
            LEAD_FIELDS.join(", ")
        )));
    }
    if !blocked_by.is_empty() && (request.assigned_agent_id.is_some() || request.status.is_some()) {
        return Err(blocked_error(blocked_by));
    }
    if let Some(assign) = request.assigned_agent_id {
        progress.assigned_agent_id = match assign {
            None => None,
            Some(_) => {
                let agent = request.assignee.ok_or_else(DomainError::not_found)?;
                if agent.is_board_lead {
                    return Err(DomainError::forbidden(
                        "Board leads cannot assign tasks to themselves.",
                    ));
                }
                check_assignee(request, board.id)?.map(|a| a.id)
            }
        };
    }
    if let Some(target) = request.status {
        if progress.status != TaskStatus::Review {
            return Err(DomainError::forbidden(format!(
                "Lead status gate failed: board leads can only change status when the current \
                 task status is `review` (current: `{}`).",
                progress.status.as_str()
            )));
        }
        if !matches!(target, TaskStatus::Done | TaskStatus::Inbox) {
            return Err(DomainError::forbidden(format!(
                "Lead status target gate failed: review tasks can only move to `done` or \
                 `inbox` (requested: `{}`).",
                target.as_str()
            )));
        }
        if target == TaskStatus::Inbox {
            progress.assigned_agent_id = None;
            progress.in_progress_at = None;
        }
        progress.status = target;
    }
    Ok(())
}

/// A worker agent works its own board's tasks: it claims, progresses and hands in for
/// review; it may not edit content, dependencies or tags.
fn decide_for_agent(
    agent: &AgentRef,
    board: &Board,
    progress: &mut Progress,
    blocked_by: &[Uuid],
    request: &Request,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    if agent.board_id.is_some_and(|b| b != board.id) {
        return Err(agent_forbidden(
            "task_board_mismatch",
            "Agent can only update tasks for their assigned board.",
        ));
    }
    if request.status.is_some() && progress.assigned_agent_id.is_some_and(|a| a != agent.id) {
        return Err(agent_forbidden(
            "task_assignee_mismatch",
            "Agents can only change status on tasks assigned to them.",
        ));
    }
    if request.dependencies
        || request.tags
        || request.assigned_agent_id.is_some()
        || !request.plain_fields.is_empty()
    {
        return Err(agent_forbidden(
            "task_update_field_forbidden",
            "Agents may only update status, comment, and custom field values.",
        ));
    }
    let Some(target) = request.status else {
        return Ok(());
    };
    if board.only_lead_can_change_status {
        return Err(DomainError::forbidden(
            "Only board leads can change task status.",
        ));
    }
    if target != TaskStatus::Inbox && !blocked_by.is_empty() {
        return Err(blocked_error(blocked_by));
    }
    enter(progress, target, now);
    if matches!(target, TaskStatus::InProgress | TaskStatus::Done) {
        progress.assigned_agent_id = Some(agent.id);
    }
    Ok(())
}

/// The board's gates on a status change, in the reference's order.
pub fn check_gates(
    board: &Board,
    previous: TaskStatus,
    decision: &Decision,
    approvals: TaskApprovalState,
) -> DomainResult<()> {
    let target = decision.progress.status;
    if decision.status_requested
        && board.block_status_changes_with_pending_approval
        && approvals.has_pending
    {
        return Err(gate_error(
            "Task status cannot be changed while a linked approval is pending.",
        ));
    }
    let to_done = target == TaskStatus::Done && previous != TaskStatus::Done;
    if to_done && board.require_review_before_done && previous != TaskStatus::Review {
        return Err(gate_error(
            "Task can only be marked done from review when the board rule is enabled.",
        ));
    }
    if to_done && board.require_approval_for_done && !approvals.has_approved {
        return Err(gate_error(
            "Task can only be marked done when a linked approval has been approved.",
        ));
    }
    Ok(())
}

/// Activity of an update: a status change or a plain update.
pub fn update_event(title: &str, previous: TaskStatus, now: TaskStatus) -> (&'static str, String) {
    if previous != now {
        (
            "task.status_changed",
            format!("Task moved to {}: {title}.", now.as_str()),
        )
    } else {
        ("task.updated", format!("Task updated: {title}."))
    }
}

/// What a dependency's completion flipping does to a dependent that is not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependentEffect {
    /// Back to the inbox, unassigned (its dependency was reopened while it had started).
    ReturnToInbox,
    /// Only an activity note.
    Note,
}

pub fn dependent_effect(dependency_reopened: bool, dependent: &Progress) -> DependentEffect {
    let pristine = dependent.status == TaskStatus::Inbox
        && dependent.assigned_agent_id.is_none()
        && dependent.in_progress_at.is_none();
    if dependency_reopened && !pristine {
        DependentEffect::ReturnToInbox
    } else {
        DependentEffect::Note
    }
}

#[cfg(test)]
mod tests;
