//! What Mission Control asks a gateway to do with its agents (docs/gateway-protocol.md §7):
//! create, update and remove them, write their files, re-sync their templates, set their
//! heartbeats. Each is a recorded gateway request (`gateway_commands`), sent when the
//! gateway's link is up.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::GenericClient;
use crate::domain::model::Agent;
use crate::domain::outbox::commands::{self as gateway_commands, Command, NewCommand, Target};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::DomainResult;

pub const CREATE: &str = "agents.create";
pub const UPDATE: &str = "agents.update";
pub const DELETE: &str = "agents.delete";
pub const WRITE_FILE: &str = "agents.files.set";
pub const SYNC_TEMPLATES: &str = "agents.templates.sync";
pub const SET_HEARTBEATS: &str = "agents.heartbeats.set";

fn target(organization_id: Uuid, agent: &Agent) -> Target {
    Target {
        organization_id,
        gateway_id: agent.gateway_id,
        agent_id: Some(agent.id),
        board_id: agent.board_id,
    }
}

/// The agent as the gateway needs it to run it.
fn spec(agent: &Agent) -> Value {
    json!({
        "agent_id": agent.id,
        "name": agent.name,
        "board_id": agent.board_id,
        "session_key": agent.openclaw_session_id,
        "is_board_lead": agent.is_board_lead,
        "is_gateway_main": agent.board_id.is_none(),
        "heartbeat_config": agent.heartbeat_config,
        "identity_profile": agent.identity_profile,
        "identity_template": agent.identity_template,
        "soul_template": agent.soul_template,
    })
}

/// `agents.create` or `agents.update`; the frame carries a fresh token for the gateway. The
/// agent's activity says it was asked for (`agent.provision.requested` /
/// `agent.update.requested`); the answer records how it ended (`gateways::requests`).
pub async fn provision(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    method: &str,
) -> DomainResult<Command> {
    let mut params = spec(agent);
    params["rotate_token"] = json!(true);
    let (event_type, message) = match method {
        UPDATE => (
            "agent.update.requested",
            format!("Update requested for {}.", agent.name),
        ),
        _ => (
            "agent.provision.requested",
            format!("Provisioning requested for {}.", agent.name),
        ),
    };
    activity::record(
        client,
        NewActivity {
            organization_id,
            board_id: agent.board_id,
            event_type,
            message: Some(message),
            agent_id: Some(agent.id),
            task_id: None,
        },
    )
    .await?;
    request(client, organization_id, agent, method, params).await
}

/// `agents.delete`, recorded before the agent's row goes (the request outlives it, and
/// carries the name for the activity of its answer), with `agent.delete.requested` in the
/// activity of `board_id`.
pub async fn remove(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    board_id: Option<Uuid>,
) -> DomainResult<Command> {
    activity::record(
        client,
        NewActivity {
            organization_id,
            board_id,
            event_type: "agent.delete.requested",
            message: Some(format!(
                "Delete requested for {}; its gateway removes it when it takes the request.",
                agent.name
            )),
            agent_id: None,
            task_id: None,
        },
    )
    .await?;
    let params = json!({
        "agent_id": agent.id,
        "session_key": agent.openclaw_session_id,
        "agent_name": agent.name,
    });
    request(client, organization_id, agent, DELETE, params).await
}

/// `agents.files.set`: one file of the agent's workspace (SOUL.md, …).
pub async fn write_file(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    name: &str,
    content: &str,
) -> DomainResult<Command> {
    let params = json!({"agent_id": agent.id, "session_key": agent.openclaw_session_id,
                        "name": name, "content": content});
    request(client, organization_id, agent, WRITE_FILE, params).await
}

/// What a template sync asks of each agent.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    pub reset_session: bool,
    pub rotate_token: bool,
    pub force_bootstrap: bool,
    pub overwrite: bool,
}

/// `agents.templates.sync`: rewrite the agent's workspace templates from its current spec.
pub async fn sync_templates(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    options: SyncOptions,
) -> DomainResult<Command> {
    let mut params = spec(agent);
    params["reset_session"] = json!(options.reset_session);
    params["rotate_token"] = json!(options.rotate_token);
    params["force_bootstrap"] = json!(options.force_bootstrap);
    params["overwrite"] = json!(options.overwrite);
    request(client, organization_id, agent, SYNC_TEMPLATES, params).await
}

/// `agents.heartbeats.set`: the heartbeat configs of several agents of one gateway, in one
/// request (the reference patches them in one gateway config call). `agents` are
/// `{agent_id, session_key, heartbeat_config}`.
pub async fn set_heartbeats(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    agents: Vec<Value>,
) -> DomainResult<Command> {
    gateway_commands::record(
        client,
        NewCommand {
            target: Target {
                organization_id,
                gateway_id,
                agent_id: None,
                board_id: None,
            },
            method: SET_HEARTBEATS,
            params: json!({ "agents": agents }),
            reply_to: None,
        },
    )
    .await
}

async fn request(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    method: &str,
    params: Value,
) -> DomainResult<Command> {
    gateway_commands::record(
        client,
        NewCommand {
            target: target(organization_id, agent),
            method,
            params,
            reply_to: None,
        },
    )
    .await
}
