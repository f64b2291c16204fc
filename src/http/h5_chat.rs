//! The H5 chat socket and the chat history of the calling H5 user.

use actix_web::web::{self, Data, Path, Query};
use actix_web::{get, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::h5_session::{H5Deps, H5Session};
use crate::actors::socket::{self, ConnectionSlot, Outbox};
use crate::auth::h5::H5Caller;
use crate::domain::h5::chat::{self as h5_chat, ChatMessage, ChatSession};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::state::AppState;

/// The H5 chat WebSocket (see docs/relay-protocol.md).
#[utoipa::path(tag = "h5-chat", responses((status = 101, description = "switching to the chat protocol")))]
#[get("/ws/h5/chat")]
pub async fn chat_socket(
    req: HttpRequest,
    stream: web::Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let slot = ConnectionSlot::take(&state.sockets, state.settings.ws.max_connections);
    let outbox = Outbox::default();
    let deps = H5Deps {
        settings: state.settings.clone(),
        db: state.db.clone(),
        router: state.router.clone(),
        delivered: state.delivered.clone(),
        chat_writes: state.chat_writes.clone(),
    };
    socket::start(
        H5Session::new(deps, slot, outbox.clone()),
        outbox,
        &req,
        stream,
    )
}

/// The caller's chat sessions, most recently active first.
#[utoipa::path(tag = "h5-chat", security(("bearer" = [])), responses((status = 200, body = Page<ChatSession>), (status = 401)))]
#[get("/api/v1/h5/sessions")]
pub async fn sessions(
    state: Data<AppState>,
    H5Caller(user): H5Caller,
    page: PageParams,
) -> ApiResult<web::Json<Page<ChatSession>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(h5_chat::sessions(&*conn, user.id, page).await?))
}

#[derive(Deserialize, IntoParams)]
pub struct Before {
    /// A message id: only messages older than it.
    pub before: Option<Uuid>,
}

/// A session's messages, newest first; page back with `before`.
#[utoipa::path(tag = "h5-chat", security(("bearer" = [])), params(Before), responses((status = 200, body = Page<ChatMessage>), (status = 401), (status = 404)))]
#[get("/api/v1/h5/sessions/{session_id}/messages")]
pub async fn messages(
    state: Data<AppState>,
    H5Caller(user): H5Caller,
    id: Path<Uuid>,
    page: PageParams,
    Query(before): Query<Before>,
) -> ApiResult<web::Json<Page<ChatMessage>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        h5_chat::messages(&*conn, user.id, *id, before.before, page).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(chat_socket).service(sessions).service(messages);
}
