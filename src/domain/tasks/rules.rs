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
        Actor::User(_) => {
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
mod tests {
    use super::*;
    use serde_json::Value;

    fn board() -> Board {
        let now = Utc::now();
        Board {
            id: Uuid::new_v4(),
            organization_id: Uuid::new_v4(),
            name: "b".into(),
            slug: "b".into(),
            description: "d".into(),
            gateway_id: None,
            board_group_id: None,
            board_type: "goal".into(),
            objective: None,
            success_metrics: None,
            target_date: None,
            goal_confirmed: false,
            goal_source: None,
            require_approval_for_done: false,
            require_review_before_done: false,
            block_status_changes_with_pending_approval: false,
            only_lead_can_change_status: false,
            max_agents: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn progress(status: TaskStatus, assignee: Option<Uuid>) -> Progress {
        Progress {
            status,
            assigned_agent_id: assignee,
            in_progress_at: (status == TaskStatus::InProgress).then(Utc::now),
            previous_in_progress_at: None,
        }
    }

    fn status(s: TaskStatus) -> Request {
        Request {
            status: Some(s),
            ..Request::default()
        }
    }

    fn user() -> Actor {
        Actor::User(Uuid::new_v4())
    }

    fn agent(board: &Board, lead: bool) -> AgentRef {
        AgentRef {
            id: Uuid::new_v4(),
            board_id: Some(board.id),
            is_board_lead: lead,
        }
    }

    fn detail(result: DomainResult<Decision>) -> (u16, Value) {
        match result {
            Err(DomainError::Forbidden(d)) => (403, d),
            Err(DomainError::Conflict(d)) => (409, d),
            Err(DomainError::NotFound(d)) => (404, d),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn status_filter_accepts_known_statuses_only() {
        assert_eq!(
            parse_status_filter(Some("inbox, done,")).unwrap(),
            ["inbox", "done"]
        );
        assert!(parse_status_filter(None).unwrap().is_empty());
        assert!(parse_status_filter(Some("inbox,blocked")).is_err());
    }

    #[test]
    fn a_user_moving_to_review_unassigns_and_remembers_progress() {
        let b = board();
        let worker = Uuid::new_v4();
        let current = progress(TaskStatus::InProgress, Some(worker));
        let d = decide(
            &user(),
            &b,
            current,
            &[],
            &status(TaskStatus::Review),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.progress.status, TaskStatus::Review);
        assert_eq!(d.progress.assigned_agent_id, None);
        assert_eq!(d.progress.in_progress_at, None);
        assert_eq!(d.progress.previous_in_progress_at, current.in_progress_at);
        assert!(d.status_requested && d.needs_review_comment);
    }

    #[test]
    fn a_users_change_to_a_blocked_task_sends_it_to_the_inbox() {
        let b = board();
        let dep = Uuid::new_v4();
        let current = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
        let title_only = Request {
            plain_fields: vec!["title"],
            ..Request::default()
        };
        let d = decide(&user(), &b, current, &[dep], &title_only, Utc::now()).unwrap();
        assert_eq!(d.progress.status, TaskStatus::Inbox);
        assert_eq!(d.progress.assigned_agent_id, None);
        assert!(!d.status_requested);
        // ... but a done task that stays done keeps its state.
        let done = progress(TaskStatus::Done, None);
        let d = decide(&user(), &b, done, &[dep], &title_only, Utc::now()).unwrap();
        assert_eq!(d.progress.status, TaskStatus::Done);
    }

    #[test]
    fn a_user_may_assign_only_agents_of_the_board() {
        let b = board();
        let mut other = agent(&b, false);
        other.board_id = Some(Uuid::new_v4());
        let mut req = Request {
            assigned_agent_id: Some(Some(other.id)),
            assignee: Some(other),
            ..Request::default()
        };
        let current = progress(TaskStatus::Inbox, None);
        assert_eq!(
            detail(decide(&user(), &b, current, &[], &req, Utc::now())).0,
            409
        );
        req.assignee = None;
        assert_eq!(
            detail(decide(&user(), &b, current, &[], &req, Utc::now())).0,
            404
        );
        let mine = agent(&b, false);
        req.assigned_agent_id = Some(Some(mine.id));
        req.assignee = Some(mine);
        let d = decide(&user(), &b, current, &[], &req, Utc::now()).unwrap();
        assert_eq!(d.progress.assigned_agent_id, Some(mine.id));
    }

    #[test]
    fn a_worker_claims_unassigned_tasks_and_is_refused_others() {
        let b = board();
        let me = agent(&b, false);
        let actor = Actor::Agent(me);
        let open = progress(TaskStatus::Inbox, None);
        let d = decide(
            &actor,
            &b,
            open,
            &[],
            &status(TaskStatus::InProgress),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.progress.assigned_agent_id, Some(me.id));
        assert!(d.progress.in_progress_at.is_some());

        let theirs = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
        let (code, body) = detail(decide(
            &actor,
            &b,
            theirs,
            &[],
            &status(TaskStatus::Done),
            Utc::now(),
        ));
        assert_eq!(
            (code, body["code"].as_str()),
            (403, Some("task_assignee_mismatch"))
        );

        let tags = Request {
            tags: true,
            ..Request::default()
        };
        let (_, body) = detail(decide(&actor, &b, open, &[], &tags, Utc::now()));
        assert_eq!(body["code"], "task_update_field_forbidden");

        let mut elsewhere = me;
        elsewhere.board_id = Some(Uuid::new_v4());
        let (_, body) = detail(decide(
            &Actor::Agent(elsewhere),
            &b,
            open,
            &[],
            &status(TaskStatus::Review),
            Utc::now(),
        ));
        assert_eq!(body["code"], "task_board_mismatch");
    }

    #[test]
    fn a_blocked_task_cannot_start_but_may_go_back_to_the_inbox() {
        let b = board();
        let me = agent(&b, false);
        let dep = Uuid::new_v4();
        let mine = progress(TaskStatus::InProgress, Some(me.id));
        let (code, body) = detail(decide(
            &Actor::Agent(me),
            &b,
            progress(TaskStatus::Inbox, None),
            &[dep],
            &status(TaskStatus::InProgress),
            Utc::now(),
        ));
        assert_eq!(code, 409);
        assert_eq!(body["code"], "task_blocked_cannot_transition");
        assert_eq!(body["blocked_by_task_ids"], json!([dep]));
        let d = decide(
            &Actor::Agent(me),
            &b,
            mine,
            &[dep],
            &status(TaskStatus::Inbox),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.progress.status, TaskStatus::Inbox);
    }

    #[test]
    fn only_leads_change_status_when_the_board_says_so() {
        let mut b = board();
        b.only_lead_can_change_status = true;
        let me = agent(&b, false);
        let (code, body) = detail(decide(
            &Actor::Agent(me),
            &b,
            progress(TaskStatus::Inbox, None),
            &[],
            &status(TaskStatus::InProgress),
            Utc::now(),
        ));
        assert_eq!(code, 403);
        assert_eq!(body, json!("Only board leads can change task status."));
    }

    #[test]
    fn a_lead_closes_reviews_and_assigns_but_edits_nothing_else() {
        let b = board();
        let lead = Actor::Agent(agent(&b, true));
        let review = progress(TaskStatus::Review, None);
        let d = decide(
            &lead,
            &b,
            review,
            &[],
            &status(TaskStatus::Done),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(d.progress.status, TaskStatus::Done);
        assert!(!d.needs_review_comment);

        let inbox = progress(TaskStatus::Inbox, None);
        let (code, body) = detail(decide(
            &lead,
            &b,
            inbox,
            &[],
            &status(TaskStatus::Done),
            Utc::now(),
        ));
        assert_eq!(code, 403);
        assert!(body
            .as_str()
            .unwrap()
            .starts_with("Lead status gate failed"));
        let (_, body) = detail(decide(
            &lead,
            &b,
            review,
            &[],
            &status(TaskStatus::InProgress),
            Utc::now(),
        ));
        assert!(body
            .as_str()
            .unwrap()
            .starts_with("Lead status target gate failed"));

        let title = Request {
            plain_fields: vec!["title", "priority"],
            ..Request::default()
        };
        let (_, body) = detail(decide(&lead, &b, inbox, &[], &title, Utc::now()));
        assert_eq!(
            body,
            json!("Lead field gate failed: unsupported fields for board leads: priority, title. Allowed fields: assigned_agent_id, custom_field_values, depends_on_task_ids, status, tag_ids.")
        );

        let other_lead = agent(&b, true);
        let assign = Request {
            assigned_agent_id: Some(Some(other_lead.id)),
            assignee: Some(other_lead),
            ..Request::default()
        };
        let (code, _) = detail(decide(&lead, &b, inbox, &[], &assign, Utc::now()));
        assert_eq!(code, 403);
        let (code, _) = detail(decide(
            &lead,
            &b,
            inbox,
            &[Uuid::new_v4()],
            &assign,
            Utc::now(),
        ));
        assert_eq!(code, 409);
    }

    #[test]
    fn gates_guard_done_and_pending_approvals() {
        let mut b = board();
        let to_done = Decision {
            progress: progress(TaskStatus::Done, None),
            status_requested: true,
            needs_review_comment: false,
        };
        let none = TaskApprovalState::default();
        assert!(check_gates(&b, TaskStatus::InProgress, &to_done, none).is_ok());

        b.require_approval_for_done = true;
        let err = check_gates(&b, TaskStatus::Review, &to_done, none).unwrap_err();
        assert!(
            matches!(err, DomainError::Conflict(ref d) if d["message"].as_str().unwrap().contains("approval has been approved"))
        );
        let approved = TaskApprovalState {
            has_pending: false,
            has_approved: true,
        };
        assert!(check_gates(&b, TaskStatus::Review, &to_done, approved).is_ok());

        b.require_review_before_done = true;
        assert!(check_gates(&b, TaskStatus::InProgress, &to_done, approved).is_err());
        assert!(check_gates(&b, TaskStatus::Review, &to_done, approved).is_ok());

        b.block_status_changes_with_pending_approval = true;
        let pending = TaskApprovalState {
            has_pending: true,
            has_approved: true,
        };
        let err = check_gates(&b, TaskStatus::Review, &to_done, pending).unwrap_err();
        assert!(
            matches!(err, DomainError::Conflict(ref d) if d["message"].as_str().unwrap().contains("pending"))
        );
        // A done task that stays done passes every gate.
        let stays = Decision {
            status_requested: false,
            ..to_done
        };
        assert!(check_gates(&b, TaskStatus::Done, &stays, pending).is_ok());
    }

    #[test]
    fn a_reopened_dependency_resets_only_started_dependents() {
        let started = progress(TaskStatus::InProgress, Some(Uuid::new_v4()));
        let pristine = progress(TaskStatus::Inbox, None);
        assert_eq!(
            dependent_effect(true, &started),
            DependentEffect::ReturnToInbox
        );
        assert_eq!(dependent_effect(true, &pristine), DependentEffect::Note);
        assert_eq!(dependent_effect(false, &started), DependentEffect::Note);
    }
}
