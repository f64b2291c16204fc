//! Agents (domain.md §A6): admin CRUD and what the agents stream reads. Every change a
//! gateway must make (create, update) is recorded as a gateway request in the same
//! transaction (`provisioning`), besides the intent on the row.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{self, Record};
use crate::db::GenericClient;
use crate::domain::model::agent::{default_heartbeat_config, gateway_main_session_key};
use crate::domain::model::{Agent, AgentPrincipal, Board, Principal};
use crate::domain::outbox::provisioning;
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};

pub(super) fn board_session_key(agent_id: Uuid, board_id: Uuid, is_lead: bool) -> String {
    if is_lead {
        format!("agent:lead-{board_id}:main")
    } else {
        format!("agent:mc-{agent_id}:main")
    }
}

/// `AgentCreate`. `status` is accepted and ignored: a new agent is always provisioning.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AgentCreate {
    #[serde(default)]
    pub board_id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub heartbeat_config: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub identity_profile: Option<Map<String, Value>>,
    #[serde(default)]
    pub identity_template: Option<String>,
    #[serde(default)]
    pub soul_template: Option<String>,
}

/// `AgentUpdate`. `null` on `name` leaves it; `status` in any form is refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AgentUpdate {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub is_gateway_main: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub status: Option<Option<Value>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub heartbeat_config: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub identity_profile: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub identity_template: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub soul_template: Option<Option<String>>,
}

impl AgentUpdate {
    fn is_empty(&self) -> bool {
        self.board_id.is_none()
            && self.name.is_none()
            && self.heartbeat_config.is_none()
            && self.identity_profile.is_none()
            && self.identity_template.is_none()
            && self.soul_template.is_none()
    }
}

/// Filters of `GET /agents` (and of its stream).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct AgentFilter {
    pub board_id: Option<Uuid>,
    pub gateway_id: Option<Uuid>,
}

pub(super) fn blank_to_none(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// String values trimmed, lists joined with ", ", blanks and nulls dropped; empty → None.
pub fn normalize_identity_profile(profile: Option<Map<String, Value>>) -> Option<Value> {
    let mut normalized = Map::new();
    for (key, raw) in profile? {
        let key = key.trim();
        let text = |v: &Value| match v {
            Value::String(s) => s.trim().to_string(),
            other => other.to_string().trim().to_string(),
        };
        let value = match &raw {
            Value::Null => continue,
            Value::Array(items) => items
                .iter()
                .map(text)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
            other => text(other),
        };
        if !key.is_empty() && !value.is_empty() {
            normalized.insert(key.to_string(), Value::String(value));
        }
    }
    (!normalized.is_empty()).then_some(Value::Object(normalized))
}

/// The agents an org admin sees: those on boards they can read, plus the org's
/// gateway-main agents, narrowed by the filter. Checked once (a stream keeps it).
#[derive(Debug, Clone)]
pub struct AgentScope {
    organization_id: Uuid,
    /// `None`: every board of the organization.
    board_ids: Option<Vec<Uuid>>,
    filter: AgentFilter,
}

/// The rows of an `AgentScope` (`$1`..`$4`, see `AgentScope::params`).
const SCOPE_SQL: &str = "a.organization_id = $1 \
     AND ((a.board_id IS NOT NULL AND ($2::uuid[] IS NULL OR a.board_id = ANY($2))) OR a.board_id IS NULL) \
     AND ($3::uuid IS NULL OR a.board_id = $3) \
     AND ($4::uuid IS NULL OR a.board_id IN (SELECT id FROM boards WHERE gateway_id = $4) \
          OR (a.board_id IS NULL AND a.gateway_id = $4))";

impl AgentScope {
    /// An org admin's scope: a filter board outside the organization or a foreign gateway
    /// answers 404, a board the admin cannot read 403.
    pub async fn of(
        client: &impl GenericClient,
        principal: &Principal,
        filter: AgentFilter,
    ) -> DomainResult<AgentScope> {
        access::require_org_admin(&principal.member)?;
        let scope = access::board_scope(client, &principal.member, Access::Read).await?;
        let org = principal.organization.id;
        if let Some(board_id) = filter.board_id {
            if crate::domain::model::board::find_in_org(client, org, board_id)
                .await?
                .is_none()
            {
                return Err(DomainError::not_found());
            }
            if !scope.allows(board_id) {
                return Err(DomainError::forbidden("Forbidden"));
            }
        }
        if let Some(gateway_id) = filter.gateway_id {
            if crate::domain::model::gateway::find(client, org, gateway_id, false)
                .await?
                .is_none()
            {
                return Err(DomainError::not_found());
            }
        }
        Ok(AgentScope {
            organization_id: org,
            board_ids: scope.ids().map(<[Uuid]>::to_vec),
            filter,
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [
            &self.organization_id,
            &self.board_ids,
            &self.filter.board_id,
            &self.filter.gateway_id,
        ]
    }
}

/// The agents of the admin's scope, newest first.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    filter: AgentFilter,
    page: PageParams,
) -> DomainResult<Page<Agent>> {
    let scope = AgentScope::of(client, principal, filter).await?;
    fetch_page(
        client,
        Agent::COLUMNS,
        &format!("FROM agents a WHERE {SCOPE_SQL}"),
        "a.created_at DESC, a.id",
        &scope.params(),
        page,
        Agent::from_row,
    )
    .await
}

/// Where an agents stream starts (see `crate::domain::support::streams::stream_start`): `since` picks the agents
/// changed or seen at or after it.
pub async fn stream_start(
    client: &impl GenericClient,
    organization_id: Uuid,
    last_event_id: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> DomainResult<i64> {
    crate::domain::support::streams::stream_start(
        client,
        organization_id,
        last_event_id,
        since,
        "SELECT agent_feed_seq AS current_seq FROM organizations WHERE id = $1",
        "SELECT min(feed_seq) - 1 AS first_seq FROM agents WHERE organization_id = $1 \
         AND (updated_at >= $2 OR last_seen_at >= $2)",
    )
    .await
}

/// The scope's agents written after feed number `after` (the `agents_feed_seq` trigger
/// numbers every write), each once in its current state: `(number, {"agent": AgentRead})`.
pub async fn changed_after(
    client: &impl GenericClient,
    scope: &AgentScope,
    after: i64,
) -> DomainResult<Vec<(i64, Value)>> {
    let [org, board_ids, board_id, gateway_id] = scope.params();
    let rows = client
        .query(
            &format!(
                "SELECT {columns}, a.feed_seq FROM agents a WHERE {SCOPE_SQL} \
                 AND a.feed_seq > $5 ORDER BY a.feed_seq LIMIT $6",
                columns = Agent::COLUMNS
            ),
            &[
                org,
                board_ids,
                board_id,
                gateway_id,
                &after,
                &crate::domain::support::streams::BATCH,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                record::get(r, "feed_seq")?,
                json!({"agent": Agent::from_row(r)?}),
            ))
        })
        .collect()
}

/// The agent if it is in the caller's organization (else 404) and the caller may touch
/// it: a gateway-main agent needs an org admin, a board agent access to its board (403).
pub async fn agent_for_user(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
    access: Access,
) -> DomainResult<Agent> {
    access::require_org_admin(&principal.member)?;
    // Writers of an agent wait for each other; `NO KEY UPDATE` (the agent's id does not
    // change) still lets other transactions insert rows naming the agent (activity, …)
    // meanwhile. `FOR UPDATE` blocked their foreign-key check while this transaction went
    // on to lock the board for its own activity: a deadlock with any transaction that had
    // locked the board first (seen as a 503 on a heartbeat under load).
    let lock = if access == Access::Write {
        " FOR NO KEY UPDATE"
    } else {
        ""
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agents a WHERE a.id = $1 AND a.organization_id = $2{lock}",
                columns = Agent::COLUMNS
            ),
            &[&agent_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let agent = Agent::from_row(&row)?;
    if let Some(board_id) = agent.board_id {
        let scope = access::board_scope(client, &principal.member, access).await?;
        if !scope.allows(board_id) {
            return Err(DomainError::forbidden("Forbidden"));
        }
    }
    Ok(agent)
}

pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
) -> DomainResult<Agent> {
    agent_for_user(client, principal, agent_id, Access::Read).await
}

/// A board the caller may put an agent on: `board_id` given (422), in the organization
/// (404 "Board not found"), writable (403).
pub(super) async fn target_board(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Option<Uuid>,
) -> DomainResult<Board> {
    let board_id = board_id.ok_or_else(|| DomainError::unprocessable("board_id is required"))?;
    let board =
        crate::domain::model::board::find_in_org(client, principal.organization.id, board_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(json!("Board not found")))?;
    let scope = access::board_scope(client, &principal.member, Access::Write).await?;
    if !scope.allows(board.id) {
        return Err(DomainError::forbidden("Forbidden"));
    }
    Ok(board)
}

/// The board's gateway, which must exist and have a workspace root to provision into.
pub(super) async fn board_gateway(
    client: &impl GenericClient,
    board: &Board,
) -> DomainResult<Uuid> {
    let gateway = crate::domain::model::gateway::of_board(client, board).await?;
    if gateway.workspace_root.trim().is_empty() {
        return Err(DomainError::unprocessable(
            "Gateway workspace_root is required",
        ));
    }
    Ok(gateway.id)
}

/// Case-insensitive name uniqueness on the board and across the gateway's boards.
pub(super) async fn ensure_unique_name(
    client: &impl GenericClient,
    board_id: Uuid,
    gateway_id: Uuid,
    name: &str,
) -> DomainResult<()> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM agents WHERE board_id = $1 AND lower(name) = lower($3)) \
                      AS on_board, \
                    EXISTS (SELECT 1 FROM agents a JOIN boards b ON b.id = a.board_id \
                            WHERE b.gateway_id = $2 AND lower(a.name) = lower($3)) AS on_gateway",
            &[&board_id, &gateway_id, &name],
        )
        .await?;
    if record::get(&row, "on_board")? {
        return Err(DomainError::conflict(
            "An agent with this name already exists on this board.",
        ));
    }
    if record::get(&row, "on_gateway")? {
        return Err(DomainError::conflict(
            "An agent with this name already exists in this gateway workspace.",
        ));
    }
    Ok(())
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: AgentCreate,
) -> DomainResult<Agent> {
    access::require_org_admin(&principal.member)?;
    let name = crate::domain::support::validation::non_empty("name", &input.name)?;
    let board = target_board(client, principal, input.board_id).await?;
    insert_board_agent(client, &board, name, input, false).await
}

/// A board lead adds a worker to its own board (whatever `board_id` says), within the
/// board's `max_agents` (the lead not counted).
pub async fn create_by_lead(
    client: &impl GenericClient,
    lead: &AgentPrincipal,
    input: AgentCreate,
) -> DomainResult<Agent> {
    lead.require_lead()?;
    let name = crate::domain::support::validation::non_empty("name", &input.name)?;
    let board_id = lead.agent.board_id.ok_or_else(DomainError::not_found)?;
    let board = client
        .query_one(
            &format!(
                "SELECT {} FROM boards b WHERE b.id = $1 FOR NO KEY UPDATE",
                Board::COLUMNS
            ),
            &[&board_id],
        )
        .await?;
    let board = Board::from_row(&board)?;
    let row = client
        .query_one(
            "SELECT count(*) AS workers FROM agents WHERE board_id = $1 AND NOT is_board_lead",
            &[&board.id],
        )
        .await?;
    let workers: i64 = record::get(&row, "workers")?;
    if workers >= i64::from(board.max_agents) {
        let noun = if board.max_agents == 1 {
            "agent"
        } else {
            "agents"
        };
        return Err(DomainError::conflict(format!(
            "Board worker-agent limit reached: max_agents={} (excluding the lead); cannot create more than {} {noun}.",
            board.max_agents, board.max_agents
        )));
    }
    insert_board_agent(client, &board, name, input, false).await
}

/// Inserts an agent on `board` with the provisioning intent recorded. A worker's name must
/// be unique on the board and its gateway; a lead's is not checked, as the reference names
/// every lead it creates "Lead Agent".
pub(super) async fn insert_board_agent(
    client: &impl GenericClient,
    board: &Board,
    name: String,
    input: AgentCreate,
    is_lead: bool,
) -> DomainResult<Agent> {
    let gateway_id = board_gateway(client, board).await?;
    if !is_lead {
        ensure_unique_name(client, board.id, gateway_id, &name).await?;
    }
    let id = Uuid::new_v4();
    let heartbeat = input
        .heartbeat_config
        .map(Value::Object)
        .unwrap_or_else(default_heartbeat_config);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO agents AS a (id, organization_id, board_id, gateway_id, name, status, openclaw_session_id, \
                   heartbeat_config, identity_profile, identity_template, soul_template, is_board_lead, \
                   provision_requested_at, provision_action) \
                 VALUES ($1, $2, $3, $4, $5, 'provisioning', $6, $7, $8, $9, $10, $11, now(), 'provision') \
                 RETURNING {columns}",
                columns = Agent::COLUMNS
            ),
            &[
                &id,
                &board.organization_id,
                &board.id,
                &gateway_id,
                &name,
                &board_session_key(id, board.id, is_lead),
                &heartbeat,
                &normalize_identity_profile(input.identity_profile),
                &blank_to_none(input.identity_template),
                &blank_to_none(input.soul_template),
                &is_lead,
            ],
        )
        .await?;
    let agent = Agent::from_row(&row)?;
    provisioning::provision(client, board.organization_id, &agent, provisioning::CREATE).await?;
    Ok(agent)
}

/// The agents an agent sees: those of its board, or (a gateway-main agent) of its
/// organization's boards, optionally of one board; newest first.
pub async fn list_for_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    board_id: Option<Uuid>,
    page: PageParams,
) -> DomainResult<Page<Agent>> {
    if let (Some(own), Some(asked)) = (agent.agent.board_id, board_id) {
        if own != asked {
            return Err(DomainError::forbidden(
                "Agent can only access its own board.",
            ));
        }
    }
    let board = agent.agent.board_id.or(board_id);
    fetch_page(
        client,
        Agent::COLUMNS,
        "FROM agents a WHERE a.organization_id = $1 AND a.board_id IS NOT NULL \
         AND ($2::uuid IS NULL OR a.board_id = $2)",
        "a.created_at DESC, a.id",
        &[&agent.organization_id, &board],
        page,
        Agent::from_row,
    )
    .await
}

/// Query of `PATCH /agents/{id}`.
#[derive(Debug, Default, Deserialize)]
pub struct UpdateOptions {
    #[serde(default)]
    pub force: bool,
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
    patch: AgentUpdate,
    options: UpdateOptions,
) -> DomainResult<(Agent, bool)> {
    let mut agent = agent_for_user(client, principal, agent_id, Access::Write).await?;
    if patch.status.is_some() {
        return Err(DomainError::forbidden(
            "status is controlled by agent heartbeat",
        ));
    }
    let name = patch
        .name
        .as_deref()
        .map(|n| crate::domain::support::validation::non_empty("name", n))
        .transpose()?;
    let new_board = match patch.board_id {
        Some(Some(board_id)) => Some(target_board(client, principal, Some(board_id)).await?),
        _ => None,
    };
    let make_main = patch.is_gateway_main;
    if patch.is_empty() && !options.force && make_main.is_none() {
        return Ok((agent, false));
    }

    match make_main {
        Some(true) => {
            // Main of the gateway of the given board, or of its current board.
            let board = match new_board {
                Some(b) => b,
                None => target_board(client, principal, agent.board_id).await?,
            };
            agent.gateway_id = board_gateway(client, &board).await?;
            agent.board_id = None;
            agent.is_board_lead = false;
            agent.openclaw_session_id = Some(gateway_main_session_key(agent.gateway_id));
        }
        Some(false) => {
            let board = new_board.ok_or_else(|| {
                DomainError::unprocessable(
                    "board_id is required when converting a gateway-main agent to board scope",
                )
            })?;
            agent.gateway_id = board_gateway(client, &board).await?;
            agent.board_id = Some(board.id);
            agent.openclaw_session_id =
                Some(board_session_key(agent.id, board.id, agent.is_board_lead));
        }
        // A gateway-main agent stays main; a board agent may move to another board.
        None if agent.is_gateway_main => {}
        None => {
            if let Some(board_id) = patch.board_id {
                let board = match new_board {
                    Some(b) => b,
                    None => target_board(client, principal, board_id).await?,
                };
                agent.gateway_id = board_gateway(client, &board).await?;
                agent.board_id = Some(board.id);
            } else if let Some(board_id) = agent.board_id {
                // Re-provisioning needs the board's gateway to be usable.
                let board = target_board(client, principal, Some(board_id)).await?;
                board_gateway(client, &board).await?;
            }
        }
    }
    if let Some(name) = name {
        agent.name = name;
    }
    if let Some(v) = patch.heartbeat_config {
        agent.heartbeat_config = v.map(Value::Object);
    }
    if agent.heartbeat_config.is_none() {
        agent.heartbeat_config = Some(default_heartbeat_config());
    }
    if let Some(v) = patch.identity_profile {
        agent.identity_profile = normalize_identity_profile(v);
    }
    if let Some(v) = patch.identity_template {
        agent.identity_template = blank_to_none(v);
    }
    if let Some(v) = patch.soul_template {
        agent.soul_template = blank_to_none(v);
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE agents a SET board_id = $2, gateway_id = $3, name = $4, is_board_lead = $5, \
                   openclaw_session_id = $6, heartbeat_config = $7, identity_profile = $8, identity_template = $9, \
                   soul_template = $10, status = 'updating', provision_requested_at = now(), \
                   provision_action = 'update', updated_at = now() \
                 WHERE a.id = $1 RETURNING {columns}",
                columns = Agent::COLUMNS
            ),
            &[
                &agent.id,
                &agent.board_id,
                &agent.gateway_id,
                &agent.name,
                &agent.is_board_lead,
                &agent.openclaw_session_id,
                &agent.heartbeat_config,
                &agent.identity_profile,
                &agent.identity_template,
                &agent.soul_template,
            ],
        )
        .await?;
    let agent = Agent::from_row(&row)?;
    provisioning::provision(
        client,
        principal.organization.id,
        &agent,
        provisioning::UPDATE,
    )
    .await?;
    Ok((agent, true))
}

/// The boards an agent reaches: its own, or (a gateway-main agent) its organization's.
pub async fn boards_for_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    page: PageParams,
) -> DomainResult<Page<Board>> {
    fetch_page(
        client,
        Board::COLUMNS,
        "FROM boards b WHERE b.organization_id = $1 AND ($2::uuid IS NULL OR b.id = $2)",
        "lower(b.name), b.created_at DESC, b.id",
        &[&agent.organization_id, &agent.agent.board_id],
        page,
        Board::from_row,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_profiles_are_normalized() {
        let raw = json!({" role ": " Lead ", "skills": ["a", " ", "b"], "blank": "  ", "none": null, "n": 3});
        let Value::Object(map) = raw else {
            unreachable!()
        };
        assert_eq!(
            normalize_identity_profile(Some(map)),
            Some(json!({"role": "Lead", "skills": "a, b", "n": "3"}))
        );
        assert_eq!(normalize_identity_profile(Some(Map::new())), None);
    }
}
