//! `/api/v1/board-groups` (domain.md §A5): list, create, read, update, delete.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::boards::groups::{self as board_groups, BoardGroupCreate, BoardGroupUpdate};
use crate::domain::boards::snapshots::{self, GroupSnapshot, GroupSnapshotQuery};
use crate::domain::model::BoardGroup;
use crate::domain::support::access::Access;
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

#[utoipa::path(
    tag = "board-groups",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<BoardGroup>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/board-groups")]
pub async fn list_board_groups(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardGroup>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        board_groups::list(&*conn, &principal, page).await?,
    ))
}

/// Creates a group (org admin); a blank slug is derived from the name.
#[utoipa::path(
    tag = "board-groups",
    request_body = BoardGroupCreate,
    responses((status = 200, body = BoardGroup), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/board-groups")]
pub async fn create_board_group(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<BoardGroupCreate>,
) -> ApiResult<web::Json<BoardGroup>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        board_groups::create(&tx, &principal, input)
    })))
}

#[utoipa::path(
    tag = "board-groups",
    params(("group_id" = Uuid, Path)),
    responses((status = 200, body = BoardGroup), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/board-groups/{group_id}")]
pub async fn get_board_group(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<BoardGroup>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        board_groups::group_for_user(&*conn, &principal, path.into_inner(), Access::Read, false)
            .await?,
    ))
}

#[utoipa::path(
    tag = "board-groups",
    params(("group_id" = Uuid, Path)),
    request_body = BoardGroupUpdate,
    responses((status = 200, body = BoardGroup), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/board-groups/{group_id}")]
pub async fn update_board_group(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<BoardGroupUpdate>,
) -> ApiResult<web::Json<BoardGroup>> {
    let group_id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| {
        board_groups::update(&tx, &principal, group_id, patch)
    })))
}

/// Deletes a group; its boards stay, detached.
#[utoipa::path(
    tag = "board-groups",
    params(("group_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/board-groups/{group_id}")]
pub async fn delete_board_group(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let group_id = path.into_inner();
    in_transaction!(state, |tx| board_groups::delete(&tx, &principal, group_id));
    Ok(OkResponse::json())
}

/// `BoardGroupHeartbeatApply`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct HeartbeatApply {
    pub every: String,
    #[serde(default)]
    pub include_board_leads: bool,
}

/// Sets the heartbeat cadence of the group's agents.
#[utoipa::path(
    tag = "board-groups",
    params(("group_id" = Uuid, Path)),
    request_body = HeartbeatApply,
    responses((status = 200, body = board_groups::HeartbeatApplied), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/board-groups/{group_id}/heartbeat")]
pub async fn apply_heartbeat(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(body): Json<HeartbeatApply>,
) -> ApiResult<web::Json<board_groups::HeartbeatApplied>> {
    let group_id = path.into_inner();
    let every = body.every.trim().to_string();
    let (applied, gateways) = in_transaction!(state, |tx| {
        board_groups::apply_heartbeat(&tx, &principal, group_id, &every, body.include_board_leads)
    });
    gateway_rpc::poke(&state.router, gateways);
    if !applied.updated_agent_ids.is_empty() {
        state.agents_changed(principal.organization.id);
    }
    Ok(web::Json(applied))
}

/// The group's boards the caller can read, each with its task counts and top tasks.
#[utoipa::path(
    tag = "board-groups",
    params(("group_id" = Uuid, Path), ("include_done" = Option<bool>, Query),
           ("per_board_task_limit" = Option<i64>, Query)),
    responses((status = 200, body = GroupSnapshot), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/board-groups/{group_id}/snapshot")]
pub async fn group_snapshot(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: web::Query<GroupSnapshotQuery>,
) -> ApiResult<web::Json<GroupSnapshot>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        snapshots::of_group(&*conn, &principal, path.into_inner(), &query).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(apply_heartbeat)
        .service(list_board_groups)
        .service(create_board_group)
        .service(get_board_group)
        .service(update_board_group)
        .service(delete_board_group)
        .service(group_snapshot);
}
