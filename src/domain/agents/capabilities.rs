//! Agent capabilities (domain.md §F1, §F2): what an agent is good at, tagged by an org
//! admin. Unlike the reference, every route checks that the agent belongs to the caller's
//! organization (404) and that the admin may see (read) or change (write) its board.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::agents::crud::agent_for_user;
use crate::domain::model::Principal;
use crate::domain::support::access::Access;
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

/// Lengths of the reference's columns.
const CAPABILITY_MAX: usize = 128;
const PROFICIENCY_MAX: usize = 32;

crate::db::record! {
    /// `AgentCapabilityRead`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct AgentCapability in "c" {
        pub id: Uuid,
        pub agent_id: Uuid,
        pub organization_id: Uuid,
        pub capability: String,
        pub proficiency: String,
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<Value>,
        pub created_at: DateTime<Utc>,
    }
}

fn default_proficiency() -> String {
    "standard".to_string()
}

/// `AgentCapabilityCreate` (plus `metadata`, which the reference reads but cannot take).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentCapabilityCreate {
    pub capability: String,
    /// `novice`, `standard` or `expert` by convention; any text is kept.
    #[serde(default = "default_proficiency")]
    pub proficiency: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// The trimmed text of `field`, non-blank and at most `max` characters.
fn text(invalid: &mut Invalid, field: &str, input: &str, max: usize) -> Option<String> {
    let trimmed = invalid.non_empty(field, input)?;
    let length = trimmed.chars().count();
    invalid.check(
        field,
        input,
        (length <= max)
            .then_some(trimmed)
            .ok_or_else(|| format!("{field} must be at most {max} characters")),
    )
}

/// The agent's capabilities, oldest first.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
) -> DomainResult<Vec<AgentCapability>> {
    agent_for_user(client, principal, agent_id, Access::Read).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM agent_capabilities c WHERE c.agent_id = $1 \
                 ORDER BY c.created_at, c.capability",
                columns = AgentCapability::COLUMNS
            ),
            &[&agent_id],
        )
        .await?;
    Ok(AgentCapability::from_rows(&rows)?)
}

/// Tags the agent with a capability it does not have yet (409 otherwise).
pub async fn add(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
    input: AgentCapabilityCreate,
) -> DomainResult<AgentCapability> {
    let mut invalid = Invalid::default();
    let capability = text(
        &mut invalid,
        "capability",
        &input.capability,
        CAPABILITY_MAX,
    );
    let proficiency = text(
        &mut invalid,
        "proficiency",
        &input.proficiency,
        PROFICIENCY_MAX,
    );
    let (Some(capability), Some(proficiency)) = (capability, proficiency) else {
        return Err(invalid.into_error());
    };
    agent_for_user(client, principal, agent_id, Access::Write).await?;
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO agent_capabilities AS c (id, organization_id, agent_id, capability, proficiency, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id, capability) DO NOTHING \
                 RETURNING {columns}",
                columns = AgentCapability::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &principal.organization.id,
                &agent_id,
                &capability,
                &proficiency,
                &input.metadata.map(Value::Object),
            ],
        )
        .await?
        .ok_or_else(|| DomainError::conflict("Agent already has this capability."))?;
    Ok(AgentCapability::from_row(&row)?)
}

/// Removes one of the agent's capabilities (404 "Capability not found." when it has not).
pub async fn remove(
    client: &impl GenericClient,
    principal: &Principal,
    agent_id: Uuid,
    capability: &str,
) -> DomainResult<()> {
    agent_for_user(client, principal, agent_id, Access::Write).await?;
    let removed = client
        .execute(
            "DELETE FROM agent_capabilities WHERE agent_id = $1 AND capability = $2",
            &[&agent_id, &capability],
        )
        .await?;
    if removed == 0 {
        return Err(DomainError::NotFound(json!("Capability not found.")));
    }
    Ok(())
}

/// How a proficiency ranks (unknown words rank with `standard`).
fn proficiency_rank(proficiency: &str) -> i64 {
    match proficiency {
        "expert" => 3,
        "novice" => 1,
        _ => 2,
    }
}

/// `GET /agent-capabilities/search`: the organization's agents having any of
/// `capabilities` (exact names), best first: more matched capabilities; then higher
/// proficiency over the matched ones (expert 3, standard 2, novice 1, summed); then the
/// available before the rest (seen in the last ten minutes, then fewer tasks in progress);
/// then by name. Agents not seen for ten minutes (or never) stay in the list, after every
/// available agent with as many matches and as much proficiency. One query.
pub async fn search(
    client: &impl GenericClient,
    principal: &Principal,
    capabilities: &[String],
) -> DomainResult<Value> {
    crate::domain::support::access::require_org_admin(&principal.member)?;
    let rows = client
        .query(
            "SELECT a.id, a.name, \
                    array_agg(c.capability ORDER BY c.capability) AS matched, \
                    array_agg(c.proficiency ORDER BY c.capability) AS proficiencies, \
                    COALESCE(a.last_seen_at > now() - make_interval(mins => $3), false) AS available, \
                    (SELECT count(*) FROM tasks t WHERE t.assigned_agent_id = a.id AND t.status = 'in_progress') AS busy \
             FROM agent_capabilities c JOIN agents a ON a.id = c.agent_id \
             WHERE c.organization_id = $1 AND a.organization_id = $1 AND c.capability = ANY($2) \
             GROUP BY a.id, a.name, a.last_seen_at",
            &[
                &principal.organization.id,
                &capabilities,
                &(crate::domain::model::agent::OFFLINE_AFTER_MINUTES as i32),
            ],
        )
        .await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in &rows {
        let matched: Vec<String> = crate::db::record::get(row, "matched")?;
        let proficiencies: Vec<String> = crate::db::record::get(row, "proficiencies")?;
        let skill: i64 = proficiencies.iter().map(|p| proficiency_rank(p)).sum();
        let available: bool = crate::db::record::get(row, "available")?;
        let busy: i64 = crate::db::record::get(row, "busy")?;
        let id: Uuid = crate::db::record::get(row, "id")?;
        let name: String = crate::db::record::get(row, "name")?;
        let scores: Map<String, Value> = matched
            .iter()
            .cloned()
            .zip(proficiencies.into_iter().map(Value::String))
            .collect();
        found.push((
            (
                std::cmp::Reverse(matched.len()),
                std::cmp::Reverse(skill),
                !available,
                busy,
                name.clone(),
            ),
            json!({
                "agent_id": id, "agent_name": name, "matched_capabilities": matched,
                "proficiency_scores": scores, "available": available, "tasks_in_progress": busy,
            }),
        ));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(json!({ "agents": found.into_iter().map(|(_, agent)| agent).collect::<Vec<_>>() }))
}
