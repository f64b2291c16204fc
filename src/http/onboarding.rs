//! `/api/v1/boards/{board_id}/onboarding` (domain.md §A20): the guided set-up of a board.

use actix_web::web::{self, Data};
use actix_web::{get, post};
use serde_json::{Map, Value};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::admin::Admin;
use crate::auth::agent::AgentCaller;
use crate::db::in_transaction;
use crate::domain::boards::onboarding::{
    self, Onboarding, OnboardingAnswer, OnboardingConfirm, OnboardingStart,
};
use crate::domain::model::Board;
use crate::domain::{agents::coordination, DomainError};
use crate::error::ApiResult;
use crate::http::json::Json;
use crate::state::AppState;

/// The board's newest onboarding session (404 when none was started).
#[utoipa::path(
    tag = "board-onboarding",
    params(("board_id" = Uuid, Path)),
    responses((status = 200, body = Onboarding), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = []))
)]
#[get("/api/v1/boards/{board_id}/onboarding")]
pub async fn get_onboarding(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Onboarding>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(onboarding::get(&*conn, &principal, *path).await?))
}

/// Starts onboarding: the prompt goes to the gateway's main agent over the relay link. On an
/// active session, its last unanswered user message is sent again.
#[utoipa::path(
    tag = "board-onboarding",
    params(("board_id" = Uuid, Path)),
    request_body = OnboardingStart,
    responses((status = 200, body = Onboarding), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/onboarding/start")]
pub async fn start_onboarding(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(_start): Json<OnboardingStart>,
) -> ApiResult<web::Json<Onboarding>> {
    let base = coordination::public_url(state.settings.base_url.as_ref());
    let (session, gateway_id) =
        in_transaction!(state, |tx| onboarding::start(&tx, &principal, *path, &base));
    gateway_rpc::poke(&state.router, [gateway_id]);
    Ok(web::Json(session))
}

/// Records the user's answer and sends it to the gateway agent.
#[utoipa::path(
    tag = "board-onboarding",
    params(("board_id" = Uuid, Path)),
    request_body = OnboardingAnswer,
    responses((status = 200, body = Onboarding), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/onboarding/answer")]
pub async fn answer_onboarding(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<OnboardingAnswer>,
) -> ApiResult<web::Json<Onboarding>> {
    let (session, gateway_id) = in_transaction!(state, |tx| onboarding::answer(
        &tx, &principal, *path, input
    ));
    gateway_rpc::poke(&state.router, [gateway_id]);
    Ok(web::Json(session))
}

/// The gateway agent's questions and final draft, by the agent token of the gateway-main
/// agent of the board's gateway.
#[utoipa::path(
    tag = "board-onboarding",
    params(("board_id" = Uuid, Path)),
    request_body = Object,
    responses((status = 200, body = Onboarding), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)),
    security(("agent_token" = []))
)]
#[post("/api/v1/boards/{board_id}/onboarding/agent")]
pub async fn agent_onboarding_update(
    state: Data<AppState>,
    AgentCaller(agent): AgentCaller,
    path: web::Path<Uuid>,
    Json(payload): Json<Map<String, Value>>,
) -> ApiResult<web::Json<Onboarding>> {
    Ok(web::Json(in_transaction!(state, |tx| {
        onboarding::agent_update(&tx, &agent, *path, payload)
    })))
}

/// Writes the confirmed goal onto the board and provisions the lead the draft describes.
#[utoipa::path(
    tag = "board-onboarding",
    params(("board_id" = Uuid, Path)),
    request_body = OnboardingConfirm,
    responses((status = 200, body = Board), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = []))
)]
#[post("/api/v1/boards/{board_id}/onboarding/confirm")]
pub async fn confirm_onboarding(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(input): Json<OnboardingConfirm>,
) -> ApiResult<web::Json<Board>> {
    let (board, gateway_id) = in_transaction!(state, |tx| onboarding::confirm(
        &tx, &principal, *path, input
    ));
    gateway_rpc::poke(&state.router, [gateway_id]);
    Ok(web::Json(board))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_onboarding)
        .service(start_onboarding)
        .service(answer_onboarding)
        .service(agent_onboarding_update)
        .service(confirm_onboarding);
}
