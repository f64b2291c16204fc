//! Agent capabilities (domain.md §F1, §F2): what an agent is good at, tagged by an org
//! admin. Unlike the reference, every route checks that the agent belongs to the caller's
//! organization (404) and that the admin may see (read) or change (write) its board.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
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
