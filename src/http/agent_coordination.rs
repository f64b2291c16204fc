//! `/api/v1/agent/*` coordination (domain.md §A19): nudges, questions for the user, lead
//! messages and broadcasts, and a lead deleting a worker. The messages are gateway
//! requests recorded with the change (`domain::agents::coordination`); once committed, the gateway's
//! relay link is poked to send them.

use actix_web::web::{self, Data};
use actix_web::{delete, post};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc;
use crate::auth::agent::AgentCaller;
use crate::domain::agents::coordination::{
    self, AskUserSent, BroadcastSent, LeadBroadcast, LeadMessageSent, Nudge,
};
use crate::domain::agents::messages::{AskUser, LeadMessage};
use crate::domain::support::access;
use crate::error::ApiResult;
use crate::http::gateways::publish_released;
use crate::http::json::Json;
use crate::http::{in_transaction, OkResponse};
use crate::state::AppState;

fn public_url(state: &AppState) -> String {
    coordination::public_url(state.settings.base_url.as_ref())
}

/// A lead nudges an agent of its board: the message is queued for the agent's session.
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("agent_id" = Uuid, Path)), request_body = Nudge,
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/agents/{agent_id}/nudge")]
pub async fn agent_nudge(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
    Json(input): Json<Nudge>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, agent_id) = path.into_inner();
    let gateway_id = in_transaction!(state, |tx| async {
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        me.require_lead()?;
        coordination::nudge(&tx, &me, &board, agent_id, input).await
    });
    gateway_rpc::poke(&state, [gateway_id]);
    Ok(OkResponse::json())
}

/// A lead asks the user through the gateway-main agent of its board's gateway.
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = AskUser,
    responses((status = 200, body = AskUserSent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/boards/{board_id}/gateway/main/ask-user")]
pub async fn agent_ask_user(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(input): Json<AskUser>,
) -> ApiResult<web::Json<AskUserSent>> {
    let board_id = path.into_inner();
    let (sent, gateway_id) = in_transaction!(state, |tx| async {
        let board = access::board_for_agent(&tx, &me, board_id).await?;
        me.require_lead()?;
        coordination::ask_user(&tx, &me, &board, input, &public_url(&state)).await
    });
    gateway_rpc::poke(&state, [gateway_id]);
    Ok(web::Json(sent))
}

/// The gateway-main agent messages a board's lead (creating the lead if the board has none).
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path)), request_body = LeadMessage,
    responses((status = 200, body = LeadMessageSent), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/gateway/boards/{board_id}/lead/message")]
pub async fn agent_message_lead(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<Uuid>,
    Json(input): Json<LeadMessage>,
) -> ApiResult<web::Json<LeadMessageSent>> {
    let board_id = path.into_inner();
    let (sent, gateway_id) = in_transaction!(state, |tx| coordination::message_board_lead(
        &tx,
        &me,
        board_id,
        input,
        &public_url(&state)
    ));
    gateway_rpc::poke(&state, [gateway_id]);
    // The lead may have been created or renamed.
    state.agents_changed(me.organization_id);
    Ok(web::Json(sent))
}

/// The gateway-main agent messages the leads of its gateway's boards.
#[utoipa::path(tag = "agent", request_body = LeadBroadcast,
    responses((status = 200, body = BroadcastSent), (status = 401), (status = 403), (status = 422)),
    security(("agent_token" = [])))]
#[post("/api/v1/agent/gateway/leads/broadcast")]
pub async fn agent_broadcast_leads(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    Json(input): Json<LeadBroadcast>,
) -> ApiResult<web::Json<BroadcastSent>> {
    let (sent, gateway_id) = in_transaction!(state, |tx| coordination::broadcast_to_leads(
        &tx,
        &me,
        input,
        &public_url(&state)
    ));
    gateway_rpc::poke(&state, [gateway_id]);
    state.agents_changed(me.organization_id);
    Ok(web::Json(sent))
}

/// A lead deletes a worker of its board; the gateway is asked to remove it too.
#[utoipa::path(tag = "agent", params(("board_id" = Uuid, Path), ("agent_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("agent_token" = [])))]
#[delete("/api/v1/agent/boards/{board_id}/agents/{agent_id}")]
pub async fn agent_delete_agent(
    state: Data<AppState>,
    AgentCaller(me): AgentCaller,
    path: web::Path<(Uuid, Uuid)>,
) -> ApiResult<web::Json<OkResponse>> {
    let (board_id, agent_id) = path.into_inner();
    let deleted = in_transaction!(state, |tx| async {
        access::board_for_agent(&tx, &me, board_id).await?;
        crate::domain::agents::removal::delete_by_lead(&tx, &me, board_id, agent_id).await
    });
    if let Some(deleted) = deleted {
        gateway_rpc::poke(&state, [deleted.gateway_id]);
        publish_released(&state, me.organization_id, deleted.released);
    }
    Ok(OkResponse::json())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(agent_nudge)
        .service(agent_ask_user)
        .service(agent_message_lead)
        .service(agent_broadcast_leads)
        .service(agent_delete_agent);
}
