//! `/api/v1/agents` (domain.md §A6, §F2): admin CRUD, heartbeats, the agents stream and
//! capabilities. Every handler that writes agents wakes the organization's agents
//! streams after its commit (`AppState::agents_changed`).

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::agents::capabilities::{self, AgentCapability, AgentCapabilityCreate};
use crate::domain::agents::crud::{
    self as agents, AgentCreate, AgentFilter, AgentScope, AgentUpdate, UpdateOptions,
};
use crate::domain::agents::presence::{AgentHeartbeat, AgentHeartbeatCreate};
use crate::domain::agents::tokens::AgentWithToken;
use crate::domain::model::Agent;
use crate::domain::support::access::Caller;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::gateways::publish_released;
use crate::http::json::Json;
use crate::http::sse::{self, SinceQuery};
use crate::http::OkResponse;
use crate::protocol::channels::Channel;
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
        agents::list(&*conn, &principal, filter.into_inner(), page).await?,
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
        crate::domain::agents::tokens::with_new_token(&tx, agent, key).await
    });
    gateway_rpc::poke(&state.router, [created.agent.gateway_id]);
    state.agents_changed(principal.organization.id);
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
    let (updated, rotated) = in_transaction!(state, |tx| async {
        let (agent, rotated) = agents::update(&tx, &principal, agent_id, patch, options).await?;
        let agent_token = match rotated {
            true => Some(crate::domain::agents::tokens::rotate_token(&tx, agent.id, key).await?),
            false => None,
        };
        Ok::<_, DomainError>((AgentWithToken { agent, agent_token }, rotated))
    });
    if rotated {
        gateway_rpc::poke(&state.router, [updated.agent.gateway_id]);
        state.agents_changed(principal.organization.id);
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
    let deleted = in_transaction!(state, |tx| crate::domain::agents::removal::delete(
        &tx, &principal, agent_id
    ));
    gateway_rpc::poke(&state.router, [deleted.gateway_id]);
    publish_released(&state, principal.organization.id, deleted.released);
    Ok(OkResponse::json())
}

/// Agent changes as server-sent events (`event: agent`, `data: {"agent": AgentRead}`, `id:`
/// the organization's agent feed number), pushed on commit from any instance; each agent
/// comes once per change in its state then. `Last-Event-ID` resumes exactly, `since` starts
/// with the agents changed or seen at or after it (else only new changes come). The agents
/// are those `GET /agents` lists with the same filters; deleted agents send nothing.
#[utoipa::path(
    tag = "agents",
    params(("board_id" = Option<Uuid>, Query), ("gateway_id" = Option<Uuid>, Query),
           ("since" = Option<String>, Query), ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/agents/stream")]
pub async fn stream_agents(
    state: Data<AppState>,
    Admin(principal): Admin,
    filter: web::Query<AgentFilter>,
    since: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let org = principal.organization.id;
    let (scope, cursor) = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        let scope = AgentScope::of(&*conn, &principal, filter.into_inner()).await?;
        let resume = sse::last_event_id(request.headers());
        let cursor = agents::stream_start(&*conn, org, resume, since.time()).await?;
        (scope, cursor)
    };
    Ok(sse::respond(
        state.db.clone(),
        state.feeds.clone(),
        Channel::AgentsFeed(org).to_string(),
        state.settings.ws.sse_keepalive,
        cursor,
        Box::new(move |db, after| {
            let scope = scope.clone();
            Box::pin(async move {
                let conn = db.get().await.map_err(DomainError::from)?;
                let items = agents::changed_after(&*conn, &scope, after).await?;
                Ok(sse::numbered("agent", items, after))
            })
        }),
    ))
}

/// A heartbeat by name: an agent beats for itself; an org admin names an agent of the
/// organization (on `board_id` when given) and, when there is none, creates it on
/// `board_id` as `POST /agents` does (its `agent_token` shown this once; else `null`).
#[utoipa::path(
    tag = "agents",
    request_body = AgentHeartbeatCreate,
    responses((status = 200, body = AgentWithToken), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []), ("agent_token" = []))
)]
#[post("/api/v1/agents/heartbeat")]
pub async fn heartbeat_or_create_agent(
    state: Data<AppState>,
    caller: Caller,
    Json(input): Json<AgentHeartbeatCreate>,
) -> ApiResult<web::Json<AgentWithToken>> {
    let key = &state.settings.agent_token_key.0;
    let (agent, written) = crate::http::retrying(|| async {
        Ok(in_transaction!(state, |tx| {
            crate::domain::agents::presence::heartbeat_or_create(&tx, &caller, input.clone(), key)
        }))
    })
    .await?;
    if written {
        state.agents_changed(caller.organization_id());
    }
    Ok(web::Json(agent))
}

/// A heartbeat of one agent, by the agent itself or by an org admin who may write its
/// board. `last_seen_at` is written at most every 30 s; a new `status` always is.
#[utoipa::path(
    tag = "agents",
    params(("agent_id" = Uuid, Path)),
    request_body = AgentHeartbeat,
    responses((status = 200, body = Agent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []), ("agent_token" = []))
)]
#[post("/api/v1/agents/{agent_id}/heartbeat")]
pub async fn heartbeat_agent(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(input): Json<AgentHeartbeat>,
) -> ApiResult<web::Json<Agent>> {
    let agent_id = path.into_inner();
    let (agent, written) = crate::http::retrying(|| async {
        Ok(in_transaction!(state, |tx| {
            crate::domain::agents::presence::heartbeat_agent(&tx, &caller, agent_id, input.clone())
        }))
    })
    .await?;
    if written {
        state.agents_changed(caller.organization_id());
    }
    Ok(web::Json(agent))
}

/// The agent's capabilities (a plain list).
#[utoipa::path(
    tag = "agent-teams",
    params(("agent_id" = Uuid, Path)),
    responses((status = 200, body = Vec<AgentCapability>), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/agents/{agent_id}/capabilities")]
pub async fn list_capabilities(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<AgentCapability>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        capabilities::list(&*conn, &principal, path.into_inner()).await?,
    ))
}

#[utoipa::path(
    tag = "agent-teams",
    params(("agent_id" = Uuid, Path)),
    request_body = AgentCapabilityCreate,
    responses((status = 200, body = AgentCapability), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/agents/{agent_id}/capabilities")]
pub async fn add_capability(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<AgentCapabilityCreate>,
) -> ApiResult<web::Json<AgentCapability>> {
    let agent_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| capabilities::add(
        &tx, &principal, agent_id, input
    ))))
}

#[utoipa::path(
    tag = "agent-teams",
    params(("agent_id" = Uuid, Path), ("capability" = String, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/agents/{agent_id}/capabilities/{capability}")]
pub async fn remove_capability(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, String)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (agent_id, capability) = path.into_inner();
    in_transaction!(state, |tx| capabilities::remove(
        &tx,
        &principal,
        agent_id,
        &capability
    ));
    Ok(OkResponse::json())
}

/// Literal sub-paths such as `/agents/stream` must be registered before the
/// `{id}` routes: actix takes the first pattern that matches, and the id's parse would answer 422.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_agents)
        .service(create_agent)
        .service(stream_agents)
        .service(heartbeat_or_create_agent)
        .service(get_agent)
        .service(update_agent)
        .service(delete_agent)
        .service(heartbeat_agent)
        .service(list_capabilities)
        .service(add_capability)
        .service(remove_capability);
}
