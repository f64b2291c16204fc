//! `/api/v1/activity*` (domain.md §A10): the activity feed and the task-comment feed.
//! Routes are full paths, no scopes: overlapping actix scopes do not fall through.

use actix_web::web::{self, Data};
use actix_web::{get, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::admin::Admin;
use crate::domain::support::activity::{
    self, ActivityEvent, CommentFeedFilter, TaskCommentFeedItem,
};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::tasks::feeds::{self, CommentCursor};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::sse::{self, SinceQuery};
use crate::protocol::channels::Channel;
use crate::state::AppState;

/// Events on tasks of the boards the caller can read, newest first.
#[utoipa::path(
    tag = "activity",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<ActivityEvent>), (status = 401), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/activity")]
pub async fn list_activity(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<ActivityEvent>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        activity::list_for_user(&*conn, &principal, page).await?,
    ))
}

/// Non-blank task comments on the boards the caller can read (or on one of them), newest
/// first.
#[utoipa::path(
    tag = "activity",
    params(("board_id" = Option<Uuid>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<TaskCommentFeedItem>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/activity/task-comments")]
pub async fn list_task_comments(
    state: Data<AppState>,
    Admin(principal): Admin,
    filter: web::Query<CommentFeedFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<TaskCommentFeedItem>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        activity::task_comment_feed(&*conn, &principal, &filter, page).await?,
    ))
}

/// New task comments as server-sent events (`event: comment`, `data: {"comment": …}`),
/// pushed on commit; `id:` is the comment's time in microseconds, which `Last-Event-ID`
/// resumes from; `since` starts at a time (else now).
#[utoipa::path(
    tag = "activity",
    params(("board_id" = Option<Uuid>, Query), ("since" = Option<String>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/activity/task-comments/stream")]
pub async fn stream_task_comments(
    state: Data<AppState>,
    Admin(principal): Admin,
    filter: web::Query<CommentFeedFilter>,
    since: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let boards = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        activity::comment_feed_boards(&*conn, &principal, filter.board_id).await?
    };
    let organization_id = principal.organization.id;
    let cursor = CommentCursor::start(sse::last_event_id(request.headers()), since.time());
    Ok(sse::respond(
        state.db.clone(),
        state.feeds.clone(),
        Channel::OrgFeed(organization_id).to_string(),
        state.settings.ws.sse_keepalive,
        cursor,
        Box::new(move |db, cursor| {
            let boards = boards.clone();
            Box::pin(async move {
                let conn = db.get().await.map_err(DomainError::from)?;
                let (items, cursor) =
                    feeds::comment_events(&*conn, organization_id, &boards, cursor).await?;
                Ok((sse::events("comment", items), cursor))
            })
        }),
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream_task_comments)
        .service(list_activity)
        .service(list_task_comments);
}
