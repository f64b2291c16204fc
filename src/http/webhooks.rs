//! `/api/v1/boards/{board_id}/webhooks` (domain.md §A15): the admin CRUD, the stored
//! payloads, and the unauthenticated ingest.

use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::auth::throttle::Limit;
use crate::db::in_transaction;
use crate::domain::agents::coordination;
use crate::domain::boards::webhooks::{
    self, Payload, Received, Webhook, WebhookCreate, WebhookUpdate, WebhookWithSecret,
    SIGNATURE_HEADER,
};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::{self, Json};
use crate::http::OkResponse;
use crate::state::AppState;

fn base_url(state: &AppState) -> Option<String> {
    state.settings.base_url.as_ref().map(|u| u.to_string())
}

/// The board's webhooks, newest first.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Webhook>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/webhooks")]
pub async fn list_webhooks(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Webhook>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let base = base_url(&state);
    Ok(web::Json(
        webhooks::list(&*conn, &principal, *path, page, base.as_deref()).await?,
    ))
}

/// Creates a webhook. The answer carries its signing `secret`.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path)),
    request_body = WebhookCreate,
    responses((status = 200, body = WebhookWithSecret), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/webhooks")]
pub async fn create_webhook(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<WebhookCreate>,
) -> ApiResult<web::Json<WebhookWithSecret>> {
    let base = base_url(&state);
    Ok(web::Json(in_transaction!(state, |tx| webhooks::create(
        &tx,
        &principal,
        *path,
        input,
        base.as_deref()
    ))))
}

#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = Webhook), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/webhooks/{webhook_id}")]
pub async fn get_webhook(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<Webhook>> {
    let (board_id, webhook_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let base = base_url(&state);
    Ok(web::Json(
        webhooks::get(&*conn, &principal, board_id, webhook_id, base.as_deref()).await?,
    ))
}

#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    request_body = WebhookUpdate,
    responses((status = 200, body = Webhook), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[patch("/api/v1/boards/{board_id}/webhooks/{webhook_id}")]
pub async fn update_webhook(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
    Json(patch): Json<WebhookUpdate>,
) -> ApiResult<web::Json<Webhook>> {
    let (board_id, webhook_id) = path.into_inner();
    let base = base_url(&state);
    Ok(web::Json(in_transaction!(state, |tx| webhooks::update(
        &tx,
        &principal,
        board_id,
        webhook_id,
        patch,
        base.as_deref()
    ))))
}

/// The webhook with its signing `secret`.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/webhooks/{webhook_id}/secret")]
pub async fn get_webhook_secret(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<WebhookWithSecret>> {
    let (board_id, webhook_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let base = base_url(&state);
    Ok(web::Json(
        webhooks::secret(&*conn, &principal, board_id, webhook_id, base.as_deref()).await?,
    ))
}

/// Gives the webhook a new signing secret; the old one stops working.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/webhooks/{webhook_id}/secret")]
pub async fn rotate_webhook_secret(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<WebhookWithSecret>> {
    let (board_id, webhook_id) = path.into_inner();
    let base = base_url(&state);
    Ok(web::Json(in_transaction!(state, |tx| {
        webhooks::rotate_secret(&tx, &principal, board_id, webhook_id, base.as_deref())
    })))
}

/// Deletes the webhook and its stored payloads.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[delete("/api/v1/boards/{board_id}/webhooks/{webhook_id}")]
pub async fn delete_webhook(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, webhook_id) = path.into_inner();
    in_transaction!(state, |tx| webhooks::delete(
        &tx, &principal, board_id, webhook_id
    ));
    Ok(OkResponse::json())
}

/// The webhook's stored payloads, newest first.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Payload>), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/webhooks/{webhook_id}/payloads")]
pub async fn list_payloads(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid)>,
    page: PageParams,
) -> ApiResult<web::Json<Page<Payload>>> {
    let (board_id, webhook_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        webhooks::list_payloads(&*conn, &principal, board_id, webhook_id, page).await?,
    ))
}

#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("payload_id" = Uuid, Path)),
    responses((status = 200, body = Payload), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/webhooks/{webhook_id}/payloads/{payload_id}")]
pub async fn get_payload(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> ApiResult<web::Json<Payload>> {
    let (board_id, webhook_id, payload_id) = path.into_inner();
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        webhooks::get_payload(&*conn, &principal, board_id, webhook_id, payload_id).await?,
    ))
}

/// `BoardWebhookIngestResponse`.
#[derive(Serialize, ToSchema)]
pub struct IngestResponse {
    ok: bool,
    board_id: Uuid,
    webhook_id: Uuid,
    payload_id: Uuid,
}

fn too_large() -> ApiError {
    ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large.")
}

/// The body, or 413 as soon as it passes `limit` (nothing past it is buffered).
async fn read_limited(
    req: &HttpRequest,
    body: web::Payload,
    limit: usize,
) -> ApiResult<web::BytesMut> {
    if json::declared_length(req).is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    json::gather(body, limit)
        .await
        .map_err(|e| ApiError::status(StatusCode::BAD_REQUEST, e.to_string()))?
        .ok_or_else(too_large)
}

/// Receives a webhook call. Needs no login; `X-Webhook-Signature: sha256=<hex>`, the
/// HMAC-SHA256 of the raw body under the webhook's secret, is checked when present (a
/// wrong one is 401) and required where the webhook says so (else 401). Bodies over
/// `WEBHOOK_MAX_BODY_BYTES` answer 413, calls over `WEBHOOK_RATE_LIMIT_PER_MINUTE` 429;
/// neither stores anything.
#[utoipa::path(
    tag = "board-webhooks",
    params(("board_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 202, body = IngestResponse), (status = 401), (status = 404), (status = 410), (status = 413), (status = 429))
)]
#[post("/api/v1/boards/{board_id}/webhooks/{webhook_id}")]
pub async fn ingest_webhook(
    req: HttpRequest,
    state: Data<AppState>,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let (board_id, webhook_id) = path.into_inner();
    // No pooled connection is held while an unauthenticated client sends its body.
    let target = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        webhooks::ingest_target(&*conn, board_id, webhook_id).await?
    };

    // Every call counts, signed or not: the limit is what shields the endpoint.
    let limits = [Limit {
        key: format!("webhook:calls:{}", target.id),
        max: state.settings.webhook.rate_limit_per_minute,
    }];
    if let Err(retry_after) = state.webhook_throttle.check(&limits).await {
        let refusal = ApiError::status(StatusCode::TOO_MANY_REQUESTS, "Too many webhook calls.");
        let mut res = actix_web::ResponseError::error_response(&refusal);
        res.headers_mut()
            .insert(RETRY_AFTER, retry_after.as_secs().max(1).into());
        return Ok(res);
    }
    state.webhook_throttle.record_failure(&limits).await;

    if !target.enabled {
        return Err(ApiError::status(StatusCode::GONE, "Webhook is disabled."));
    }
    let raw = read_limited(&req, body, state.settings.webhook.max_body_bytes).await?;
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !target.accepts(signature, &raw) {
        return Err(ApiError::status(
            StatusCode::UNAUTHORIZED,
            "Invalid webhook signature.",
        ));
    }

    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let received = Received {
        payload: webhooks::decode_body(&raw, content_type.as_deref()),
        headers: webhooks::captured_headers(
            req.headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        ),
        source_ip: req.peer_addr().map(|a| a.ip().to_string()),
        content_type,
    };
    let (payload_id, gateway_id) = in_transaction!(state, |tx| async {
        let payload_id = webhooks::store_payload(&tx, &target, &received).await?;
        let gateway_id =
            coordination::deliver_webhook(&tx, target.id, payload_id, &received.payload).await?;
        Ok::<_, DomainError>((payload_id, gateway_id))
    });
    gateway_rpc::poke(&state.router, gateway_id);
    Ok(HttpResponse::Accepted().json(IngestResponse {
        ok: true,
        board_id: target.board_id,
        webhook_id: target.id,
        payload_id,
    }))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_webhooks)
        .service(create_webhook)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(get_webhook_secret)
        .service(rotate_webhook_secret)
        .service(list_payloads)
        .service(get_payload)
        .service(ingest_webhook);
}
