//! Proactive suggestions (domain.md §B1, §B2): advice for the organization's admins,
//! posted by agents (and by the rule engine), pending until someone resolves it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::{AgentPrincipal, Principal};
use crate::domain::support::access::{self, PostTargets};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

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
        /// `expired` as soon as `expires_at` passes, before the sweep writes it.
        pub status: String = "CASE WHEN s.status = 'pending' AND s.expires_at <= now() THEN 'expired' ELSE s.status END",
        #[schema(value_type = Option<Object>)]
        pub payload: Option<Map<String, Value>> as Option<Json<Map<String, Value>>>,
        pub source_event_id: Option<Uuid>,
        pub resolved_by_user_id: Option<Uuid>,
        pub resolved_at: Option<DateTime<Utc>>,
        pub expires_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        /// Ours: what accepting it did (`executed`), or why that failed (`accepted`).
        #[schema(value_type = Option<Object>)]
        pub action_result: Option<Value> as Option<Json<Value>>,
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

/// A pending suggestion of the agent's organization, expiring after
/// `PROACTIVITY_SUGGESTION_EXPIRY_HOURS`. Unnamed, the
/// board is the agent's own and the agent is the caller, as in the reference.
pub async fn create_by_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    input: AgentSuggestionCreate,
    expiry_hours: i32,
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
    insert(
        client,
        NewSuggestion {
            organization_id: agent.organization_id,
            board_id: targets.board_id,
            agent_id: targets.agent_id,
            suggestion_type: input.suggestion_type,
            title: input.title,
            description: input.description,
            confidence: input.confidence,
            priority: input.priority,
            payload: input.payload,
            source_event_id: None,
        },
        expiry_hours,
    )
    .await
}

/// A suggestion to write, whoever makes it.
pub struct NewSuggestion {
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub suggestion_type: String,
    pub title: String,
    pub description: Option<String>,
    pub confidence: f64,
    pub priority: String,
    pub payload: Option<Map<String, Value>>,
    pub source_event_id: Option<Uuid>,
}

/// Writes a pending suggestion expiring `expiry_hours` from now.
pub async fn insert(
    client: &impl GenericClient,
    new: NewSuggestion,
    expiry_hours: i32,
) -> DomainResult<Suggestion> {
    let row = client
        .query_one(
            &format!(
                "INSERT INTO agent_suggestions AS s (id, organization_id, board_id, agent_id, suggestion_type, \
                   title, description, confidence, priority, payload, source_event_id, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(hours => $12)) \
                 RETURNING {columns}",
                columns = Suggestion::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &new.organization_id,
                &new.board_id,
                &new.agent_id,
                &new.suggestion_type,
                &new.title,
                &new.description,
                &new.confidence,
                &new.priority,
                &new.payload.as_ref().map(Json),
                &new.source_event_id,
                &expiry_hours,
            ],
        )
        .await?;
    Ok(Suggestion::from_row(&row)?)
}

/// The filters of `GET /suggestions` (exact matches, as in the reference).
#[derive(Debug, Default)]
pub struct SuggestionFilter {
    pub status: Option<String>,
    pub board_id: Option<Uuid>,
    pub priority: Option<String>,
}

/// The organization's suggestions, newest first. `status=pending` no longer lists those
/// whose time ran out (they are `expired`).
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    filter: SuggestionFilter,
    page: PageParams,
) -> DomainResult<Page<Suggestion>> {
    // The record's `status` column (the macro takes only a literal there).
    const STATUS: &str =
        "CASE WHEN s.status = 'pending' AND s.expires_at <= now() THEN 'expired' ELSE s.status END";
    fetch_page(
        client,
        Suggestion::COLUMNS,
        &format!(
            "FROM agent_suggestions s WHERE s.organization_id = $1 \
               AND ($2::text IS NULL OR {STATUS} = $2) AND ($3::uuid IS NULL OR s.board_id = $3) \
               AND ($4::text IS NULL OR s.priority = $4)"
        ),
        "s.created_at DESC, s.id",
        &[
            &principal.organization.id,
            &filter.status,
            &filter.board_id,
            &filter.priority,
        ],
        page,
        Suggestion::from_row,
    )
    .await
}

/// A suggestion of the organization (404 for another organization's).
pub async fn get_one(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
) -> DomainResult<Suggestion> {
    read(client, principal.organization.id, id, "").await
}

async fn read(
    client: &impl GenericClient,
    organization_id: Uuid,
    id: Uuid,
    lock: &str,
) -> DomainResult<Suggestion> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM agent_suggestions s WHERE s.id = $1 AND s.organization_id = $2 {lock}",
                columns = Suggestion::COLUMNS
            ),
            &[&id, &organization_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(Suggestion::from_row(&row)?)
}

/// Locks a pending suggestion of the organization for its resolution by an admin: 409
/// "Suggestion is already {status}." for any other (one past its expiry reads `expired`;
/// the engine's housekeeping writes it).
pub async fn lock_pending(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
) -> DomainResult<Suggestion> {
    access::require_org_admin(&principal.member)?;
    let suggestion = read(client, principal.organization.id, id, "FOR NO KEY UPDATE").await?;
    if suggestion.status != "pending" {
        return Err(DomainError::conflict(format!(
            "Suggestion is already {}.",
            suggestion.status
        )));
    }
    Ok(suggestion)
}

/// Resolves a locked pending suggestion: `accepted` (with what its action did, or failed to
/// do), `executed`, or `dismissed`.
pub async fn resolve(
    client: &impl GenericClient,
    principal: &Principal,
    id: Uuid,
    status: &str,
    action_result: Option<&Value>,
) -> DomainResult<Suggestion> {
    let row = client
        .query_one(
            &format!(
                "UPDATE agent_suggestions s SET status = $2, resolved_by_user_id = $3, resolved_at = now(), \
                   action_result = $4, updated_at = now() WHERE s.id = $1 RETURNING {columns}",
                columns = Suggestion::COLUMNS
            ),
            &[&id, &status, &principal.user.id, &action_result.map(Json)],
        )
        .await?;
    Ok(Suggestion::from_row(&row)?)
}

/// Writes `expired` on pending suggestions whose time ran out, at most `batch` of them;
/// the number written.
pub async fn expire_due(client: &impl GenericClient, batch: i64) -> DomainResult<u64> {
    Ok(client
        .execute(
            "UPDATE agent_suggestions SET status = 'expired', updated_at = now() WHERE id IN ( \
               SELECT id FROM agent_suggestions WHERE status = 'pending' AND expires_at <= now() \
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
            &[&batch],
        )
        .await?)
}
