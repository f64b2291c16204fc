//! What agents are told of task and approval changes, as in the reference: a board's lead
//! hears of new tasks, of tasks back in the inbox and of resolved approvals, an agent of the
//! task it is assigned, and a comment reaches the agents it `@mentions` (else the task's
//! assignee), never its author. Each
//! notice is a `sessions.send` request to the board's gateway, recorded in the change's
//! transaction, with the reference's activity; the returned `TaskChange::Notified` has the
//! gateway's link poked once committed.

use serde_json::json;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::record::{get, RowError};
use crate::db::GenericClient;
use crate::domain::model::{
    Actor, Approval, ApprovalStatus, Board, TaskChange, TaskRow, TaskStatus,
};
use crate::domain::outbox::commands::{self as gateway_commands, snippet, Target};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::support::mentions;
use crate::domain::DomainResult;

/// The longest excerpt of a description or comment a notice quotes, in characters.
const MAX_SNIPPET: usize = 500;

/// An agent of the board that has a session: (id, name, session key, is lead).
pub(super) type Listener = (Uuid, String, String, bool);

/// The listener in `row`: its agent's `id`, `name`, `openclaw_session_id` and
/// `is_board_lead`.
pub(super) fn listener_in(row: &Row) -> Result<Listener, RowError> {
    Ok((
        get(row, "id")?,
        get(row, "name")?,
        get(row, "openclaw_session_id")?,
        get(row, "is_board_lead")?,
    ))
}

async fn listeners(client: &impl GenericClient, board_id: Uuid) -> DomainResult<Vec<Listener>> {
    let rows = client
        .query(
            "SELECT id, name, openclaw_session_id, is_board_lead FROM agents \
             WHERE board_id = $1 AND COALESCE(openclaw_session_id, '') <> '' \
             ORDER BY created_at, id",
            &[&board_id],
        )
        .await?;
    Ok(rows.iter().map(listener_in).collect::<Result<_, _>>()?)
}

/// The notice lines the reference puts under a task notice's header.
fn task_details(board: &Board, task: &TaskRow) -> String {
    let mut lines = format!(
        "Board: {}\nTask: {}\nTask ID: {}\nStatus: {}",
        board.name,
        task.title,
        task.id,
        task.status.as_str()
    );
    let description = snippet(task.description.as_deref().unwrap_or_default(), MAX_SNIPPET);
    if !description.is_empty() {
        lines.push_str(&format!("\nDescription: {description}"));
    }
    lines
}

/// Queues one notice, with its activity when the reference records one.
async fn tell(
    client: &impl GenericClient,
    (board, gateway_id): (&Board, Uuid),
    to: &Listener,
    task_id: Uuid,
    message: String,
    activity: Option<(&str, String)>,
) -> DomainResult<()> {
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: board.organization_id,
            gateway_id,
            agent_id: Some(to.0),
            board_id: Some(board.id),
        },
        &to.2,
        &message,
        json!({"kind": "task", "task_id": task_id, "deliver": false, "label": to.1}),
    )
    .await?;
    if let Some((event_type, message)) = activity {
        crate::domain::support::activity::record_task(
            client,
            board,
            task_id,
            Some(to.0),
            event_type,
            message,
        )
        .await?;
    }
    Ok(())
}

async fn tell_lead(
    client: &impl GenericClient,
    (board, gateway_id): (&Board, Uuid),
    agents: &[Listener],
    task: &TaskRow,
    back_in_inbox: bool,
) -> DomainResult<bool> {
    let Some(lead) = agents.iter().find(|a| a.3) else {
        return Ok(false);
    };
    let (header, action, event_type, note) = if back_in_inbox {
        (
            "TASK BACK IN INBOX",
            "assign a new owner or adjust the plan.",
            "task.lead_unassigned_notified",
            format!("Lead notified task returned to inbox: {}.", task.title),
        )
    } else {
        (
            "NEW TASK ADDED",
            "triage, assign, or plan next steps.",
            "task.lead_notified",
            format!("Lead agent notified for task: {}.", task.title),
        )
    };
    let message = format!(
        "{header}\n{}\n\nTake action: {action}",
        task_details(board, task)
    );
    tell(
        client,
        (board, gateway_id),
        lead,
        task.id,
        message,
        Some((event_type, note)),
    )
    .await?;
    Ok(true)
}

async fn tell_assignee(
    client: &impl GenericClient,
    (board, gateway_id): (&Board, Uuid),
    agents: &[Listener],
    task: &TaskRow,
) -> DomainResult<bool> {
    let Some(agent) = agents.iter().find(|a| Some(a.0) == task.assigned_agent_id) else {
        return Ok(false);
    };
    let message = format!(
        "TASK ASSIGNED\n{}\n\nTake action: open the task and begin work. Post updates as task comments.",
        task_details(board, task)
    );
    let note = format!("Agent notified for assignment: {}.", agent.1);
    tell(
        client,
        (board, gateway_id),
        agent,
        task.id,
        message,
        Some(("task.assignee_notified", note)),
    )
    .await?;
    Ok(true)
}

fn notified(gateway_id: Uuid, any: bool) -> Option<TaskChange> {
    any.then_some(TaskChange::Notified { gateway_id })
}

/// A new task: its board's lead (unless the lead made it), and its assignee.
pub async fn created(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    task: &TaskRow,
) -> DomainResult<Option<TaskChange>> {
    let Some(gateway_id) = board.gateway_id else {
        return Ok(None);
    };
    let agents = listeners(client, board.id).await?;
    let lead = match actor {
        Actor::User(_) | Actor::Pipeline(_) => {
            tell_lead(client, (board, gateway_id), &agents, task, false).await?
        }
        Actor::Agent(_) => false,
    };
    let assignee = tell_assignee(client, (board, gateway_id), &agents, task).await?;
    Ok(notified(gateway_id, lead || assignee))
}

/// A changed task: the lead when someone else sent it back to the inbox unassigned, and a
/// new assignee unless it assigned itself.
pub async fn updated(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    before: &TaskRow,
    after: &TaskRow,
) -> DomainResult<Option<TaskChange>> {
    let Some(gateway_id) = board.gateway_id else {
        return Ok(None);
    };
    let by_lead = matches!(actor, Actor::Agent(a) if a.is_board_lead);
    let back_in_inbox = !by_lead
        && after.status == TaskStatus::Inbox
        && after.assigned_agent_id.is_none()
        && (before.status != TaskStatus::Inbox || before.assigned_agent_id.is_some());
    let newly_assigned = after.assigned_agent_id.is_some()
        && after.assigned_agent_id != before.assigned_agent_id
        && after.assigned_agent_id != actor.agent_id();
    if !back_in_inbox && !newly_assigned {
        return Ok(None);
    }
    let agents = listeners(client, board.id).await?;
    let mut any = false;
    if back_in_inbox {
        any |= tell_lead(client, (board, gateway_id), &agents, after, true).await?;
    }
    if newly_assigned {
        any |= tell_assignee(client, (board, gateway_id), &agents, after).await?;
    }
    Ok(notified(gateway_id, any))
}

/// A comment: the agents it mentions, else the task's assignee; not its author.
pub async fn commented(
    client: &impl GenericClient,
    board: &Board,
    actor: &Actor,
    task: &TaskRow,
    comment: &str,
) -> DomainResult<Option<TaskChange>> {
    let Some(gateway_id) = board.gateway_id else {
        return Ok(None);
    };
    let handles = mentions::extract(comment);
    let agents = listeners(client, board.id).await?;
    let author = match actor.agent_id() {
        Some(id) => agents
            .iter()
            .find(|a| a.0 == id)
            .map(|a| a.1.clone())
            .unwrap_or_else(|| "User".into()),
        None => "User".into(),
    };
    let quoted = snippet(comment, MAX_SNIPPET);
    let mut any = false;
    for agent in agents.iter().filter(|a| Some(a.0) != actor.agent_id()) {
        let mentioned = handles
            .iter()
            .any(|m| mentions::names(m, &agent.1, agent.3));
        let assignee = handles.is_empty() && task.assigned_agent_id == Some(agent.0);
        if !(mentioned || assignee) {
            continue;
        }
        let (header, line) = if mentioned {
            ("TASK MENTION", "You were mentioned in this comment.")
        } else {
            ("NEW TASK COMMENT", "A new comment was posted on your task.")
        };
        let message = format!(
            "{header}\nBoard: {}\nTask: {}\nTask ID: {}\nFrom: {author}\n\n{line}\n\n\
             Comment:\n{quoted}\n\n\
             If you are mentioned but not assigned, reply in the task thread but do not change task status.",
            board.name, task.title, task.id
        );
        tell(client, (board, gateway_id), agent, task.id, message, None).await?;
        any = true;
    }
    Ok(notified(gateway_id, any))
}

/// A float as Python prints it (`80.0`, `72.5`): the reference's notices carry its text.
fn py_float(value: f64) -> String {
    if value.fract() == 0.0 && value.is_finite() {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// An approval went from another status to approved or rejected: the lead hears of it.
/// Returns the gateway to poke when it was told.
pub async fn approval_resolved(
    client: &impl GenericClient,
    board: &Board,
    approval: &Approval,
) -> DomainResult<Option<Uuid>> {
    let Some(gateway_id) = board.gateway_id else {
        return Ok(None);
    };
    let decision = match approval.status {
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Rejected => "rejected",
        _ => return Ok(None),
    };
    let agents = listeners(client, board.id).await?;
    let Some(lead) = agents.iter().find(|a| a.3) else {
        return Ok(None);
    };
    let mut lines = vec![
        "APPROVAL RESOLVED".to_string(),
        format!("Board: {}", board.name),
        format!("Approval ID: {}", approval.id),
        format!("Action: {}", approval.action_type),
        format!("Decision: {decision}"),
        format!("Confidence: {}", py_float(approval.confidence)),
    ];
    let task_ids: Vec<Uuid> = if approval.task_ids.is_empty() {
        approval.task_id.into_iter().collect()
    } else {
        approval.task_ids.clone()
    };
    match task_ids.as_slice() {
        [] => {}
        [one] => lines.push(format!("Task ID: {one}")),
        many => lines.push(format!(
            "Task IDs: {}",
            many.iter()
                .map(Uuid::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    lines.push(String::new());
    lines.push("Take action: continue execution using the final approval decision.".into());
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: board.organization_id,
            gateway_id,
            agent_id: Some(lead.0),
            board_id: Some(board.id),
        },
        &lead.2,
        &lines.join("\n"),
        json!({"kind": "approval", "approval_id": approval.id, "deliver": false, "label": lead.1}),
    )
    .await?;
    activity::record(
        client,
        NewActivity {
            organization_id: board.organization_id,
            board_id: Some(board.id),
            event_type: "approval.lead_notified",
            message: Some(format!(
                "Lead agent notified for {decision} approval {}.",
                approval.id
            )),
            agent_id: Some(lead.0),
            task_id: approval.task_id,
        },
    )
    .await?;
    Ok(Some(gateway_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_in_python() {
        assert_eq!(py_float(80.0), "80.0");
        assert_eq!(py_float(72.5), "72.5");
    }

    #[test]
    fn snippets_keep_500_characters() {
        assert_eq!(snippet(" a ", MAX_SNIPPET), "a");
        let cut = snippet(&"ü".repeat(600), MAX_SNIPPET);
        assert_eq!(cut.chars().count(), 500);
        assert!(cut.ends_with("..."));
    }
}
