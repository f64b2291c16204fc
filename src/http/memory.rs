//! `/api/v1/boards/{board_id}/memory*`, `/api/v1/board-groups/{group_id}/memory*` and
//! `/api/v1/boards/{board_id}/group-memory*` (domain.md §A13, §A14): board and group
//! memory for users. Routes are full paths, no
//! scopes: overlapping actix scopes do not fall through.

use actix_web::web::{self, Data};
use actix_web::{get, post, HttpRequest, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::feeds::Poke;
use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::db::GenericClient;
use crate::domain::boards::memory::{self, MemoryCreate, MemoryFilter, MemoryKind};
use crate::domain::model::{BoardGroupMemory, BoardMemory};
use crate::domain::support::access::{Access, Caller};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::domain::{
    agents::coordination, boards::groups as board_groups, outbox::memory_notices, DomainResult,
};
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::sse::{self, SinceQuery};
use crate::protocol::channels::Channel;
use crate::state::AppState;

/// New entries of `owner_id` (already authorized) as server-sent events
/// (`event: memory`, `data: {"memory": …}`, `id:` the feed number), woken on `topic`.
async fn memory_stream<K: MemoryKind + 'static>(
    state: &AppState,
    topic: String,
    owner_id: Uuid,
    filter: MemoryFilter,
    since: &SinceQuery,
    request: &HttpRequest,
) -> ApiResult<HttpResponse> {
    let cursor = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        let resume = sse::last_event_id(request.headers());
        memory::stream_start::<K>(&*conn, owner_id, resume, since.time()).await?
    };
    Ok(sse::respond(
        state.db.clone(),
        state.feeds.clone(),
        topic,
        state.settings.ws.sse_keepalive,
        cursor,
        Box::new(move |db, after| {
            Box::pin(async move {
                let conn = db.get().await.map_err(DomainError::from)?;
                let items = memory::stream_items::<K>(&*conn, owner_id, filter, after).await?;
                Ok(sse::numbered("memory", items, after))
            })
        }),
    ))
}

/// New board memory as server-sent events, pushed on commit; `Last-Event-ID` resumes
/// exactly, `since` starts at a time (else now), `is_chat` filters.
#[utoipa::path(
    tag = "board-memory",
    params(("board_id" = Uuid, Path), ("since" = Option<String>, Query), ("is_chat" = Option<bool>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/memory/stream")]
pub async fn stream_board_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    since: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let board_id = path.into_inner();
    {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        caller.board(&*conn, board_id, Access::Read).await?;
    }
    memory_stream::<BoardMemory>(
        &state,
        Channel::BoardFeed(board_id).to_string(),
        board_id,
        *filter,
        &since,
        &request,
    )
    .await
}

/// The board's memory, newest first; `is_chat` filters chat or non-chat entries.
#[utoipa::path(
    tag = "board-memory",
    params(("board_id" = Uuid, Path), ("is_chat" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<BoardMemory>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/memory")]
pub async fn list_board_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardMemory>>> {
    board_memory(&state, &caller, path.into_inner(), *filter, page).await
}

/// The board's memory as `caller` may read it (also `/agent/boards/{board_id}/memory`).
pub async fn board_memory(
    state: &AppState,
    caller: &Caller,
    board_id: Uuid,
    filter: MemoryFilter,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardMemory>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = caller.board(&*conn, board_id, Access::Read).await?;
    Ok(web::Json(
        memory::list(&*conn, board.id, filter, page).await?,
    ))
}

/// Adds a board memory entry (board write access); tagged "chat" it is board chat, named
/// after its author when it has no source.
#[utoipa::path(
    tag = "board-memory",
    params(("board_id" = Uuid, Path)),
    request_body = MemoryCreate,
    responses((status = 200, body = BoardMemory), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/memory")]
pub async fn create_board_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(input): Json<MemoryCreate>,
) -> ApiResult<web::Json<BoardMemory>> {
    post_board_memory(&state, &caller, path.into_inner(), input).await
}

/// Posts to the board's memory as `caller` (also `/agent/boards/{board_id}/memory`).
pub async fn post_board_memory(
    state: &AppState,
    caller: &Caller,
    board_id: Uuid,
    input: MemoryCreate,
) -> ApiResult<web::Json<BoardMemory>> {
    let base_url = coordination::public_url(state.settings.base_url.as_ref());
    let (entry, gateways) = in_transaction!(state, |tx| async {
        let board = caller.board(&tx, board_id, Access::Write).await?;
        let author = memory::Author::of(caller);
        let entry = memory::create(&tx, &author, board_id, input).await?;
        let gateways = memory_notices::board_post(&tx, &board, &entry, &author, &base_url).await?;
        Ok::<_, DomainError>((entry, gateways))
    });
    state
        .feeds
        .do_send(Poke::plain(Channel::BoardFeed(board_id).to_string()));
    gateway_rpc::poke(&state.router, gateways);
    Ok(web::Json(entry))
}

/// New group memory as server-sent events, pushed on commit; `Last-Event-ID` resumes
/// exactly, `since` starts at a time (else now), `is_chat` filters.
#[utoipa::path(
    tag = "board-group-memory",
    params(("group_id" = Uuid, Path), ("since" = Option<String>, Query), ("is_chat" = Option<bool>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/board-groups/{group_id}/memory/stream")]
pub async fn stream_group_memory(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    since: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let group_id = path.into_inner();
    {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        board_groups::group_for_user(&*conn, &principal, group_id, Access::Read, false).await?;
    }
    memory_stream::<BoardGroupMemory>(
        &state,
        Channel::GroupFeed(group_id).to_string(),
        group_id,
        *filter,
        &since,
        &request,
    )
    .await
}

/// The group's shared memory, newest first; `is_chat` filters.
#[utoipa::path(
    tag = "board-group-memory",
    params(("group_id" = Uuid, Path), ("is_chat" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<BoardGroupMemory>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/board-groups/{group_id}/memory")]
pub async fn list_group_memory(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardGroupMemory>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let group =
        board_groups::group_for_user(&*conn, &principal, path.into_inner(), Access::Read, false)
            .await?;
    Ok(web::Json(
        memory::list(&*conn, group.id, *filter, page).await?,
    ))
}

/// Adds a group memory entry (write access to one of the group's boards); chat,
/// broadcast and `@all` posts are named after their author when they have no source.
#[utoipa::path(
    tag = "board-group-memory",
    params(("group_id" = Uuid, Path)),
    request_body = MemoryCreate,
    responses((status = 200, body = BoardGroupMemory), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/board-groups/{group_id}/memory")]
pub async fn create_group_memory(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<MemoryCreate>,
) -> ApiResult<web::Json<BoardGroupMemory>> {
    let group_id = path.into_inner();
    let entry = in_transaction!(state, |tx| async {
        board_groups::group_for_user(&tx, &principal, group_id, Access::Write, false).await?;
        post_group_memory(
            &tx,
            &state,
            memory::Author::user(&principal),
            group_id,
            input,
        )
        .await
    });
    announce_group_post(&state, entry)
}

/// New memory of the board's group as server-sent events (see the group stream); a
/// board outside any group streams only keepalives, as in the reference.
#[utoipa::path(
    tag = "board-group-memory",
    params(("board_id" = Uuid, Path), ("since" = Option<String>, Query), ("is_chat" = Option<bool>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/group-memory/stream")]
pub async fn stream_board_group_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    since: web::Query<SinceQuery>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let board = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        caller
            .board(&*conn, path.into_inner(), Access::Read)
            .await?
    };
    match board.board_group_id {
        Some(group_id) => {
            memory_stream::<BoardGroupMemory>(
                &state,
                Channel::GroupFeed(group_id).to_string(),
                group_id,
                *filter,
                &since,
                &request,
            )
            .await
        }
        None => Ok(sse::respond(
            state.db.clone(),
            state.feeds.clone(),
            Channel::BoardFeed(board.id).to_string(),
            state.settings.ws.sse_keepalive,
            (),
            Box::new(|_, _| Box::pin(async { Ok((Vec::new(), ())) })),
        )),
    }
}

/// The memory of the board's group, newest first; an empty page when the board is in no
/// group.
#[utoipa::path(
    tag = "board-group-memory",
    params(("board_id" = Uuid, Path), ("is_chat" = Option<bool>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<BoardGroupMemory>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/group-memory")]
pub async fn list_board_group_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    filter: web::Query<MemoryFilter>,
    page: PageParams,
) -> ApiResult<web::Json<Page<BoardGroupMemory>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let board = caller
        .board(&*conn, path.into_inner(), Access::Read)
        .await?;
    Ok(web::Json(match board.board_group_id {
        Some(group_id) => memory::list(&*conn, group_id, *filter, page).await?,
        None => page.page(Vec::new(), 0),
    }))
}

/// Adds an entry to the board's group memory (board write access); 422 when the board is
/// in no group.
#[utoipa::path(
    tag = "board-group-memory",
    params(("board_id" = Uuid, Path)),
    request_body = MemoryCreate,
    responses((status = 200, body = BoardGroupMemory), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/group-memory")]
pub async fn create_board_group_memory(
    state: Data<AppState>,
    caller: Caller,
    path: web::Path<Uuid>,
    Json(input): Json<MemoryCreate>,
) -> ApiResult<web::Json<BoardGroupMemory>> {
    let board_id = path.into_inner();
    let entry = in_transaction!(state, |tx| async {
        let board = caller.board(&tx, board_id, Access::Write).await?;
        let group_id = memory::posting_group(&board)?;
        post_group_memory(&tx, &state, memory::Author::of(&caller), group_id, input).await
    });
    announce_group_post(&state, entry)
}

/// Records a group post and its notices; returns the entry and the gateways to poke.
async fn post_group_memory(
    client: &impl GenericClient,
    state: &AppState,
    author: memory::Author,
    group_id: Uuid,
    input: MemoryCreate,
) -> DomainResult<(BoardGroupMemory, Vec<Uuid>)> {
    let entry = memory::create(client, &author, group_id, input).await?;
    let base_url = coordination::public_url(state.settings.base_url.as_ref());
    let gateways = memory_notices::group_post(client, &entry, &author, &base_url).await?;
    Ok((entry, gateways))
}

/// After a group post commits: wakes its streams and sends its notices.
fn announce_group_post(
    state: &AppState,
    (entry, gateways): (BoardGroupMemory, Vec<Uuid>),
) -> ApiResult<web::Json<BoardGroupMemory>> {
    state.feeds.do_send(Poke::plain(
        Channel::GroupFeed(entry.board_group_id).to_string(),
    ));
    gateway_rpc::poke(&state.router, gateways);
    Ok(web::Json(entry))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream_board_memory)
        .service(list_board_memory)
        .service(create_board_memory)
        .service(stream_group_memory)
        .service(list_group_memory)
        .service(create_group_memory)
        .service(stream_board_group_memory)
        .service(list_board_group_memory)
        .service(create_board_group_memory);
}
