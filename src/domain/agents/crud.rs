//! Agents (domain.md §A6): admin CRUD, presence and heartbeats, and what the agents stream
//! reads. Every change a gateway must make (create, update, delete) is recorded as a gateway
//! request in the same transaction (`provisioning`), besides the intent on the row.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::agent_tokens::{self, Holder};
use crate::db::typed;
use crate::domain::model::agent::AGENT_COLUMNS;
use crate::domain::model::agent::{default_heartbeat_config, gateway_main_session_key};
use crate::domain::model::{Agent, AgentPrincipal, Board, Principal, TaskChange};
use crate::domain::outbox::provisioning;
use crate::domain::support::access::{self, Access, Caller};
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};

/// The gateway's main agent (the one without a board), if its row exists: id and name.
pub async fn gateway_main(
    client: &impl GenericClient,
    gateway_id: Uuid,
) -> DomainResult<Option<(Uuid, String)>> {
    Ok(client
        .query_opt(
            "SELECT id, name FROM agents WHERE gateway_id = $1 AND board_id IS NULL \
             ORDER BY created_at, id LIMIT 1",
            &[&gateway_id],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

fn board_session_key(agent_id: Uuid, board_id: Uuid, is_lead: bool) -> String {
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
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub is_gateway_main: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<String>)]
    pub status: Option<Option<Value>>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub heartbeat_config: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub identity_profile: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<String>)]
    pub identity_template: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
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

fn blank_to_none(text: Option<String>) -> Option<String> {
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
        AGENT_COLUMNS,
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
        "SELECT agent_feed_seq FROM organizations WHERE id = $1",
        "SELECT min(feed_seq) - 1 FROM agents WHERE organization_id = $1 \
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
                "SELECT {AGENT_COLUMNS}, a.feed_seq FROM agents a WHERE {SCOPE_SQL} \
                 AND a.feed_seq > $5 ORDER BY a.feed_seq LIMIT $6"
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
    Ok(rows
        .iter()
        .map(|r| (r.get(16), json!({"agent": Agent::from_row(r)})))
        .collect())
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
    let lock = if access == Access::Write {
        " FOR UPDATE"
    } else {
        ""
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1 AND a.organization_id = $2{lock}"
            ),
            &[&agent_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let agent = Agent::from_row(&row);
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
async fn target_board(
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
async fn board_gateway(client: &impl GenericClient, board: &Board) -> DomainResult<Uuid> {
    let gateway = crate::domain::model::gateway::of_board(client, board).await?;
    if gateway.workspace_root.trim().is_empty() {
        return Err(DomainError::unprocessable(
            "Gateway workspace_root is required",
        ));
    }
    Ok(gateway.id)
}

/// Case-insensitive name uniqueness on the board and across the gateway's boards.
async fn ensure_unique_name(
    client: &impl GenericClient,
    board_id: Uuid,
    gateway_id: Uuid,
    name: &str,
) -> DomainResult<()> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM agents WHERE board_id = $1 AND lower(name) = lower($3)), \
                    EXISTS (SELECT 1 FROM agents a JOIN boards b ON b.id = a.board_id \
                            WHERE b.gateway_id = $2 AND lower(a.name) = lower($3))",
            &[&board_id, &gateway_id, &name],
        )
        .await?;
    if row.get::<_, bool>(0) {
        return Err(DomainError::conflict(
            "An agent with this name already exists on this board.",
        ));
    }
    if row.get::<_, bool>(1) {
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
                "SELECT {} FROM boards b WHERE b.id = $1 FOR UPDATE",
                crate::domain::model::board::BOARD_COLUMNS
            ),
            &[&board_id],
        )
        .await?;
    let board = Board::from_row(&board);
    let workers: i64 = client
        .query_one(
            "SELECT count(*) FROM agents WHERE board_id = $1 AND NOT is_board_lead",
            &[&board.id],
        )
        .await?
        .get(0);
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
async fn insert_board_agent(
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
                 RETURNING {AGENT_COLUMNS}"
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
    let agent = Agent::from_row(&row);
    provisioning::provision(client, board.organization_id, &agent, provisioning::CREATE).await?;
    Ok(agent)
}

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
                "SELECT {AGENT_COLUMNS} FROM agents a WHERE a.board_id = $1 AND a.is_board_lead \
                 ORDER BY a.created_at, a.id LIMIT 1 FOR UPDATE"
            ),
            &[&board.id],
        )
        .await?;
    let Some(existing) = existing.as_ref().map(Agent::from_row) else {
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
                 WHERE a.id = $1 RETURNING {AGENT_COLUMNS}"
            ),
            &[&existing.id, &name, &gateway_id, &session_key],
        )
        .await?;
    Ok((Agent::from_row(&row), false))
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
        AGENT_COLUMNS,
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
                 WHERE a.id = $1 RETURNING {AGENT_COLUMNS}"
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
    let agent = Agent::from_row(&row);
    provisioning::provision(
        client,
        principal.organization.id,
        &agent,
        provisioning::UPDATE,
    )
    .await?;
    Ok((agent, true))
}

/// A task the deletion of its agent changed, with its board.
pub type ReleasedTask = (Uuid, TaskChange);

/// Unassigns the agent's tasks: those in progress go back to the inbox. Each change is a
/// board sync event; `by` is who did it.
pub async fn release_tasks(
    client: &impl GenericClient,
    agent_id: Uuid,
    by: &Value,
) -> DomainResult<Vec<ReleasedTask>> {
    let rows = client
        .query(
            "WITH old AS (SELECT id, status FROM tasks WHERE assigned_agent_id = $1 FOR UPDATE) \
             UPDATE tasks t SET assigned_agent_id = NULL, updated_at = now(), \
               status = CASE WHEN old.status = 'in_progress' THEN 'inbox' ELSE t.status END, \
               in_progress_at = CASE WHEN old.status = 'in_progress' THEN NULL ELSE t.in_progress_at END \
             FROM old WHERE t.id = old.id \
             RETURNING t.id, t.board_id, old.status = 'in_progress'",
            &[&agent_id],
        )
        .await?;
    let mut released = Vec::with_capacity(rows.len());
    for r in rows {
        let (task_id, board_id, to_inbox): (Uuid, Uuid, bool) = (r.get(0), r.get(1), r.get(2));
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
        crate::domain::support::board_log::append(client, board_id, &change).await?;
        released.push((board_id, change));
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
                "SELECT {AGENT_COLUMNS}, a.organization_id FROM agents a WHERE a.id = $1 FOR UPDATE"
            ),
            &[&agent_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let agent = Agent::from_row(&row);
    if row.get::<_, Uuid>(16) != lead.organization_id {
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

/// Deletes the agent, releasing its tasks (`by` did it), recording `agent.delete.direct`,
/// and queueing `agents.delete` for its gateway, which removes the agent's session and
/// workspace when its link takes the request.
async fn remove(
    client: &impl GenericClient,
    organization_id: Uuid,
    agent: &Agent,
    by: &Value,
) -> DomainResult<Deleted> {
    let released = release_tasks(client, agent.id, by).await?;
    activity::record(
        client,
        NewActivity {
            organization_id,
            board_id: agent.board_id,
            event_type: "agent.delete.direct",
            message: Some(format!("Deleted agent {}.", agent.name)),
            agent_id: None,
            task_id: None,
        },
    )
    .await?;
    provisioning::remove(client, organization_id, agent).await?;
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
            &format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.board_id = $1 FOR UPDATE"),
            &[&board.id],
        )
        .await?;
    let mut gateways = Vec::new();
    for agent in rows.iter().map(Agent::from_row) {
        provisioning::remove(client, board.organization_id, &agent).await?;
        gateways.push(agent.gateway_id);
    }
    Ok(gateways)
}

/// Creates or refreshes the gateway-main agent of a gateway and records the
/// provisioning intent (`provision` for a new gateway, `update` after a change).
pub async fn ensure_gateway_main(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    gateway_name: &str,
    action: &str,
) -> DomainResult<()> {
    let status = if action == "update" {
        "updating"
    } else {
        "provisioning"
    };
    let name = format!("{gateway_name} Gateway Agent");
    let session_key = gateway_main_session_key(gateway_id);
    let mut mains = client
        .query(
            &format!("UPDATE agents AS a SET name = $2, openclaw_session_id = $3, is_board_lead = false, \
               heartbeat_config = COALESCE(heartbeat_config, $4), identity_profile = COALESCE(identity_profile, $5), \
               status = $6, provision_requested_at = now(), provision_action = $7, updated_at = now() \
             WHERE gateway_id = $1 AND board_id IS NULL RETURNING {AGENT_COLUMNS}"),
            &[
                &gateway_id,
                &name,
                &session_key,
                &default_heartbeat_config(),
                &main_identity_profile(),
                &status,
                &action,
            ],
        )
        .await?;
    if mains.is_empty() {
        mains = client
            .query(
                &format!("INSERT INTO agents AS a (id, organization_id, board_id, gateway_id, name, status, openclaw_session_id, \
                   heartbeat_config, identity_profile, provision_requested_at, provision_action) \
                 VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, now(), $9) RETURNING {AGENT_COLUMNS}"),
                &[
                    &Uuid::new_v4(),
                    &organization_id,
                    &gateway_id,
                    &name,
                    &status,
                    &session_key,
                    &default_heartbeat_config(),
                    &main_identity_profile(),
                    &action,
                ],
            )
            .await?;
    }
    let method = match action {
        "update" => provisioning::UPDATE,
        _ => provisioning::CREATE,
    };
    for main in &mains {
        provisioning::provision(client, organization_id, &Agent::from_row(main), method).await?;
    }
    Ok(())
}

fn main_identity_profile() -> Value {
    json!({
        "role": "Gateway Agent",
        "communication_style": "direct, concise, practical",
        "emoji": ":compass:",
    })
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
    fn without_token(agent: Agent) -> AgentWithToken {
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
                 WHERE a.id = $1 AND ({DUE} OR a.status <> {STATUS}) RETURNING {AGENT_COLUMNS}"
            ),
            &[&agent_id, &status, &(PRESENCE_EVERY_SECONDS as f64)],
        )
        .await?;
    Ok(row.as_ref().map(Agent::from_row))
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
        "SELECT {AGENT_COLUMNS}, a.organization_id, a.token_hash FROM agents a WHERE a.token_lookup = $1"
    );
    let by_gateway_token = format!(
        "SELECT {AGENT_COLUMNS}, a.organization_id, g.hash \
         FROM agent_gateway_tokens g JOIN agents a ON a.id = g.agent_id WHERE g.lookup = $1"
    );
    let mut row = None;
    if holder == Holder::Creator {
        row = typed::query_opt(client, &by_creator_token, &[&lookup]).await?;
    }
    // Gateway tokens minted before they had a prefix of their own read `mca_`.
    if row.is_none() {
        row = typed::query_opt(client, &by_gateway_token, &[&lookup]).await?;
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let hash: Vec<u8> = row.get(17);
    if !crate::auth::agent_tokens::verify(key, secret, &hash) {
        return Ok(None);
    }
    let mut agent = Agent::from_row(&row);
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
        organization_id: row.get(16),
    };
    Ok(Some((principal, touched)))
}

/// `AgentHeartbeat`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AgentHeartbeat {
    /// Any string (`healthy`, `degraded` …); blank or absent: online.
    #[serde(default)]
    pub status: Option<String>,
}

/// `AgentHeartbeatCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentHeartbeatCreate {
    pub name: String,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub status: Option<String>,
}

/// A heartbeat of the agent (presence by `touch`, with the posted status), recorded as
/// `agent.heartbeat` activity. Returns the agent and whether it was written.
async fn heartbeat(
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
                    &format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1"),
                    &[&agent_id],
                )
                .await?;
            (Agent::from_row(&row), false)
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
        .map(|r| r.get(0));
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

/// The boards an agent reaches: its own, or (a gateway-main agent) its organization's.
pub async fn boards_for_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    page: PageParams,
) -> DomainResult<Page<Board>> {
    fetch_page(
        client,
        crate::domain::model::board::BOARD_COLUMNS,
        "FROM boards b WHERE b.organization_id = $1 AND ($2::uuid IS NULL OR b.id = $2)",
        "lower(b.name), b.created_at DESC, b.id",
        &[&agent.organization_id, &agent.agent.board_id],
        page,
        Board::from_row,
    )
    .await
}

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
            &format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.id = $1 AND a.board_id = $2"),
            &[&agent_id, &board_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(Agent::from_row(&row))
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
