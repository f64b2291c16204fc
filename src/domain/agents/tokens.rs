//! Agent tokens: a creator's token is shown once, at creation and whenever it is rotated.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::GenericClient;
use crate::domain::model::Agent;
use crate::domain::DomainResult;
use crate::secrets::agent_tokens::{self, Holder};

/// `AgentRead` with the agent's new token, shown this once (at creation and whenever an
/// update rotates it).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentWithToken {
    #[serde(flatten)]
    pub agent: Agent,
    /// `mca_…`: send it as `X-Agent-Token` (or `Authorization: Bearer` on `/agent/*`).
    pub agent_token: Option<String>,
}

impl AgentWithToken {
    /// An answer that shows no token (the agent keeps its own).
    pub(super) fn without_token(agent: Agent) -> AgentWithToken {
        AgentWithToken {
            agent,
            agent_token: None,
        }
    }
}

/// Gives the agent a new token (the old one stops working) and returns it.
pub async fn rotate_token(
    client: &impl GenericClient,
    agent_id: Uuid,
    key: &str,
) -> DomainResult<String> {
    let minted = agent_tokens::mint(key, Holder::Creator);
    client
        .execute(
            "UPDATE agents SET token_lookup = $2, token_hash = $3 WHERE id = $1",
            &[&agent_id, &minted.lookup, &minted.hash],
        )
        .await?;
    Ok(minted.token)
}

/// The agent with a fresh token, for the response that shows it.
pub async fn with_new_token(
    client: &impl GenericClient,
    agent: Agent,
    key: &str,
) -> DomainResult<AgentWithToken> {
    let token = rotate_token(client, agent.id, key).await?;
    Ok(AgentWithToken {
        agent,
        agent_token: Some(token),
    })
}
