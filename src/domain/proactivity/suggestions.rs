//! Proactive suggestions (domain.md §B1, §B2): advice for the organization's admins,
//! posted by agents (and by the rule engine), pending until someone resolves it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::domain::model::AgentPrincipal;
use crate::domain::support::access::{self, PostTargets};
use crate::domain::support::validation::Invalid;
use crate::domain::DomainResult;

/// `PROACTIVITY_SUGGESTION_EXPIRY_HOURS` of the reference.
const EXPIRY_HOURS: i32 = 168;

/// The reference's column widths.
const SUGGESTION_TYPE_MAX: usize = 64;
const TITLE_MAX: usize = 512;
const PRIORITY_MAX: usize = 32;

crate::db::record! {
    /// `AgentSuggestionRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Suggestion in "s" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub board_id: Option<Uuid>,
        pub agent_id: Option<Uuid>,
        pub suggestion_type: String,
        pub title: String,
        pub description: Option<String>,
        pub confidence: f64,
        pub priority: String,
        pub status: String,
        #[schema(value_type = Option<Object>)]
        pub payload: Option<Map<String, Value>> as Option<Json<Map<String, Value>>>,
        pub source_event_id: Option<Uuid>,
        pub resolved_by_user_id: Option<Uuid>,
        pub resolved_at: Option<DateTime<Utc>>,
        pub expires_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

fn default_confidence() -> f64 {
    0.5
}

fn default_priority() -> String {
    "medium".into()
}

/// `AgentSuggestionCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentSuggestionCreate {
    pub suggestion_type: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    #[serde(default = "default_priority")]
    pub priority: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

/// A pending suggestion of the agent's organization, expiring after a week. Unnamed, the
/// board is the agent's own and the agent is the caller, as in the reference.
pub async fn create_by_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    input: AgentSuggestionCreate,
) -> DomainResult<Suggestion> {
    let mut invalid = Invalid::default();
    invalid.max_chars(
        "suggestion_type",
        &input.suggestion_type,
        SUGGESTION_TYPE_MAX,
    );
    invalid.max_chars("title", &input.title, TITLE_MAX);
    invalid.max_chars("priority", &input.priority, PRIORITY_MAX);
    invalid.finish()?;
    let targets = access::post_targets(
        client,
        agent,
        PostTargets {
            board_id: input.board_id.or(agent.agent.board_id),
            agent_id: input.agent_id.or(Some(agent.agent.id)),
            task_id: None,
        },
    )
    .await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO agent_suggestions AS s (id, organization_id, board_id, agent_id, suggestion_type, \
                   title, description, confidence, priority, payload, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(hours => $11)) \
                 RETURNING {columns}",
                columns = Suggestion::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &agent.organization_id,
                &targets.board_id,
                &targets.agent_id,
                &input.suggestion_type,
                &input.title,
                &input.description,
                &input.confidence,
                &input.priority,
                &input.payload.as_ref().map(Json),
                &EXPIRY_HOURS,
            ],
        )
        .await?;
    Ok(Suggestion::from_row(&row)?)
}
