//! `/api/v1/gateways/status`, `/sessions…`, `/commands` and `/{id}/templates/sync`: the
//! reference's proxies to an OpenClaw gateway, answered over the gateway's relay link
//! (docs/gateway-protocol.md §7), and `/{id}/requests`, what was asked of a gateway.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_rpc::{self, RpcError};
use crate::actors::openclaw;
use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::gateways::dialing;
use crate::domain::gateways::sessions::{
    self as sessions, GatewayQuery, GatewayStatus, Resolved, StatusTarget, SyncQuery, SyncResult,
};
use crate::domain::model::gateway::TOKEN_MASK;
use crate::domain::model::Principal;
use crate::domain::outbox::commands::{self as gateway_commands, Command};
use crate::domain::support::access::Access;
use crate::domain::{gateways::crud as gateways, DomainError};
use crate::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::state::AppState;

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> ApiError {
        match e {
            RpcError::Internal(why) => ApiError::internal("gateway request", why),
            other => ApiError::status(StatusCode::BAD_GATEWAY, other.to_string()),
        }
    }
}

async fn resolve(
    state: &AppState,
    principal: &Principal,
    query: &GatewayQuery,
    access: Access,
) -> ApiResult<Resolved> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(sessions::resolve(&*conn, principal, query, access).await?)
}

async fn list_sessions(state: &AppState, resolved: &Resolved) -> Result<Vec<Value>, RpcError> {
    let answer = gateway_rpc::call(
        state.gateway_caller(),
        resolved.target,
        sessions::LIST_SESSIONS,
        json!({}),
    )
    .await?;
    Ok(sessions::sessions_of(&answer))
}

/// Whether a gateway answers, with its sessions: the board's gateway, the organization's
/// gateway at `gateway_url`, or — for the console's gateway form — any `gateway_url`, dialled
/// with `gateway_token` and our device (docs/gateway-protocol.md §8). Not connected is
/// `connected: false` with the reason; only a malformed URL (422) or an unknown board (404)
/// is an error.
#[utoipa::path(tag = "gateways", params(GatewayQuery),
    responses((status = 200, body = GatewayStatus), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/status")]
pub async fn gateways_status(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<GatewayQuery>,
) -> ApiResult<web::Json<GatewayStatus>> {
    let target = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        sessions::resolve_status(&*conn, &principal, &query).await?
    };
    // The edit form sends the read mask back when nobody retyped the token: for a
    // registered gateway that is "the stored one", which the held connection uses.
    let token = query
        .gateway_token
        .as_deref()
        .filter(|t| !t.is_empty() && *t != TOKEN_MASK);
    let resolved = match target {
        // The form's values are checked as typed: dial them.
        StatusTarget::Registered {
            resolved,
            dialled: true,
        } if token.is_some() => {
            return Ok(web::Json(
                probe(
                    &state,
                    &resolved.gateway_url,
                    token,
                    Some(&resolved.main_session),
                )
                .await?,
            ));
        }
        StatusTarget::Registered { resolved, .. } => resolved,
        StatusTarget::Unregistered(url) => {
            return Ok(web::Json(probe(&state, url.as_str(), token, None).await?));
        }
    };
    Ok(web::Json(match list_sessions(&state, &resolved).await {
        Ok(list) => {
            GatewayStatus::connected(&resolved.gateway_url, Some(&resolved.main_session), list)
        }
        Err(RpcError::Internal(why)) => return Err(ApiError::internal("gateway status", why)),
        Err(e) => GatewayStatus::unreachable(&resolved.gateway_url, e.to_string()),
    }))
}

async fn probe(
    state: &AppState,
    url: &str,
    token: Option<&str>,
    main_session: Option<&str>,
) -> ApiResult<GatewayStatus> {
    let deps = state
        .gateway_client_deps()
        .await
        .map_err(|why| ApiError::internal("device key", why))?;
    let probed = openclaw::probe(deps, url, token, state.settings.gateway.rpc_timeout).await;
    Ok(match probed.sessions {
        Some(list) => GatewayStatus::connected(url, main_session, list),
        None => {
            let mut error = probed.error.unwrap_or_default();
            if let Some(request) = &probed.pairing_request_id {
                error = format!(
                    "{error} — approve this server's device on the gateway host: {}",
                    dialing::approve_command(request)
                );
            }
            GatewayStatus::unreachable(url, format!("{}: {error}", probed.state.as_str()))
        }
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsResponse {
    #[schema(value_type = Vec<Object>)]
    pub sessions: Vec<Value>,
    #[schema(value_type = Option<Object>)]
    pub main_session: Option<Value>,
}

/// The sessions of the board's gateway; 502 when it does not answer.
#[utoipa::path(tag = "gateways", params(GatewayQuery),
    responses((status = 200, body = SessionsResponse), (status = 401), (status = 403), (status = 404), (status = 422), (status = 502)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/sessions")]
pub async fn gateway_sessions(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<GatewayQuery>,
) -> ApiResult<web::Json<SessionsResponse>> {
    let resolved = resolve(&state, &principal, &board_only(query), Access::Read).await?;
    let list = list_sessions(&state, &resolved).await?;
    let main_session = sessions::find_session(&list, &resolved.main_session).cloned();
    Ok(web::Json(SessionsResponse {
        sessions: list,
        main_session,
    }))
}

/// Only the status may name a gateway by URL; the other views need the board.
fn board_only(query: web::Query<GatewayQuery>) -> GatewayQuery {
    GatewayQuery {
        board_id: query.into_inner().board_id,
        ..GatewayQuery::default()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    #[schema(value_type = Object)]
    pub session: Value,
}

/// One session of the board's gateway by key; 404 when the gateway has none.
#[utoipa::path(tag = "gateways", params(("session_id" = String, Path), GatewayQuery),
    responses((status = 200, body = SessionResponse), (status = 401), (status = 403), (status = 404), (status = 422), (status = 502)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/sessions/{session_id}")]
pub async fn gateway_session(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<String>,
    query: web::Query<GatewayQuery>,
) -> ApiResult<web::Json<SessionResponse>> {
    let resolved = resolve(&state, &principal, &board_only(query), Access::Read).await?;
    let list = list_sessions(&state, &resolved).await?;
    match sessions::find_session(&list, &path) {
        Some(session) => Ok(web::Json(SessionResponse {
            session: session.clone(),
        })),
        None => Err(ApiError::status(StatusCode::NOT_FOUND, "Session not found")),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
}

/// The chat history of a session of the board's gateway.
#[utoipa::path(tag = "gateways", params(("session_id" = String, Path), GatewayQuery),
    responses((status = 200, body = HistoryResponse), (status = 401), (status = 403), (status = 404), (status = 422), (status = 502)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/sessions/{session_id}/history")]
pub async fn gateway_session_history(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<String>,
    query: web::Query<GatewayQuery>,
) -> ApiResult<web::Json<HistoryResponse>> {
    let resolved = resolve(&state, &principal, &board_only(query), Access::Read).await?;
    let params = json!({"session_key": path.into_inner()});
    let answer = gateway_rpc::call(
        state.gateway_caller(),
        resolved.target,
        sessions::SESSION_HISTORY,
        params,
    )
    .await?;
    Ok(web::Json(HistoryResponse {
        history: sessions::history_of(&answer),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionMessage {
    pub content: String,
}

/// Sends a message into a session of the board's gateway (write access to the board) and
/// waits for the gateway to take it.
#[utoipa::path(tag = "gateways", params(("session_id" = String, Path), GatewayQuery), request_body = SessionMessage,
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404), (status = 422), (status = 502)),
    security(("bearer" = [])))]
#[post("/api/v1/gateways/sessions/{session_id}/message")]
pub async fn gateway_session_message(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<String>,
    query: web::Query<GatewayQuery>,
    Json(input): Json<SessionMessage>,
) -> ApiResult<web::Json<OkResponse>> {
    let content = crate::domain::support::validation::non_empty("content", &input.content)?;
    let resolved = resolve(&state, &principal, &board_only(query), Access::Write).await?;
    let params = json!({"session_key": path.into_inner(), "message": content});
    gateway_rpc::call(
        state.gateway_caller(),
        resolved.target,
        sessions::SEND_TO_SESSION,
        params,
    )
    .await?;
    Ok(OkResponse::json())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommandsResponse {
    pub protocol_version: i64,
    pub methods: Vec<&'static str>,
    pub events: Vec<&'static str>,
}

/// The relay protocol: requests Mission Control sends, frames gateways send.
#[utoipa::path(tag = "gateways",
    responses((status = 200, body = CommandsResponse), (status = 401), (status = 403)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/commands")]
pub async fn gateway_commands_catalog(
    Admin(principal): Admin,
) -> ApiResult<web::Json<CommandsResponse>> {
    crate::domain::support::access::require_org_admin(&principal.member)?;
    Ok(web::Json(CommandsResponse {
        protocol_version: sessions::PROTOCOL_VERSION,
        methods: sessions::METHODS.to_vec(),
        events: sessions::EVENTS.to_vec(),
    }))
}

/// Asks the gateway to rewrite the workspace templates of its agents (recorded; sent when
/// its link is up).
#[utoipa::path(tag = "gateways", params(("gateway_id" = Uuid, Path), SyncQuery),
    responses((status = 200, body = SyncResult), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/gateways/{gateway_id}/templates/sync")]
pub async fn sync_gateway_templates(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    query: web::Query<SyncQuery>,
) -> ApiResult<web::Json<SyncResult>> {
    let gateway_id = path.into_inner();
    let result = in_transaction!(state, |tx| sessions::sync_templates(
        &tx, &principal, gateway_id, &query
    ));
    gateway_rpc::poke(&state.router, [result.gateway_id]);
    Ok(web::Json(result))
}

/// The gateway's latest 100 requests (provisioning, messages, reads) and their outcome.
#[utoipa::path(tag = "gateways", params(("gateway_id" = Uuid, Path)),
    responses((status = 200, body = Vec<Command>), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/gateways/{gateway_id}/requests")]
pub async fn gateway_requests(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<Vec<Command>>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let gateway = gateways::get(&*conn, &principal, path.into_inner()).await?;
    Ok(web::Json(
        gateway_commands::recent(&*conn, gateway.id, 100).await?,
    ))
}

/// Registered before the `/api/v1/gateways/{gateway_id}` routes, which would take
/// `status`, `sessions` and `commands` for ids.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(gateways_status)
        .service(gateway_sessions)
        .service(gateway_session)
        .service(gateway_session_history)
        .service(gateway_session_message)
        .service(gateway_commands_catalog)
        .service(sync_gateway_templates)
        .service(gateway_requests);
}
