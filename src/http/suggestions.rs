//! `/api/v1/suggestions/stream`: new proactive suggestions of the caller's organization as
//! server-sent events, from whichever instance created them.

use actix_web::get;
use actix_web::web::Data;
use actix_web::HttpResponse;
use tokio::sync::mpsc;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::suggestions::{Listen, Unlisten, LISTENER_QUEUE};
use crate::auth::admin::Admin;
use crate::http::sse;
use crate::state::AppState;

/// `event: suggestion`, `data: {"type": "suggestion.new", "suggestion": …}`, and a keepalive
/// comment every SSE_KEEPALIVE_SECONDS. A client that falls more than 128 suggestions
/// behind is disconnected (and reconnects).
#[utoipa::path(
    tag = "suggestions",
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401)),
    security(("bearer" = []))
)]
#[get("/api/v1/suggestions/stream")]
pub async fn stream_suggestions(state: Data<AppState>, Admin(principal): Admin) -> HttpResponse {
    let (frames_tx, frames) = mpsc::channel(LISTENER_QUEUE);
    let (organization_id, listener) = (principal.organization.id, Uuid::new_v4());
    state.suggestions.do_send(Listen {
        organization_id,
        listener,
        board_id: None,
        frames: frames_tx,
    });
    let hubs = state.suggestions.clone();
    sse::relay(
        frames,
        "suggestion",
        state.settings.ws.sse_keepalive,
        move || {
            hubs.do_send(Unlisten {
                organization_id,
                listener,
            })
        },
    )
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(stream_suggestions);
}
