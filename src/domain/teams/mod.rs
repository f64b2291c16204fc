//! M13 agent teams (domain.md §F1–F2) and the command center (§F4).
//!
//! Every call needs an organization admin, as in the reference. Unlike it, a team's board
//! and members must be the organization's (404 otherwise), and every command-center
//! figure counts the caller's organization only.

pub mod command_center;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access;
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

pub const TEAM_TYPES: [&str; 4] = [
    "custom",
    "task_force",
    "review_committee",
    "specialist_pool",
];
pub const ROLES: [&str; 4] = ["leader", "specialist", "member", "reviewer"];
const MAX_NAME: usize = 256;

crate::db::record! {
    /// `AgentTeamRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Team in "t" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub name: String,
        pub description: Option<String>,
        pub team_type: String,
        #[schema(value_type = Option<Object>)]
        pub config: Option<Value>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        pub member_count: i64 = "(SELECT count(*) FROM agent_team_members m WHERE m.team_id = t.id)",
    }
}

crate::db::record! {
    /// `AgentTeamMemberRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Member in "m" {
        pub id: Uuid,
        pub team_id: Uuid,
        pub agent_id: Uuid,
        pub role_in_team: String,
        #[schema(value_type = Vec<String>)]
        pub capabilities: Value,
        pub agent_name: Option<String> = "(SELECT a.name FROM agents a WHERE a.id = m.agent_id)",
        pub joined_at: DateTime<Utc>,
    }
}

/// `AgentTeamCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TeamCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub team_type: Option<String>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// `AgentTeamUpdate`: absent fields stay; `null` clears `description`, `board_id` and
/// `config`, and leaves `name` and `team_type`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TeamUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub team_type: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Option<Value>>,
}

/// `AgentTeamMemberCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberCreate {
    pub agent_id: Uuid,
    #[serde(default)]
    pub role_in_team: Option<String>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
}

fn one_of(invalid: &mut Invalid, field: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        let msg = format!("{field} must be one of: {}", allowed.join(", "));
        invalid.value_error(field, &msg, json!(value));
    }
}

/// A team as written: checked together, the board the organization's.
struct Fields {
    name: String,
    description: Option<String>,
    team_type: String,
    board_id: Option<Uuid>,
    config: Option<Value>,
}

impl Fields {
    async fn check(
        mut self,
        client: &impl GenericClient,
        organization_id: Uuid,
    ) -> DomainResult<Fields> {
        let mut invalid = Invalid::default();
        if let Some(name) = invalid.non_empty("name", &self.name) {
            invalid.max_chars("name", &name, MAX_NAME);
            self.name = name;
        }
        one_of(&mut invalid, "team_type", &self.team_type, &TEAM_TYPES);
        if self.config.as_ref().is_some_and(|c| !c.is_object()) {
            invalid.value_error("config", "config must be an object", json!(self.config));
        }
        invalid.finish()?;
        if let Some(board_id) = self.board_id {
            crate::domain::model::board::find_in_org(client, organization_id, board_id)
                .await?
                .ok_or_else(|| DomainError::NotFound(json!("Board not found.")))?;
        }
        Ok(self)
    }
}

/// The organization's teams, oldest first, with their member counts (one query).
pub async fn list(client: &impl GenericClient, principal: &Principal) -> DomainResult<Vec<Team>> {
    access::require_org_admin(&principal.member)?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM agent_teams t WHERE t.organization_id = $1 ORDER BY t.created_at, t.id",
                Team::COLUMNS
            ),
            &[&principal.organization.id],
        )
        .await?;
    Ok(Team::from_rows(&rows)?)
}

/// The team, if it is the organization's (else 404 "Team not found."), locked when asked.
pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
    lock: bool,
) -> DomainResult<Team> {
    access::require_org_admin(&principal.member)?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM agent_teams t WHERE t.id = $1 AND t.organization_id = $2{}",
                Team::COLUMNS,
                if lock { " FOR NO KEY UPDATE" } else { "" }
            ),
            &[&team_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(|| DomainError::NotFound(json!("Team not found.")))?;
    Ok(Team::from_row(&row)?)
}

async fn save(
    client: &impl GenericClient,
    id: Uuid,
    organization_id: Uuid,
    fields: &Fields,
) -> DomainResult<Team> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO agent_teams AS t (id, organization_id, name, description, team_type, board_id, config) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, \
                   team_type = EXCLUDED.team_type, board_id = EXCLUDED.board_id, config = EXCLUDED.config, \
                   updated_at = now() \
                 RETURNING {}",
                Team::COLUMNS
            ),
            &[
                &id,
                &organization_id,
                &fields.name,
                &fields.description,
                &fields.team_type,
                &fields.board_id,
                &fields.config,
            ],
        )
        .await?;
    Ok(Team::from_row(&row)?)
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: TeamCreate,
) -> DomainResult<Team> {
    access::require_org_admin(&principal.member)?;
    let org = principal.organization.id;
    let fields = Fields {
        name: input.name,
        description: input.description,
        team_type: input.team_type.unwrap_or_else(|| "custom".into()),
        board_id: input.board_id,
        config: input.config,
    }
    .check(client, org)
    .await?;
    save(client, Uuid::new_v4(), org, &fields).await
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
    patch: TeamUpdate,
) -> DomainResult<Team> {
    let current = get(client, principal, team_id, true).await?;
    let fields = Fields {
        name: patch.name.unwrap_or(current.name),
        description: patch.description.unwrap_or(current.description),
        team_type: patch.team_type.unwrap_or(current.team_type),
        board_id: patch.board_id.unwrap_or(current.board_id),
        config: patch.config.unwrap_or(current.config),
    }
    .check(client, current.organization_id)
    .await?;
    save(client, current.id, current.organization_id, &fields).await
}

/// Deletes the team; its memberships go with it (foreign key cascade).
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
) -> DomainResult<()> {
    let team = get(client, principal, team_id, true).await?;
    client
        .execute("DELETE FROM agent_teams WHERE id = $1", &[&team.id])
        .await?;
    Ok(())
}

/// The team's members, by when they joined.
pub async fn members(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
) -> DomainResult<Vec<Member>> {
    let team = get(client, principal, team_id, false).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM agent_team_members m WHERE m.team_id = $1 ORDER BY m.joined_at, m.id",
                Member::COLUMNS
            ),
            &[&team.id],
        )
        .await?;
    Ok(Member::from_rows(&rows)?)
}

/// Adds an agent of the organization (else 404 "Agent not found."); already a member →
/// 409 "Agent is already a member of this team.".
pub async fn add_member(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
    input: MemberCreate,
) -> DomainResult<Member> {
    let team = get(client, principal, team_id, true).await?;
    let role = input.role_in_team.unwrap_or_else(|| "member".into());
    let mut invalid = Invalid::default();
    one_of(&mut invalid, "role_in_team", &role, &ROLES);
    invalid.finish()?;
    let agent = client
        .query_opt(
            "SELECT 1 FROM agents WHERE id = $1 AND organization_id = $2",
            &[&input.agent_id, &team.organization_id],
        )
        .await?;
    if agent.is_none() {
        return Err(DomainError::NotFound(json!("Agent not found.")));
    }
    let capabilities = json!(input.capabilities.unwrap_or_default());
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO agent_team_members AS m (id, team_id, agent_id, role_in_team, capabilities) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id, agent_id) DO NOTHING RETURNING {}",
                Member::COLUMNS
            ),
            &[&Uuid::new_v4(), &team.id, &input.agent_id, &role, &capabilities],
        )
        .await?
        .ok_or_else(|| DomainError::conflict("Agent is already a member of this team."))?;
    Ok(Member::from_row(&row)?)
}

/// Removes the agent from the team; not a member → 404.
pub async fn remove_member(
    client: &impl GenericClient,
    principal: &Principal,
    team_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<()> {
    let team = get(client, principal, team_id, true).await?;
    let removed = client
        .execute(
            "DELETE FROM agent_team_members WHERE team_id = $1 AND agent_id = $2",
            &[&team.id, &agent_id],
        )
        .await?;
    if removed == 0 {
        return Err(DomainError::NotFound(json!("Member not found.")));
    }
    Ok(())
}
