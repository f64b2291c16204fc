//! `/api/v1/agents` (domain.md §A6): admin CRUD. Heartbeats, the stream and
//! capabilities come with their own issues.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::domain::agents::{
    self, Agent, AgentCreate, AgentFilter, AgentUpdate, AgentWithToken, UpdateOptions,
};
use crate::domain::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::gateways::publish_released;
use crate::http::json::Json;
use crate::http::{in_transaction, OkResponse};
use crate::state::AppState;

/// Agents on boards the admin can read plus the organization's gateway-main agents.
#[utoipa::path(
    tag = "agents",
    params(("board_id" = Option<Uuid>, Query), ("gateway_id" = Option<Uuid>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Agent>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/agents")]
pub async fn list_agents(
    state: Data<AppState>,
    Admin(principal): Admin,
    filter: web::Query<AgentFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Agent>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        agents::list(&*conn, &principal, &filter, page).await?,
    ))
}

/// Creates a board agent and records its provisioning intent.
#[utoipa::path(
    tag = "agents",
    request_body = AgentCreate,
    responses((status = 200, body = AgentWithToken), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/agents")]
pub async fn create_agent(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<AgentCreate>,
) -> ApiResult<web::Json<AgentWithToken>> {
    let key = &state.settings.agent_token_key.0;
    let created = in_transaction!(state, |tx| async {
        let agent = agents::create(&tx, &principal, input).await?;
        agents::with_new_token(&tx, agent, key).await
    });
    gateway_rpc::poke(&state, [created.agent.gateway_id]);
    Ok(web::Json(created))
}

#[utoipa::path(
    tag = "agents",
    params(("agent_id" = Uuid, Path)),
    responses((status = 200, body = Agent), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/agents/{agent_id}")]
pub async fn get_agent(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Agent>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        agents::get(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Updates an agent and records the re-provisioning intent (status `updating`).
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = Uuid, Path), ("force" = Option<bool>, Query)),
    request_body = AgentUpdate,
    responses((status = 200, body = AgentWithToken), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/agents/{agent_id}")]
pub async fn update_agent(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    options: web::Query<UpdateOptions>,
    Json(patch): Json<AgentUpdate>,
) -> ApiResult<web::Json<AgentWithToken>> {
    let agent_id = path.into_inner();
    let options = options.into_inner();
    let key = &state.settings.agent_token_key.0;
    // An update re-provisions the agent with a new token, as the reference does.
    let updated = in_transaction!(state, |tx| async {
        let (agent, rotated) = agents::update(&tx, &principal, agent_id, patch, options).await?;
        let agent_token = match rotated {
            true => Some(agents::rotate_token(&tx, agent.id, key).await?),
            false => None,
        };
        Ok::<_, DomainError>(AgentWithToken { agent, agent_token })
    });
    if updated.agent_token.is_some() {
        gateway_rpc::poke(&state, [updated.agent.gateway_id]);
    }
    Ok(web::Json(updated))
}

/// Deletes an agent; its in-progress tasks go back to the inbox, unassigned.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/agents/{agent_id}")]
pub async fn delete_agent(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let agent_id = path.into_inner();
    let (released, gateway_id) =
        in_transaction!(state, |tx| agents::delete(&tx, &principal, agent_id));
    gateway_rpc::poke(&state, [gateway_id]);
    publish_released(&state, &principal, released);
    Ok(OkResponse::json())
}

/// Literal sub-paths such as `/agents/stream` must be registered before the
/// `{id}` routes: actix takes the first pattern that matches, and the id's parse would answer 422.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_agents)
        .service(create_agent)
        .service(get_agent)
        .service(update_agent)
        .service(delete_agent);
}
