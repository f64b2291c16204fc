//! Coordination through the gateways (domain.md §A19): a lead nudges an agent of its board
//! or asks the user through the gateway-main agent; the gateway-main agent messages one
//! board lead or broadcasts to all of them; an inbound webhook payload is handed to the
//! board's agent. Each message is a `sessions.send` request recorded in the caller's
//! transaction (`gateway_commands`); the caller pokes the returned gateway once committed,
//! and that gateway's relay link sends it (retried until answered, or when it connects).

use super::messages::correlated;
use super::messages::lead_message_text;
use super::messages::webhook_text;
use super::messages::{ask_user_text, AskUser, LeadMessage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Agent, AgentPrincipal, Board};
use crate::domain::outbox::commands::{self as gateway_commands, Command, Target};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};

/// What the messages point agents back to, as the reference's `settings.base_url or
/// "http://localhost:8000"`.
pub fn public_url(configured: Option<&url::Url>) -> String {
    configured
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .unwrap_or_else(|| "http://localhost:8000".to_string())
}

/// `AgentNudge`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Nudge {
    pub message: String,
}

/// `GatewayMainAskUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskUserSent {
    pub ok: bool,
    pub board_id: Uuid,
    pub main_agent_id: Option<Uuid>,
    pub main_agent_name: Option<String>,
}

/// `GatewayLeadBroadcastRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LeadBroadcast {
    #[serde(flatten)]
    pub message: LeadMessage,
    /// Only these boards of the gateway (absent or empty: all of them).
    #[serde(default)]
    pub board_ids: Option<Vec<Uuid>>,
}

/// `GatewayLeadMessageResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadMessageSent {
    pub ok: bool,
    pub board_id: Uuid,
    pub lead_agent_id: Option<Uuid>,
    pub lead_agent_name: Option<String>,
    pub lead_created: bool,
}

/// `GatewayLeadBroadcastBoardResult`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastResult {
    pub board_id: Uuid,
    pub lead_agent_id: Option<Uuid>,
    pub lead_agent_name: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
}

/// `GatewayLeadBroadcastResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastSent {
    pub ok: bool,
    pub sent: i64,
    pub failed: i64,
    pub results: Vec<BroadcastResult>,
}

/// The agent's session key; 422 `missing` when it has none, as the reference.
fn session_of<'a>(agent: &'a Agent, missing: &str) -> DomainResult<&'a str> {
    agent
        .openclaw_session_id
        .as_deref()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| DomainError::unprocessable(missing))
}

/// Queues `message` into the session of an agent of `board` (`label` names the session
/// for a gateway that has to open it).
async fn send_to_agent(
    client: &impl GenericClient,
    board: &Board,
    gateway_id: Uuid,
    (agent, session_key): (&Agent, &str),
    message: &str,
    mut context: Value,
) -> DomainResult<()> {
    context["label"] = json!(agent.name);
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: board.organization_id,
            gateway_id,
            agent_id: Some(agent.id),
            board_id: Some(board.id),
        },
        session_key,
        message,
        context,
    )
    .await?;
    Ok(())
}

async fn note(
    client: &impl GenericClient,
    organization_id: Uuid,
    board_id: Option<Uuid>,
    actor: Uuid,
    event_type: &str,
    message: String,
) -> DomainResult<()> {
    activity::record(
        client,
        NewActivity {
            organization_id,
            board_id,
            event_type,
            message: Some(message),
            agent_id: Some(actor),
            task_id: None,
        },
    )
    .await?;
    Ok(())
}

/// A lead nudges an agent of its board (404 for any other agent). Returns the gateway.
pub async fn nudge(
    client: &impl GenericClient,
    lead: &AgentPrincipal,
    board: &Board,
    agent_id: Uuid,
    input: Nudge,
) -> DomainResult<Uuid> {
    let message = non_empty("message", &input.message)?;
    let target = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.id = $1 AND a.board_id = $2",
                columns = Agent::COLUMNS
            ),
            &[&agent_id, &board.id],
        )
        .await?
        .map(|row| Agent::from_row(&row))
        .transpose()?
        .ok_or_else(DomainError::not_found)?;
    let session_key = session_of(&target, "Target agent has no session key")?;
    let gateway = crate::domain::model::gateway::of_board(client, board).await?;
    let context = json!({"kind": "nudge", "deliver": true,
                         "correlation_id": format!("nudge:{}:{agent_id}", board.id)});
    send_to_agent(
        client,
        board,
        gateway.id,
        (&target, session_key),
        &message,
        context,
    )
    .await?;
    note(
        client,
        lead.organization_id,
        Some(board.id),
        lead.agent.id,
        "agent.nudge.sent",
        format!("Nudge sent to {}.", target.name),
    )
    .await?;
    Ok(gateway.id)
}

/// A lead asks the user through its gateway's main agent (whose session is the gateway's
/// main session, whether or not the agent row exists). Returns the answer and the gateway.
pub async fn ask_user(
    client: &impl GenericClient,
    lead: &AgentPrincipal,
    board: &Board,
    input: AskUser,
    base_url: &str,
) -> DomainResult<(AskUserSent, Uuid)> {
    let content = non_empty("content", &input.content)?;
    let gateway = crate::domain::model::gateway::of_board(client, board).await?;
    let main = crate::domain::agents::gateway_main::gateway_main(client, gateway.id).await?;
    let message = ask_user_text(board, &lead.agent.name, &input, &content, base_url);
    let context = correlated(
        json!({"kind": "ask_user", "deliver": true, "label": "Gateway Agent"}),
        &input.correlation_id,
    );
    gateway_commands::send_to_session(
        client,
        Target {
            organization_id: board.organization_id,
            gateway_id: gateway.id,
            agent_id: main.as_ref().map(|(id, _)| *id),
            board_id: Some(board.id),
        },
        &crate::domain::model::agent::gateway_main_session_key(gateway.id),
        &message,
        context,
    )
    .await?;
    note(
        client,
        lead.organization_id,
        Some(board.id),
        lead.agent.id,
        "gateway.lead.ask_user.sent",
        format!(
            "Lead requested user info via gateway agent for board: {}.",
            board.name
        ),
    )
    .await?;
    let (main_agent_id, main_agent_name) = main.unzip();
    Ok((
        AskUserSent {
            ok: true,
            board_id: board.id,
            main_agent_id,
            main_agent_name,
        },
        gateway.id,
    ))
}

/// Only the dedicated gateway agent of a gateway (no board, its gateway's main session)
/// may message leads. Returns its gateway.
fn require_gateway_main(agent: &AgentPrincipal) -> DomainResult<Uuid> {
    if agent.agent.board_id.is_some() {
        return Err(DomainError::forbidden("Forbidden"));
    }
    let gateway_id = agent.agent.gateway_id;
    if agent.agent.openclaw_session_id.as_deref()
        != Some(crate::domain::model::agent::gateway_main_session_key(gateway_id).as_str())
    {
        return Err(DomainError::forbidden(
            "Only the dedicated gateway agent may call this endpoint.",
        ));
    }
    Ok(gateway_id)
}

/// Makes sure the board has a lead and queues the message into its session.
async fn message_lead(
    client: &impl GenericClient,
    main: &AgentPrincipal,
    gateway_id: Uuid,
    board: &Board,
    input: &LeadMessage,
    content: &str,
    base_url: &str,
) -> DomainResult<(Agent, bool)> {
    let (lead, created) =
        crate::domain::agents::lead::ensure_board_lead(client, board, Default::default()).await?;
    let session_key = session_of(&lead, "Lead agent has no session key")?;
    let message = lead_message_text(board, &main.agent.name, input, content, base_url);
    let context = correlated(
        json!({"kind": "lead_message", "message_kind": input.kind.as_str(), "deliver": false}),
        &input.correlation_id,
    );
    send_to_agent(
        client,
        board,
        gateway_id,
        (&lead, session_key),
        &message,
        context,
    )
    .await?;
    Ok((lead, created))
}

/// The gateway-main agent messages the lead of a board of its gateway, creating the lead
/// when the board has none. Returns the answer and the gateway.
pub async fn message_board_lead(
    client: &impl GenericClient,
    main: &AgentPrincipal,
    board_id: Uuid,
    input: LeadMessage,
    base_url: &str,
) -> DomainResult<(LeadMessageSent, Uuid)> {
    let gateway_id = require_gateway_main(main)?;
    let content = non_empty("content", &input.content)?;
    let board = crate::domain::model::board::find_in_org(client, main.organization_id, board_id)
        .await?
        .ok_or_else(|| DomainError::NotFound(json!("Board not found")))?;
    if board.gateway_id != Some(gateway_id) {
        return Err(DomainError::forbidden("Forbidden"));
    }
    let (lead, lead_created) =
        message_lead(client, main, gateway_id, &board, &input, &content, base_url).await?;
    note(
        client,
        main.organization_id,
        Some(board.id),
        main.agent.id,
        "gateway.main.lead_message.sent",
        format!(
            "Sent {} to lead for board: {}.",
            input.kind.as_str(),
            board.name
        ),
    )
    .await?;
    Ok((
        LeadMessageSent {
            ok: true,
            board_id: board.id,
            lead_agent_id: Some(lead.id),
            lead_agent_name: Some(lead.name),
            lead_created,
        },
        gateway_id,
    ))
}

/// The gateway-main agent messages the leads of its gateway's boards (newest board first;
/// `board_ids` narrows them). A board whose lead cannot be reached is reported, not fatal.
pub async fn broadcast_to_leads(
    client: &impl GenericClient,
    main: &AgentPrincipal,
    broadcast: LeadBroadcast,
    base_url: &str,
) -> DomainResult<(BroadcastSent, Uuid)> {
    let gateway_id = require_gateway_main(main)?;
    let input = broadcast.message;
    let content = non_empty("content", &input.content)?;
    let only = broadcast.board_ids.filter(|ids| !ids.is_empty());
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM boards b WHERE b.gateway_id = $1 AND b.organization_id = $2 \
                   AND ($3::uuid[] IS NULL OR b.id = ANY($3)) ORDER BY b.created_at DESC, b.id",
                columns = Board::COLUMNS
            ),
            &[&gateway_id, &main.organization_id, &only],
        )
        .await?;
    let mut results = Vec::with_capacity(rows.len());
    let (mut sent, mut failed) = (0, 0);
    for board in Board::from_rows(&rows)? {
        let result = match message_lead(
            client, main, gateway_id, &board, &input, &content, base_url,
        )
        .await
        {
            Ok((lead, _)) => BroadcastResult {
                board_id: board.id,
                lead_agent_id: Some(lead.id),
                lead_agent_name: Some(lead.name),
                ok: true,
                error: None,
            },
            Err(e @ (DomainError::Database(_) | DomainError::Row(_))) => return Err(e),
            Err(refused) => BroadcastResult {
                board_id: board.id,
                lead_agent_id: None,
                lead_agent_name: None,
                ok: false,
                error: Some(match refused.status_and_detail().1 {
                    Value::String(detail) => detail,
                    other => other.to_string(),
                }),
            },
        };
        if result.ok {
            sent += 1;
        } else {
            failed += 1;
        }
        results.push(result);
    }
    note(
        client,
        main.organization_id,
        None,
        main.agent.id,
        "gateway.main.lead_broadcast.sent",
        format!(
            "Broadcast {} to {sent} board leads (failed: {failed}).",
            input.kind.as_str()
        ),
    )
    .await?;
    Ok((
        BroadcastSent {
            ok: true,
            sent,
            failed,
            results,
        },
        gateway_id,
    ))
}

/// Hands a stored webhook payload to the webhook's agent (when it is on the board) or the
/// board's lead, as the reference's webhook dispatch. `None` when there is nobody to tell
/// (no agent with a session, or a board without a gateway); else the gateway to poke.
pub async fn deliver_webhook(
    client: &impl GenericClient,
    webhook_id: Uuid,
    payload_id: Uuid,
    payload: &Value,
) -> DomainResult<Option<Uuid>> {
    let Some(row) = client
        .query_opt(
            &format!(
                "SELECT {columns}, w.description AS instruction, w.agent_id AS webhook_agent_id \
                 FROM board_webhooks w \
                 JOIN boards b ON b.id = w.board_id WHERE w.id = $1",
                columns = Board::COLUMNS
            ),
            &[&webhook_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let board = Board::from_row(&row)?;
    let description: String = get(&row, "instruction")?;
    let webhook_agent: Option<Uuid> = get(&row, "webhook_agent_id")?;
    let Some(gateway_id) = board.gateway_id else {
        return Ok(None);
    };
    // The webhook's own agent first, else the lead.
    let target = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.board_id = $1 \
                   AND (a.id = $2 OR a.is_board_lead) \
                 ORDER BY (a.id = $2) IS TRUE DESC, a.created_at, a.id LIMIT 1",
                columns = Agent::COLUMNS
            ),
            &[&board.id, &webhook_agent],
        )
        .await?
        .map(|row| Agent::from_row(&row))
        .transpose()?;
    let Some((target, session_key)) = target
        .as_ref()
        .and_then(|a| Some((a, session_of(a, "").ok()?)))
    else {
        return Ok(None);
    };
    let message = webhook_text(&board, webhook_id, &description, payload_id, payload);
    let context = json!({"kind": "webhook", "deliver": false,
                         "webhook_id": webhook_id, "payload_id": payload_id});
    send_to_agent(
        client,
        &board,
        gateway_id,
        (target, session_key),
        &message,
        context,
    )
    .await?;
    Ok(Some(gateway_id))
}

/// What a gateway's answer settles: a webhook payload its agent took is delivered.
pub async fn answered(client: &impl GenericClient, command: &Command) -> DomainResult<()> {
    let payload_id = command.params["payload_id"]
        .as_str()
        .and_then(|id| id.parse::<Uuid>().ok());
    if let (gateway_commands::DONE, Some("webhook"), Some(payload_id)) = (
        command.status.as_str(),
        command.params["kind"].as_str(),
        payload_id,
    ) {
        client
            .execute(
                "UPDATE board_webhook_payloads SET delivered_at = now() WHERE id = $1 AND delivered_at IS NULL",
                &[&payload_id],
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_has_no_trailing_slash() {
        let url: url::Url = "https://mc.example/".parse().unwrap();
        assert_eq!(public_url(Some(&url)), "https://mc.example");
        assert_eq!(public_url(None), "http://localhost:8000");
    }
}
