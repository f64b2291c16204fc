//! `/api/v1/boards/{board_id}/approvals*` (domain.md §A9). Routes are full paths, no
//! scopes: overlapping actix scopes do not fall through.

use actix_web::web::{self, Data};
use actix_web::{get, patch, post, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::model::Approval;
use crate::domain::support::access::{self, Access, Caller};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::tasks::approvals::{self, ApprovalCreate, ApprovalFilter, ApprovalUpdate};
use crate::domain::tasks::feeds::BoardFeed;
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::sse::{self, SinceQuery};
use crate::state::AppState;

/// Approval changes of the board as server-sent events (`event: approval`, `id:` the
/// feed number): pushed on commit; `Last-Event-ID` resumes, `since` starts at a time.
#[utoipa::path(
    tag = "approvals",
    params(("board_id" = Uuid, Path), ("since" = Option<String>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/approvals/stream")]
pub async fn stream_approvals(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let feed = BoardFeed::Approvals;
    sse::board_feed(&state, &caller, path.into_inner(), feed, &query, &request).await
}

/// The board's approvals, newest first.
#[utoipa::path(
    tag = "approvals",
    params(("board_id" = Uuid, Path), ("status" = Option<crate::domain::model::ApprovalStatus>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Approval>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/approvals")]
pub async fn list_approvals(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<ApprovalFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Approval>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = caller
        .board(&*conn, path.into_inner(), Access::Read)
        .await?;
    Ok(web::Json(
        approvals::list(&*conn, board.id, &filter, page).await?,
    ))
}

/// Asks for an approval of one or more tasks of the board; a reason is required.
#[utoipa::path(
    tag = "approvals",
    params(("board_id" = Uuid, Path)),
    request_body = ApprovalCreate,
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/approvals")]
pub async fn create_approval(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(input): Json<ApprovalCreate>,
) -> ApiResult<web::Json<Approval>> {
    let board_id = path.into_inner();
    let (approval, event) = in_transaction!(state, |tx| async {
        let board = caller.board(&tx, board_id, Access::Write).await?;
        approvals::create(&tx, &board, input).await
    });
    state.board_events.approval_changed(board_id, event);
    Ok(web::Json(approval))
}

/// Approves, rejects or re-opens an approval (users with board write access).
#[utoipa::path(
    tag = "approvals",
    params(("board_id" = Uuid, Path), ("approval_id" = Uuid, Path)),
    request_body = ApprovalUpdate,
    responses((status = 200, body = Approval), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/boards/{board_id}/approvals/{approval_id}")]
pub async fn update_approval(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
    Json(patch): Json<ApprovalUpdate>,
) -> ApiResult<web::Json<Approval>> {
    let (board_id, approval_id) = path.into_inner();
    let (approval, notified, event) = in_transaction!(state, |tx| async {
        let board = access::board_for_user(&tx, &principal, board_id, Access::Write).await?;
        approvals::update(&tx, &board, approval_id, patch).await
    });
    state.board_events.approval_changed(board_id, event);
    gateway_rpc::poke(&state.router, notified);
    Ok(web::Json(approval))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream_approvals)
        .service(list_approvals)
        .service(create_approval)
        .service(update_approval);
}
