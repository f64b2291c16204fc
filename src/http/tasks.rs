//! `/api/v1/boards/{board_id}/tasks*` (domain.md §A7): tasks and their comments. Routes
//! are full paths, no scopes: overlapping actix scopes do not fall through.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::boards::crud as boards;
use crate::domain::model::Actor;
use crate::domain::support::access::{self, Access, Caller};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::tasks::comments::{TaskComment, TaskCommentCreate};
use crate::domain::tasks::crud::{self as tasks, Task, TaskCreate, TaskFilter, TaskUpdate};
use crate::domain::tasks::feeds::BoardFeed;
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::sse::{self, SinceQuery};
use crate::http::OkResponse;
use crate::state::AppState;

/// Task activity of the board as server-sent events (`event: task`, `id:` the feed
/// number): pushed on commit; `Last-Event-ID` resumes, `since` starts at a time.
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("since" = Option<String>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/tasks/stream")]
pub async fn stream_tasks(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    query: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let feed = BoardFeed::Tasks;
    sse::board_feed(&state, &caller, path.into_inner(), feed, &query, &request).await
}

/// The board's tasks, newest first.
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("status" = Option<String>, Query, description = "comma list of statuses"),
           ("assigned_agent_id" = Option<Uuid>, Query), ("unassigned" = Option<bool>, Query),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Task>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/tasks")]
pub async fn list_tasks(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<TaskFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Task>>> {
    let board_id = path.into_inner();
    // An admin's board comes from the organization's kept list (`domain::memos`), before
    // this request takes its connection (a miss takes one of its own).
    let kept = match &caller {
        Caller::User(principal) => {
            let memo = &state.memos.boards;
            Some(boards::readable_board(&state.db, memo, principal, board_id).await?)
        }
        Caller::Agent(_) => None,
    };
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = match kept {
        Some(board) => board,
        None => caller.board(&*conn, board_id, Access::Read).await?,
    };
    Ok(web::Json(tasks::list(&*conn, &board, &filter, page).await?))
}

/// Creates a task (board write access).
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path)),
    request_body = TaskCreate,
    responses((status = 200, body = Task), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/tasks")]
pub async fn create_task(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<TaskCreate>,
) -> ApiResult<web::Json<Task>> {
    let board_id = path.into_inner();
    let (task, changes) = in_transaction!(state, |tx| async {
        let board = access::board_for_user(&tx, &principal, board_id, Access::Write).await?;
        tasks::create(&tx, &board, &Actor::User(principal.user.id), input).await
    });
    state
        .board_events
        .tasks_changed(principal.organization.id, board_id, changes);
    Ok(web::Json(task))
}

/// Updates a task: status moves, assignment, dependencies, tags, custom fields, an inline
/// comment; the board's gates apply.
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)),
    request_body = TaskUpdate,
    responses((status = 200, body = Task), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/boards/{board_id}/tasks/{task_id}")]
pub async fn update_task(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    Json(patch): Json<TaskUpdate>,
) -> ApiResult<web::Json<Task>> {
    let (board_id, task_id) = path.into_inner();
    let actor = caller.actor();
    let (task, changes) = in_transaction!(state, |tx| async {
        let board = caller.board(&tx, board_id, Access::Write).await?;
        tasks::update(&tx, &board, &actor, task_id, patch).await
    });
    state
        .board_events
        .tasks_changed(caller.organization_id(), board_id, changes);
    Ok(web::Json(task))
}

/// Deletes a task with its dependencies, tags, values, comments and approval links.
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/boards/{board_id}/tasks/{task_id}")]
pub async fn delete_task(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, task_id) = path.into_inner();
    let changes = in_transaction!(state, |tx| async {
        let board = access::board_for_user(&tx, &principal, board_id, Access::Write).await?;
        tasks::delete(&tx, &board, task_id).await
    });
    state
        .board_events
        .tasks_changed(principal.organization.id, board_id, changes);
    Ok(OkResponse::json())
}

/// The task's comments, oldest first.
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<TaskComment>), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/tasks/{task_id}/comments")]
pub async fn list_comments(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    page: PageParams,
) -> ApiResult<web::Json<Page<TaskComment>>> {
    let (board_id, task_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = caller.board(&*conn, board_id, Access::Read).await?;
    Ok(web::Json(
        crate::domain::tasks::comments::comments(&*conn, &board, task_id, page).await?,
    ))
}

/// Comments on a task (board write access).
#[utoipa::path(
    tag = "tasks",
    params(("board_id" = Uuid, Path), ("task_id" = Uuid, Path)),
    request_body = TaskCommentCreate,
    responses((status = 200, body = TaskComment), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/tasks/{task_id}/comments")]
pub async fn create_comment(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    Json(input): Json<TaskCommentCreate>,
) -> ApiResult<web::Json<TaskComment>> {
    let (board_id, task_id) = path.into_inner();
    let actor = caller.actor();
    let (comment, changes) = in_transaction!(state, |tx| async {
        let board = caller.board(&tx, board_id, Access::Write).await?;
        crate::domain::tasks::comments::add_comment(&tx, &board, &actor, task_id, input).await
    });
    state
        .board_events
        .tasks_changed(caller.organization_id(), board_id, changes);
    Ok(web::Json(comment))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream_tasks)
        .service(list_tasks)
        .service(create_task)
        .service(update_task)
        .service(delete_task)
        .service(list_comments)
        .service(create_comment);
}
