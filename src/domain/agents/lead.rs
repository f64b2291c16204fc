//! A board's lead agent: made on demand (onboarding, coordination, the first agent of a
//! board) with the reference's name, identity and session.

use serde_json::{json, Map, Value};

use super::crud::{board_session_key, insert_board_agent, AgentCreate};
use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::{Agent, Board};
use crate::domain::{DomainError, DomainResult};

/// The name the reference gives every lead it creates.
const LEAD_AGENT_NAME: &str = "Lead Agent";

/// How a lead is made: its name (else "Lead Agent") and identity keys laid over the
/// reference's lead defaults.
#[derive(Debug, Default)]
pub struct LeadOptions {
    pub name: Option<String>,
    pub identity_profile: Map<String, Value>,
}

/// The board's lead, created when it has none (the reference's `ensure_board_lead_agent`);
/// an existing lead is brought back to the lead name, the board's gateway and the lead
/// session key. Returns the lead and whether it was created.
pub async fn ensure_board_lead(
    client: &impl GenericClient,
    board: &Board,
    options: LeadOptions,
) -> DomainResult<(Agent, bool)> {
    let name = options.name.unwrap_or_else(|| LEAD_AGENT_NAME.to_string());
    let existing = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.board_id = $1 AND a.is_board_lead \
                 ORDER BY a.created_at, a.id LIMIT 1 FOR NO KEY UPDATE",
                columns = Agent::COLUMNS
            ),
            &[&board.id],
        )
        .await?;
    let Some(existing) = existing.as_ref().map(Agent::from_row).transpose()? else {
        let mut identity = json!({
            "role": "Board Lead",
            "communication_style": "direct, concise, practical",
            "emoji": ":gear:",
        });
        if let Some(identity) = identity.as_object_mut() {
            identity.extend(options.identity_profile);
        }
        let input = AgentCreate {
            board_id: Some(board.id),
            name: name.clone(),
            status: None,
            heartbeat_config: None,
            identity_profile: identity.as_object().cloned(),
            identity_template: None,
            soul_template: None,
        };
        let lead = insert_board_agent(client, board, name, input, true).await?;
        return Ok((lead, true));
    };
    let gateway_id = board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))?;
    let session_key = board_session_key(existing.id, board.id, true);
    if existing.name == name
        && existing.gateway_id == gateway_id
        && existing.openclaw_session_id.as_deref() == Some(session_key.as_str())
    {
        return Ok((existing, false));
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE agents a SET name = $2, gateway_id = $3, openclaw_session_id = $4, updated_at = now() \
                 WHERE a.id = $1 RETURNING {columns}",
                columns = Agent::COLUMNS
            ),
            &[&existing.id, &name, &gateway_id, &session_key],
        )
        .await?;
    Ok((Agent::from_row(&row)?, false))
}
