//! Removing agents: their tasks are released, their gateway told, and a board's agents go
//! with the board.

use serde_json::{json, Value};
use uuid::Uuid;

use super::crud::agent_for_user;
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Agent, AgentPrincipal, Board, Principal, TaskChange};
use crate::domain::outbox::provisioning;
use crate::domain::support::access::Access;
use crate::domain::{DomainError, DomainResult};

/// A task the deletion of its agent changed (the change and its sync event), with its board.
pub type ReleasedTask = (Uuid, Vec<TaskChange>);

/// Unassigns the agent's tasks: those in progress go back to the inbox. Each change is a
/// board sync event; `by` is who did it.
pub async fn release_tasks(
    client: &impl GenericClient,
    agent_id: Uuid,
    by: &Value,
) -> DomainResult<Vec<ReleasedTask>> {
    let rows = client
        .query(
            "WITH old AS (SELECT id, status FROM tasks WHERE assigned_agent_id = $1 FOR NO KEY UPDATE) \
             UPDATE tasks t SET assigned_agent_id = NULL, updated_at = now(), \
               status = CASE WHEN old.status = 'in_progress' THEN 'inbox' ELSE t.status END, \
               in_progress_at = CASE WHEN old.status = 'in_progress' THEN NULL ELSE t.in_progress_at END \
             FROM old WHERE t.id = old.id \
             RETURNING t.id, t.board_id, old.status = 'in_progress' AS to_inbox",
            &[&agent_id],
        )
        .await?;
    let mut released = Vec::with_capacity(rows.len());
    for r in rows {
        let task_id: Uuid = get(&r, "id")?;
        let board_id: Uuid = get(&r, "board_id")?;
        let to_inbox: bool = get(&r, "to_inbox")?;
        let changes = if to_inbox {
            json!({"assigned_agent_id": null, "status": "inbox", "previous_status": "in_progress", "in_progress_at": null})
        } else {
            json!({"assigned_agent_id": null})
        };
        let change = TaskChange::Updated {
            task_id,
            changes,
            updated_by: by.clone(),
        };
        let synced = crate::domain::support::board_log::append_all(
            client,
            board_id,
            std::slice::from_ref(&change),
        )
        .await?;
        released.push((board_id, [change].into_iter().chain(synced).collect()));
    }
    Ok(released)
}

/// What deleting an agent changed: the tasks it released (for the board feeds) and the
/// gateway whose link is to remove it (to poke once committed).
pub struct Deleted {
    pub released: Vec<ReleasedTask>,
    pub gateway_id: Uuid,
}

/// An admin deletes an agent: see [`remove`].
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
) -> DomainResult<Deleted> {
    let agent = agent_for_user(client, principal, agent_id, Access::Write).await?;
    let by = crate::domain::model::Actor::User(principal.user.id).reference();
    remove(client, principal.organization.id, &agent, &by).await
}

/// A lead deletes a worker of its board, as the reference's `delete_agent_as_lead`: an
/// unknown agent is already gone (`None`); a gateway-main agent 403, an agent of another
/// board (or organization) 404, a lead 403.
pub async fn delete_by_lead(
    client: &impl GenericClient,
    lead: &AgentPrincipal,
    board_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<Option<Deleted>> {
    if !lead.agent.is_board_lead {
        return Err(DomainError::forbidden("Only board leads can delete agents"));
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns}, a.organization_id FROM agents a WHERE a.id = $1 FOR UPDATE",
                columns = Agent::COLUMNS
            ),
            &[&agent_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let agent = Agent::from_row(&row)?;
    if get::<Uuid>(&row, "organization_id")? != lead.organization_id {
        return Err(DomainError::not_found());
    }
    if agent.board_id.is_none() {
        return Err(DomainError::forbidden(
            "Board leads cannot delete gateway main agents",
        ));
    }
    if agent.board_id != Some(board_id) {
        return Err(DomainError::not_found());
    }
    if agent.is_board_lead {
        return Err(DomainError::forbidden(
            "Board leads cannot delete lead agents",
        ));
    }
    let by = lead.actor().reference();
    remove(client, lead.organization_id, &agent, &by)
        .await
        .map(Some)
}

/// Deletes the agent, releasing its tasks (`by` did it), and queues `agents.delete` for
/// its gateway, which removes the agent's session and workspace when it takes the request.
/// The reference refuses (502) while the gateway is unreachable; here the row goes at once
/// and the activity tells the rest: `agent.delete.requested` now, then
/// `agent.delete.direct` when the gateway removed it or `agent.delete.failed` when it
/// refused or the retries ran out (`gateways::requests`).
async fn remove(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    by: &Value,
) -> DomainResult<Deleted> {
    let released = release_tasks(client, agent.id, by).await?;
    provisioning::remove(client, organization_id, agent, agent.board_id).await?;
    client
        .execute("DELETE FROM agents WHERE id = $1", &[&agent.id])
        .await?;
    Ok(Deleted {
        released,
        gateway_id: agent.gateway_id,
    })
}

/// Queues `agents.delete` for every agent of a board that is about to go; returns their
/// gateways.
pub async fn deprovision_board(
    client: &impl GenericClient,
    board: &Board,
) -> DomainResult<Vec<Uuid>> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.board_id = $1 FOR UPDATE",
                columns = Agent::COLUMNS
            ),
            &[&board.id],
        )
        .await?;
    let mut gateways = Vec::new();
    for agent in Agent::from_rows(&rows)? {
        // The board's activity goes with the board: the agent's is the organization's.
        provisioning::remove(client, board.organization_id, &agent, None).await?;
        gateways.push(agent.gateway_id);
    }
    Ok(gateways)
}
