//! `/api/v1/suggestions*` (domain.md §B2): the organization's proactive suggestions, their
//! resolution (accepting one carries out its action: `domain::proactivity::actions`), and
//! new ones as server-sent events, from whichever instance created them.

use actix_web::web::{self, Data};
use actix_web::{get, post, HttpResponse};
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::suggestions::{Listen, Unlisten, LISTENER_QUEUE};
use crate::auth::admin::Admin;
use crate::db::{in_transaction, GenericClient};
use crate::domain::proactivity::actions;
use crate::domain::proactivity::suggestions::{self as stored, Suggestion, SuggestionFilter};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::sse;
use crate::http::OkResponse;
use crate::state::AppState;

/// The filters of the list (exact matches).
#[derive(Debug, Deserialize, IntoParams)]
pub struct SuggestionQuery {
    /// pending, accepted, executed, dismissed or expired.
    pub status: Option<String>,
    pub board_id: Option<Uuid>,
    pub priority: Option<String>,
}

/// The organization's suggestions, newest first; a pending one whose time ran out reads
/// `expired`.
#[utoipa::path(tag = "suggestions", params(SuggestionQuery, ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Suggestion>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/suggestions")]
pub async fn list_suggestions(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<SuggestionQuery>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Suggestion>>> {
    let query = query.into_inner();
    let filter = SuggestionFilter {
        status: query.status,
        board_id: query.board_id,
        priority: query.priority,
    };
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        stored::list(&*conn, &principal, filter, page).await?,
    ))
}

#[utoipa::path(tag = "suggestions", params(("suggestion_id" = Uuid, Path)),
    responses((status = 200, body = Suggestion), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/suggestions/{suggestion_id}")]
pub async fn get_suggestion(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Suggestion>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        stored::get_one(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Accepts a pending suggestion (organization admins) and carries out its action in the
/// same transaction: `executed` with `action_result`, or `accepted` with the reason the
/// action could not be done in `action_result.error`. Not pending (expired included): 409.
#[utoipa::path(tag = "suggestions", params(("suggestion_id" = Uuid, Path)),
    responses((status = 200, body = Suggestion), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[post("/api/v1/suggestions/{suggestion_id}/accept")]
pub async fn accept_suggestion(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Suggestion>> {
    let id = path.into_inner();
    let (suggestion, effects) = in_transaction!(state, |tx| async {
        let pending = stored::lock_pending(&tx, &principal, id).await?;
        let action = pending
            .payload
            .as_ref()
            .and_then(|p| p.get("action"))
            .and_then(|a| a.as_object());
        let Some(action) = action else {
            let result = serde_json::json!({"note": "nothing to carry out"});
            let done = stored::resolve(&tx, &principal, id, "accepted", Some(&result)).await?;
            return Ok::<_, DomainError>((done, Vec::new()));
        };
        // The action's writes go or stay together: a failed one leaves only the acceptance.
        tx.batch_execute("SAVEPOINT suggestion_action").await?;
        match actions::execute(&tx, &principal, action).await {
            Ok((result, effects)) => {
                tx.batch_execute("RELEASE SAVEPOINT suggestion_action")
                    .await?;
                let done = stored::resolve(&tx, &principal, id, "executed", Some(&result)).await?;
                Ok((done, effects))
            }
            Err(why) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT suggestion_action")
                    .await?;
                let result = serde_json::json!({"error": why});
                let done = stored::resolve(&tx, &principal, id, "accepted", Some(&result)).await?;
                Ok((done, Vec::new()))
            }
        }
    });
    for (board_id, changes) in effects {
        state
            .board_events
            .tasks_changed(principal.organization.id, board_id, changes);
    }
    Ok(web::Json(suggestion))
}

/// Dismisses a pending suggestion (organization admins); not pending: 409.
#[utoipa::path(tag = "suggestions", params(("suggestion_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[post("/api/v1/suggestions/{suggestion_id}/dismiss")]
pub async fn dismiss_suggestion(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| async {
        stored::lock_pending(&tx, &principal, id).await?;
        stored::resolve(&tx, &principal, id, "dismissed", None).await
    });
    Ok(OkResponse::json())
}

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
    // The stream first: `/suggestions/stream` is not a suggestion id.
    cfg.service(stream_suggestions)
        .service(list_suggestions)
        .service(get_suggestion)
        .service(accept_suggestion)
        .service(dismiss_suggestion);
}
