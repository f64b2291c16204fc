//! Agent authentication and presence: the token touch and heartbeats, the one place an
//! agent's status and `last_seen_at` move.

use chrono::{Duration, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::crud::{agent_for_user, blank_to_none, create, AgentCreate};
use super::tokens::{with_new_token, AgentWithToken};
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Agent, AgentPrincipal};
use crate::domain::support::access::{self, Access, Caller};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::{DomainError, DomainResult};
use crate::secrets::agent_tokens::{self, Holder};

/// Presence (`last_seen_at`) is written at most this often per agent.
const PRESENCE_EVERY_SECONDS: i64 = 30;

/// The agent was heard from: its status becomes `status` when one is given, else online
/// (unless it is being updated or deleted); `last_seen_at` moves only when it is unset or
/// older than `PRESENCE_EVERY_SECONDS`. The one rule of presence: the token touch and every
/// heartbeat go through it. Nothing is written (`None`) when neither would change, so
/// frequent calls cost no row write and no stream event.
async fn touch(
    client: &impl GenericClient,
    agent_id: Uuid,
    status: Option<&str>,
) -> DomainResult<Option<Agent>> {
    const STATUS: &str = "COALESCE($2::text, \
         CASE WHEN a.status IN ('updating', 'deleting') THEN a.status ELSE 'online' END)";
    const DUE: &str =
        "(a.last_seen_at IS NULL OR a.last_seen_at <= now() - make_interval(secs => $3))";
    // The test is in the UPDATE itself, so concurrent calls apply the rule to the row as
    // it is when each one writes.
    let row = client
        .query_opt(
            &format!(
                "UPDATE agents a SET status = {STATUS}, \
                   last_seen_at = CASE WHEN {DUE} THEN now() ELSE a.last_seen_at END, updated_at = now() \
                 WHERE a.id = $1 AND ({DUE} OR a.status <> {STATUS}) RETURNING {columns}",
                columns = Agent::COLUMNS
            ),
            &[&agent_id, &status, &(PRESENCE_EVERY_SECONDS as f64)],
        )
        .await?;
    Ok(row.as_ref().map(Agent::from_row).transpose()?)
}

/// The agent a token belongs to: one indexed query, a constant-time check, and the
/// presence touch (`touch`). The flag says whether the touch wrote the agent.
pub async fn authenticate(
    client: &impl GenericClient,
    key: &str,
    token: &str,
) -> DomainResult<Option<(AgentPrincipal, bool)>> {
    let Some((holder, lookup, secret)) = agent_tokens::parse(token) else {
        return Ok(None);
    };
    let by_creator_token = format!(
        "SELECT {columns}, a.organization_id, a.token_hash FROM agents a WHERE a.token_lookup = $1",
        columns = Agent::COLUMNS
    );
    let by_gateway_token = format!(
        "SELECT {columns}, a.organization_id, g.hash AS token_hash \
         FROM agent_gateway_tokens g JOIN agents a ON a.id = g.agent_id WHERE g.lookup = $1",
        columns = Agent::COLUMNS
    );
    let mut row = None;
    if holder == Holder::Creator {
        row = client.query_opt(&by_creator_token, &[&lookup]).await?;
    }
    // Gateway tokens minted before they had a prefix of their own read `mca_`.
    if row.is_none() {
        row = client.query_opt(&by_gateway_token, &[&lookup]).await?;
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let hash: Vec<u8> = get(&row, "token_hash")?;
    if !crate::secrets::agent_tokens::verify(key, secret, &hash) {
        return Ok(None);
    }
    let mut agent = Agent::from_row(&row)?;
    // Most requests come within the presence window: they skip the round trip.
    let due = agent
        .last_seen_at
        .is_none_or(|seen| Utc::now() - seen >= Duration::seconds(PRESENCE_EVERY_SECONDS));
    let mut touched = false;
    if due {
        if let Some(seen) = touch(client, agent.id, None).await? {
            agent = seen;
            touched = true;
        }
    }
    let principal = AgentPrincipal {
        agent,
        organization_id: get(&row, "organization_id")?,
    };
    Ok(Some((principal, touched)))
}

/// `AgentHeartbeat`.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
pub struct AgentHeartbeat {
    /// Any string (`healthy`, `degraded` …); blank or absent: online.
    #[serde(default)]
    pub status: Option<String>,
}

/// `AgentHeartbeatCreate`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AgentHeartbeatCreate {
    pub name: String,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A heartbeat of the agent (presence by `touch`, with the posted status), recorded as
/// `agent.heartbeat` activity and (spaced) as system events for the rule engine. Returns the agent and whether it was written.
pub(super) async fn heartbeat(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent_id: Uuid,
    status: Option<String>,
) -> DomainResult<(Agent, bool)> {
    let status = blank_to_none(status);
    let (agent, written) = match touch(client, agent_id, status.as_deref()).await? {
        Some(agent) => (agent, true),
        None => {
            let row = client
                .query_one(
                    &format!(
                        "SELECT {columns} FROM agents a WHERE a.id = $1",
                        columns = Agent::COLUMNS
                    ),
                    &[&agent_id],
                )
                .await?;
            (Agent::from_row(&row)?, false)
        }
    };
    activity::record(
        client,
        NewActivity {
            organization_id,
            board_id: agent.board_id,
            event_type: "agent.heartbeat",
            message: Some(format!("Heartbeat received from {}.", agent.name)),
            agent_id: Some(agent.id),
            task_id: None,
        },
    )
    .await?;
    // Last: it locks the organization row. The engine reads these events from the table
    // (docs/proactivity.md): heartbeats are not handed to the bus.
    crate::domain::proactivity::producers::agent_heartbeat(client, organization_id, agent.id)
        .await?;
    Ok((agent, written))
}

/// `POST /agents/{id}/heartbeat`: the agent itself (another agent: 403), or an org admin
/// with write access to the agent's board.
pub async fn heartbeat_agent(
    client: &impl GenericClient,
    caller: &Caller,
    agent_id: Uuid,
    input: AgentHeartbeat,
) -> DomainResult<(Agent, bool)> {
    match caller {
        Caller::Agent(me) if me.agent.id != agent_id => Err(DomainError::forbidden(
            "Agents can only send their own heartbeat.",
        )),
        Caller::Agent(_) => Ok(()),
        Caller::User(principal) => agent_for_user(client, principal, agent_id, Access::Write)
            .await
            .map(drop),
    }?;
    heartbeat(client, caller.organization_id(), agent_id, input.status).await
}

/// `POST /agents/heartbeat`: an agent beats for itself whatever the name says; an org
/// admin names an agent of the organization (on `board_id` when given), and when there is
/// none it is created as `POST /agents` creates agents, its token shown once. Returns the
/// agent and whether it was written.
pub async fn heartbeat_or_create(
    client: &impl GenericClient,
    caller: &Caller,
    input: AgentHeartbeatCreate,
    key: &str,
) -> DomainResult<(AgentWithToken, bool)> {
    let principal = match caller {
        Caller::Agent(me) => {
            let (agent, written) =
                heartbeat(client, me.organization_id, me.agent.id, input.status).await?;
            return Ok((AgentWithToken::without_token(agent), written));
        }
        Caller::User(principal) => principal,
    };
    access::require_org_admin(&principal.member)?;
    let name = crate::domain::support::validation::non_empty("name", &input.name)?;
    let found: Option<Uuid> = client
        .query_opt(
            "SELECT id FROM agents WHERE organization_id = $1 AND name = $2 \
             AND ($3::uuid IS NULL OR board_id = $3) ORDER BY created_at, id LIMIT 1",
            &[&principal.organization.id, &name, &input.board_id],
        )
        .await?
        .map(|r| get(&r, "id"))
        .transpose()?;
    let org = principal.organization.id;
    let Some(agent_id) = found else {
        let new_agent = AgentCreate {
            board_id: input.board_id,
            name,
            ..AgentCreate::default()
        };
        let created = create(client, principal, new_agent).await?;
        let (agent, _) = heartbeat(client, org, created.id, input.status).await?;
        return Ok((with_new_token(client, agent, key).await?, true));
    };
    agent_for_user(client, principal, agent_id, Access::Write).await?;
    let (agent, written) = heartbeat(client, org, agent_id, input.status).await?;
    Ok((AgentWithToken::without_token(agent), written))
}
