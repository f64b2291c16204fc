//! An agent's SOUL.md: read from the agent's row, written to its gateway.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::{Agent, AgentPrincipal};
use crate::domain::outbox::provisioning;
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::{DomainError, DomainResult};

/// `SoulUpdateRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SoulUpdate {
    pub content: String,
    #[serde(default)]
    pub source_url: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An agent of the caller's board that the caller (its lead, or itself with `self_ok`)
/// may act on.
async fn board_agent_for(
    client: &impl GenericClient,
    caller: &AgentPrincipal,
    board_id: Uuid,
    agent_id: Uuid,
    self_ok: bool,
) -> DomainResult<Agent> {
    if !(self_ok && caller.agent.id == agent_id) {
        caller.require_lead()?;
    }
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.id = $1 AND a.board_id = $2",
                columns = Agent::COLUMNS
            ),
            &[&agent_id, &board_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(Agent::from_row(&row)?)
}

/// The agent's SOUL.md as stored (the reference reads it from the gateway).
pub async fn soul(
    client: &impl GenericClient,
    caller: &AgentPrincipal,
    board_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<String> {
    let agent = board_agent_for(client, caller, board_id, agent_id, true).await?;
    Ok(agent.soul_template.unwrap_or_default())
}

/// A lead rewrites an agent's SOUL.md: stored for re-provisioning and written to the agent's
/// workspace on its gateway (a recorded gateway request).
pub async fn update_soul(
    client: &impl GenericClient,
    caller: &AgentPrincipal,
    board_id: Uuid,
    agent_id: Uuid,
    input: SoulUpdate,
) -> DomainResult<Uuid> {
    let content = crate::domain::support::validation::non_empty("content", &input.content)?;
    let agent = board_agent_for(client, caller, board_id, agent_id, false).await?;
    client
        .execute(
            "UPDATE agents SET soul_template = $2, provision_requested_at = now(), provision_action = 'update', \
             updated_at = now() WHERE id = $1",
            &[&agent.id, &content],
        )
        .await?;
    provisioning::write_file(client, caller.organization_id, &agent, "SOUL.md", &content).await?;
    let reason = input.reason.filter(|r| !r.trim().is_empty());
    activity::record(
        client,
        NewActivity {
            organization_id: caller.organization_id,
            board_id: Some(board_id),
            event_type: "agent.soul.updated",
            message: Some(match reason {
                Some(reason) => format!("SOUL updated for {}: {reason}", agent.name),
                None => format!("SOUL updated for {}.", agent.name),
            }),
            agent_id: Some(caller.agent.id),
            task_id: None,
        },
    )
    .await?;
    Ok(agent.gateway_id)
}
