//! `/api/v1/proactive-rules*` (domain.md §B2): the organization's rules. Writes need an
//! organization admin; bodies are checked (`domain::proactivity::rules`).

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::proactivity::rules::{self, Rule, RuleCreate, RuleUpdate};
use crate::domain::support::pagination::{Page, PageParams};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

/// The organization's rules (the six builtin ones included), oldest first.
#[utoipa::path(tag = "proactive-rules", params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, body = Page<Rule>), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/proactive-rules")]
pub async fn list_rules(
    state: Data<AppState>,
    Admin(principal): Admin,
    page: PageParams,
) -> ApiResult<web::Json<Page<Rule>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(rules::list(&*conn, &principal, page).await?))
}

/// A rule of the organization, or of one of its boards (`board_id`: it then sees only that
/// board's events).
#[utoipa::path(tag = "proactive-rules", request_body = RuleCreate,
    responses((status = 201, body = Rule), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/proactive-rules")]
pub async fn create_rule(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<RuleCreate>,
) -> ApiResult<HttpResponse> {
    let rule = in_transaction!(state, |tx| rules::create(&tx, &principal, input));
    Ok(HttpResponse::Created().json(rule))
}

/// Changes name, description, conditions, action config or cooldown (null: unchanged).
#[utoipa::path(tag = "proactive-rules", params(("rule_id" = Uuid, Path)), request_body = RuleUpdate,
    responses((status = 200, body = Rule), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[patch("/api/v1/proactive-rules/{rule_id}")]
pub async fn update_rule(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<RuleUpdate>,
) -> ApiResult<web::Json<Rule>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| rules::update(
        &tx, &principal, id, patch
    ))))
}

/// Deletes a rule; a builtin one: 409 (toggle it instead).
#[utoipa::path(tag = "proactive-rules", params(("rule_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 409)),
    security(("bearer" = [])))]
#[delete("/api/v1/proactive-rules/{rule_id}")]
pub async fn delete_rule(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    in_transaction!(state, |tx| rules::delete(&tx, &principal, id));
    Ok(OkResponse::json())
}

/// Flips `is_enabled`.
#[utoipa::path(tag = "proactive-rules", params(("rule_id" = Uuid, Path)),
    responses((status = 200, body = Rule), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[post("/api/v1/proactive-rules/{rule_id}/toggle")]
pub async fn toggle_rule(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Rule>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| rules::toggle(
        &tx, &principal, id
    ))))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_rules)
        .service(create_rule)
        .service(update_rule)
        .service(delete_rule)
        .service(toggle_rule);
}
