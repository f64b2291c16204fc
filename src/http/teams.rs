//! `/api/v1/agent-teams`, `/api/v1/agent-capabilities/search` and `/api/v1/command-center`
//! (domain.md §F): every route needs an organization admin.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use serde_json::Value;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::agents::capabilities;
use crate::domain::support::access;
use crate::domain::teams::command_center::{self, Cursor, Overview};
use crate::domain::teams::{self, Member, MemberCreate, Team, TeamCreate, TeamUpdate};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::query::Query;
use crate::http::sse;
use crate::http::OkResponse;
use crate::protocol::channels::Channel;
use crate::state::AppState;

/// The organization's teams, oldest first, with `member_count`.
#[utoipa::path(tag = "agent-teams", responses((status = 200, body = Vec<Team>), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/agent-teams")]
pub async fn list_teams(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Vec<Team>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(teams::list(&*conn, &principal).await?))
}

/// Creates a team; `board_id` must be a board of the organization.
#[utoipa::path(tag = "agent-teams", request_body = TeamCreate,
    responses((status = 200, body = Team), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/agent-teams")]
pub async fn create_team(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<TeamCreate>,
) -> ApiResult<web::Json<Team>> {
    Ok(web::Json(in_transaction!(state, |tx| teams::create(
        &tx, &principal, input
    ))))
}

#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path)),
    responses((status = 200, body = Team), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/agent-teams/{team_id}")]
pub async fn get_team(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Team>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        teams::get(&*conn, &principal, path.into_inner(), false).await?,
    ))
}

#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path)), request_body = TeamUpdate,
    responses((status = 200, body = Team), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[patch("/api/v1/agent-teams/{team_id}")]
pub async fn update_team(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<TeamUpdate>,
) -> ApiResult<web::Json<Team>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| teams::update(
        &tx, &principal, id, patch
    ))))
}

/// Deletes the team and its memberships.
#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[delete("/api/v1/agent-teams/{team_id}")]
pub async fn delete_team(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| teams::delete(&tx, &principal, id));
    Ok(OkResponse::json())
}

#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path)),
    responses((status = 200, body = Vec<Member>), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/agent-teams/{team_id}/members")]
pub async fn list_members(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<Member>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        teams::members(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Adds an agent of the organization; a second time → 409.
#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path)), request_body = MemberCreate,
    responses((status = 200, body = Member), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/agent-teams/{team_id}/members")]
pub async fn add_member(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<MemberCreate>,
) -> ApiResult<web::Json<Member>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| teams::add_member(
        &tx, &principal, id, input
    ))))
}

#[utoipa::path(tag = "agent-teams", params(("team_id" = Uuid, Path), ("agent_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[delete("/api/v1/agent-teams/{team_id}/members/{agent_id}")]
pub async fn remove_member(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (team, agent) = path.into_inner();
    in_transaction!(state, |tx| teams::remove_member(
        &tx, &principal, team, agent
    ));
    Ok(OkResponse::json())
}

/// Agents with any of `capabilities` (repeated, or `capabilities[]`), best first: see
/// `domain::agents::capabilities::search` for the order.
#[utoipa::path(tag = "agent-teams", params(("capabilities" = Vec<String>, Query)),
    responses((status = 200, body = Object), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/agent-capabilities/search")]
pub async fn search_capabilities(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    let wanted: Vec<String> = Query::of(&req)
        .all(&["capabilities", "capabilities[]"])
        .into_iter()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        capabilities::search(&*conn, &principal, &wanted).await?,
    ))
}

#[utoipa::path(tag = "command-center", responses((status = 200, body = Overview), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/overview")]
pub async fn overview(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Overview>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        command_center::overview(&*conn, &principal).await?,
    ))
}

#[utoipa::path(tag = "command-center", responses((status = 200, body = Object), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/agent-status")]
pub async fn agent_status(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        command_center::agent_status(&*conn, &principal).await?,
    ))
}

#[utoipa::path(tag = "command-center", responses((status = 200, body = Object), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/communication-graph")]
pub async fn communication_graph(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        command_center::communication_graph(&*conn, &principal).await?,
    ))
}

#[utoipa::path(tag = "command-center", responses((status = 200, body = Object), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/resource-allocation")]
pub async fn resource_allocation(
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        command_center::resource_allocation(&*conn, &principal).await?,
    ))
}

/// The organization's agent events: the newest (`limit`, 1–200, default 50), those older
/// than `since_id` (the reference's backward page), or those after `after` (a `seq` or the
/// previous answer's `cursor`; oldest first, never skipping or repeating one).
#[utoipa::path(tag = "command-center",
    params(("limit" = Option<i64>, Query), ("since_id" = Option<Uuid>, Query), ("after" = Option<i64>, Query)),
    responses((status = 200, body = Object), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/live-activity")]
pub async fn live_activity(
    req: HttpRequest,
    state: Data<AppState>,
    Admin(principal): Admin,
) -> ApiResult<web::Json<Value>> {
    access::require_org_admin(&principal.member)?;
    let mut q = Query::of(&req);
    let limit = q.int(
        "limit",
        1..=200,
        "Input should be a whole number from 1 to 200",
    );
    let after = q.int("after", 0.., "Input should be a whole number, 0 or more");
    let before = q.uuid("since_id");
    q.finish()?;
    let cursor = match (after, before) {
        (Some(seq), _) => Cursor::After(seq),
        (None, Some(id)) => Cursor::Before(id),
        (None, None) => Cursor::Newest,
    };
    let limit = limit.unwrap_or(50);
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        command_center::live_activity(&*conn, principal.organization.id, cursor, limit).await?,
    ))
}

/// The command center, live (SSE): `activity` events (each agent event once, `id` = its
/// `seq`, resumed after `Last-Event-ID`), and `overview` events with the figures at the
/// start and whenever they changed (checked on each agent event and every keepalive).
#[utoipa::path(tag = "command-center", responses((status = 200, content_type = "text/event-stream"), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/command-center/stream")]
pub async fn stream(
    state: Data<AppState>,
    Admin(principal): Admin,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    access::require_org_admin(&principal.member)?;
    let org = principal.organization.id;
    let resume = sse::last_event_id(request.headers()).and_then(|id| id.parse::<i64>().ok());
    let start = match resume {
        Some(seq) => seq,
        None => {
            let conn = state.db.get().await.map_err(DomainError::from)?;
            command_center::latest_seq(&*conn, org).await?
        }
    };
    let cursor: (i64, Option<Overview>) = (start, None);
    Ok(sse::respond(
        state.db.clone(),
        state.feeds.clone(),
        Channel::CommandCenterFeed(org).to_string(),
        state.settings.ws.sse_keepalive,
        cursor,
        Box::new(move |db, (after, shown)| {
            Box::pin(async move {
                let conn = db.get().await.map_err(DomainError::from)?;
                let read =
                    command_center::live_activity(&*conn, org, Cursor::After(after), 200).await?;
                let mut events: Vec<sse::Event> = read["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| sse::Event {
                        event: "activity",
                        id: Some(e["seq"].to_string()),
                        data: e.to_string(),
                    })
                    .collect();
                let next = read["cursor"].as_i64().unwrap_or(after);
                let figures = command_center::figures(&*conn, org).await?;
                let changed = shown
                    .as_ref()
                    .is_none_or(|old| !same_figures(old, &figures));
                if changed {
                    events.push(sse::Event {
                        event: "overview",
                        id: None,
                        data: serde_json::to_string(&figures).unwrap_or_default(),
                    });
                }
                Ok((events, (next, Some(figures))))
            })
        }),
    ))
}

/// The same counts (the time they were computed aside).
fn same_figures(a: &Overview, b: &Overview) -> bool {
    (
        a.active_agents,
        a.tasks_today,
        a.throughput_7d,
        a.gateways_online,
    ) == (
        b.active_agents,
        b.tasks_today,
        b.throughput_7d,
        b.gateways_online,
    )
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_teams)
        .service(create_team)
        .service(get_team)
        .service(update_team)
        .service(delete_team)
        .service(list_members)
        .service(add_member)
        .service(remove_member)
        .service(search_capabilities)
        .service(overview)
        .service(agent_status)
        .service(communication_graph)
        .service(resource_allocation)
        .service(live_activity)
        .service(stream);
}
