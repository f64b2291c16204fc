//! What agents post to their organization (domain.md §B2, §E2): system events,
//! suggestions for the admins, and knowledge entries. Each is about the agent's own
//! organization, and a board agent's only about its board (`access::post_targets`).

use actix_web::web::{self, Data};
use actix_web::{post, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::actors::{suggestions, system_events};
use crate::auth::agent::AgentCaller;
use crate::db::in_transaction;
use crate::domain::knowledge::entries::{self as knowledge, AgentKnowledgeCreate, KnowledgeEntry};
use crate::domain::proactivity::events::{self as agent_events, AgentEvent, AgentEventCreate};
use crate::domain::proactivity::suggestions::{
    self as suggestion_rules, AgentSuggestionCreate, Suggestion,
};
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::state::AppState;

/// Records a system event, then hands it to the rule engine's bus and broadcasts it on the
/// organization's (and its board's) event channel, as the reference did.
#[utoipa::path(tag = "agent", request_body = AgentEventCreate,
    responses((status = 201, body = AgentEvent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/events")]
pub async fn agent_publish_event(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    Json(input): Json<AgentEventCreate>,
) -> ApiResult<HttpResponse> {
    let event = in_transaction!(state, |tx| agent_events::create(&tx, &me, input));
    system_events::publish(&state.bridge, &event);
    state.events.publish(vec![event.id]);
    state.agent_event_recorded(event.organization_id);
    Ok(HttpResponse::Created().json(event))
}

/// A pending suggestion for the organization's admins, live on their suggestion streams.
#[utoipa::path(tag = "agent", request_body = AgentSuggestionCreate,
    responses((status = 200, body = Suggestion), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/suggestions")]
pub async fn agent_create_suggestion(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    Json(input): Json<AgentSuggestionCreate>,
) -> ApiResult<web::Json<Suggestion>> {
    let expiry = state.settings.proactivity.suggestion_expiry_hours;
    let suggestion = in_transaction!(state, |tx| suggestion_rules::create_by_agent(
        &tx, &me, input, expiry
    ));
    match serde_json::to_value(&suggestion) {
        Ok(read) => suggestions::publish(&state.suggestions, suggestion.organization_id, read),
        Err(e) => tracing::error!(error = %e, "suggestion not serializable for its stream"),
    }
    Ok(web::Json(suggestion))
}

/// Saves a knowledge entry signed by the agent (`source_type` `agent_generated`).
#[utoipa::path(tag = "agent", request_body = AgentKnowledgeCreate,
    responses((status = 201, body = KnowledgeEntry), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/knowledge")]
pub async fn agent_create_knowledge(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    Json(input): Json<AgentKnowledgeCreate>,
) -> ApiResult<HttpResponse> {
    let entry = in_transaction!(state, |tx| knowledge::create_by_agent(
        &tx,
        &me,
        input,
        &state.settings.knowledge.search_language
    ));
    Ok(HttpResponse::Created().json(entry))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(agent_publish_event)
        .service(agent_create_suggestion)
        .service(agent_create_knowledge);
}
