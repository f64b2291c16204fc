//! `/api/v1/boards` (domain.md §A4): list, create, read, update, delete.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post};
use serde_json::value::RawValue;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::boards::crud::{self as boards, BoardCreate, BoardFilter, BoardUpdate};
use crate::domain::boards::snapshots::{self, BoardSnapshot, GroupSnapshot, GroupSnapshotQuery};
use crate::domain::model::Board;
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// Boards the caller can read, by name.
#[utoipa::path(
    tag = "boards",
    params(("gateway_id" = Option<Uuid>, Query), ("board_group_id" = Option<Uuid>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Board>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards")]
pub async fn list_boards(
    state: Data<AppState>,
    Admin(principal): Admin,
    filter: web::Query<BoardFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Box<RawValue>>>> {
    let memo = &state.memos.boards;
    Ok(web::Json(
        boards::list(&state.db, memo, &principal, &filter, page).await?,
    ))
}

/// Creates a board (org admin).
#[utoipa::path(
    tag = "boards",
    request_body = BoardCreate,
    responses((status = 200, body = Board), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards")]
pub async fn create_board(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<BoardCreate>,
) -> ApiResult<web::Json<Board>> {
    Ok(web::Json(in_transaction!(state, |tx| boards::create(
        &tx, &principal, input
    ))))
}

#[utoipa::path(
    tag = "boards",
    params(("board_id" = Uuid, Path)),
    responses((status = 200, body = Board), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}")]
pub async fn get_board(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Board>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        access::board_for_user(&*conn, &principal, path.into_inner(), Access::Read).await?,
    ))
}

/// Updates a board (write access); the gateway is re-validated on every change.
#[utoipa::path(
    tag = "boards",
    params(("board_id" = Uuid, Path)),
    request_body = BoardUpdate,
    responses((status = 200, body = Board), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/boards/{board_id}")]
pub async fn update_board(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<BoardUpdate>,
) -> ApiResult<web::Json<Board>> {
    let board_id = path.into_inner();
    let (board, gateways) =
        in_transaction!(state, |tx| boards::update(&tx, &principal, board_id, patch));
    gateway_rpc::poke(&state.router, gateways);
    Ok(web::Json(board))
}

/// Deletes a board and everything on it (write access).
#[utoipa::path(
    tag = "boards",
    params(("board_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/boards/{board_id}")]
pub async fn delete_board(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let board_id = path.into_inner();
    let gateways = in_transaction!(state, |tx| boards::delete(&tx, &principal, board_id));
    gateway_rpc::poke(&state.router, gateways);
    Ok(OkResponse::json())
}

/// The board with its task cards, agents and newest approvals, in one read.
#[utoipa::path(
    tag = "boards",
    params(("board_id" = Uuid, Path)),
    responses((status = 200, body = BoardSnapshot), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/snapshot")]
pub async fn board_snapshot(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<BoardSnapshot>> {
    Ok(web::Json(in_transaction!(
        state,
        snapshot
            | tx
            | async {
                let board =
                    access::board_for_user(&tx, &principal, path.into_inner(), Access::Read)
                        .await?;
                snapshots::board_snapshot(&tx, board).await
            }
    )))
}

/// The other boards of the board's group (`include_self` for this one too).
#[utoipa::path(
    tag = "boards",
    params(("board_id" = Uuid, Path), ("include_self" = Option<bool>, Query), ("include_done" = Option<bool>, Query),
           ("per_board_task_limit" = Option<i64>, Query)),
    responses((status = 200, body = GroupSnapshot), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/group-snapshot")]
pub async fn board_group_snapshot(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: web::Query<GroupSnapshotQuery>,
) -> ApiResult<web::Json<GroupSnapshot>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = access::board_for_user(&*conn, &principal, path.into_inner(), Access::Read).await?;
    Ok(web::Json(
        snapshots::of_boards_group(&*conn, &principal, &board, &query).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_boards)
        .service(create_board)
        .service(get_board)
        .service(update_board)
        .service(delete_board)
        .service(board_snapshot)
        .service(board_group_snapshot);
}
