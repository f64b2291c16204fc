//! `/ws/board/{board_id}/sync`: live boards (see docs/board-sync-protocol.md).

use actix_web::web::{self, Data};
use actix_web::{get, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::board_session::{BoardDeps, BoardSession};
use crate::actors::socket::{self, ConnectionSlot, Outbox};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

/// The board sync WebSocket. The admin token comes in the query (`?token=`); it and the
/// board are checked after the upgrade, answered with an `error` frame and close 4001/4004.
#[utoipa::path(
    tag = "board-sync",
    params(("board_id" = String, Path), ("token" = String, Query)),
    responses((status = 101, description = "switching to the board sync protocol"))
)]
#[get("/ws/board/{board_id}/sync")]
pub async fn board_socket(
    req: HttpRequest,
    stream: web::Payload,
    state: Data<AppState>,
    path: web::Path<String>,
    query: web::Query<TokenQuery>,
) -> Result<HttpResponse, actix_web::Error> {
    let board_id = path.parse::<Uuid>().ok();
    let slot = ConnectionSlot::take(&state.sockets, state.settings.ws.max_connections);
    let outbox = Outbox::default();
    let token = query.into_inner().token;
    let deps = BoardDeps {
        settings: state.settings.clone(),
        db: state.db.clone(),
        clerk: state.clerk.clone(),
        memos: state.memos.clone(),
        board_events: state.board_events.clone(),
        board_rooms: state.board_rooms.clone(),
        suggestions: state.suggestions.clone(),
    };
    socket::start(
        BoardSession::new(deps, board_id, token, slot, outbox.clone()),
        outbox,
        &req,
        stream,
    )
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(board_socket);
}
