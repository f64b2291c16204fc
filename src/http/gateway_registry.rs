//! Gateways that connect to us: registration tokens (admins), register / heartbeat /
//! deregister (gateways, authenticated by their tokens), the relay WebSocket, and the admin
//! views of a gateway's live links and metrics.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Path};
use actix_web::{delete, get, post, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::actors::gateway_link::GatewayLink;
use crate::actors::group_commit::submit;
use crate::actors::socket::{self, ConnectionSlot, Outbox};
use crate::auth::admin::Admin;
use crate::domain::gateways::registry::{
    self as registry, GatewayIdentity, GatewayMetrics, Registration, RegistrationToken, OFFLINE,
    ONLINE,
};
use crate::domain::h5::chat::{self as h5_chat, ChatSession};
use crate::domain::support::access::require_org_admin;
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::http::OkResponse;
use crate::protocol::channels::gateway_presence;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct TokenCreate {
    pub label: Option<String>,
}

/// A registration token with its secret, shown only in this response.
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub token: RegistrationToken,
    pub registration_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub organization_id: Uuid,
    pub registration_token: String,
    pub name: String,
    pub url: String,
    pub workspace_root: String,
    pub version: Option<String>,
    pub capabilities: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterResponse {
    pub gateway_id: Uuid,
    pub relay_ws_url: String,
    pub relay_token: String,
    pub heartbeat_interval_seconds: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    pub gateway_id: Uuid,
    pub relay_token: String,
    #[serde(default = "default_status")]
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<Value>,
}

fn default_status() -> String {
    ONLINE.into()
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    pub ok: bool,
    #[schema(value_type = Option<Object>)]
    pub config_update: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct DeregisterRequest {
    pub gateway_id: Uuid,
    pub relay_token: String,
}

/// `GatewayConnectionsResponse`, plus who holds the link.
#[derive(Serialize, ToSchema)]
pub struct Connections {
    pub gateway_id: Uuid,
    pub is_connected: bool,
    pub active_connections: i64,
    /// The live link as recorded by the instance that holds it.
    #[schema(value_type = Option<Object>)]
    pub link: Option<Value>,
    /// The H5 chat sessions routed to this gateway (at most 200, most recent first).
    pub sessions: Vec<ChatSession>,
}

const SESSIONS_SHOWN: i64 = 200;

fn required(field: &str, value: &str, max: usize) -> ApiResult<()> {
    let len = value.trim().chars().count();
    if len == 0 || len > max {
        return Err(ApiError::validation(
            "value_error",
            vec!["body".into(), field.into()],
            format!("{field} must be 1 to {max} characters"),
            value.into(),
        ));
    }
    Ok(())
}

/// Issues a registration token for the organization's gateways.
#[utoipa::path(tag = "gateway-registry", security(("bearer" = [])), request_body = TokenCreate, responses((status = 201, body = IssuedToken), (status = 403)))]
#[post("/api/v1/gateway-registry/tokens")]
pub async fn create_token(
    state: Data<AppState>,
    Admin(p): Admin,
    Json(body): Json<TokenCreate>,
) -> ApiResult<HttpResponse> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    let label = body
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let (token, registration_token) =
        registry::issue_token(&*conn, p.organization.id, label, Some(p.user.id)).await?;
    Ok(HttpResponse::Created().json(IssuedToken {
        token,
        registration_token,
    }))
}

/// The organization's registration tokens (without their secrets).
#[utoipa::path(tag = "gateway-registry", security(("bearer" = [])), responses((status = 200, body = Vec<RegistrationToken>), (status = 403)))]
#[get("/api/v1/gateway-registry/tokens")]
pub async fn list_tokens(
    state: Data<AppState>,
    Admin(p): Admin,
) -> ApiResult<web::Json<Vec<RegistrationToken>>> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        registry::list_tokens(&*conn, p.organization.id).await?,
    ))
}

/// Revokes a registration token; gateways already registered keep their relay tokens.
#[utoipa::path(tag = "gateway-registry", security(("bearer" = [])), responses((status = 200, body = RegistrationToken), (status = 404)))]
#[delete("/api/v1/gateway-registry/tokens/{token_id}")]
pub async fn revoke_token(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<RegistrationToken>> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        registry::revoke_token(&*conn, p.organization.id, *id).await?,
    ))
}

/// Where gateways open their relay link: BASE_URL when set, else this request's host.
fn relay_ws_url(state: &AppState, req: &HttpRequest, gateway_id: Uuid) -> String {
    let path = format!("/ws/gateway/{gateway_id}/relay");
    match &state.settings.base_url {
        Some(base) => {
            let scheme = if base.scheme() == "https" {
                "wss"
            } else {
                "ws"
            };
            let host = base.host_str().unwrap_or_default();
            let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{scheme}://{host}{port}{}{path}",
                base.path().trim_end_matches('/')
            )
        }
        None => {
            let info = req.connection_info();
            let scheme = if info.scheme() == "https" {
                "wss"
            } else {
                "ws"
            };
            format!("{scheme}://{}{path}", info.host())
        }
    }
}

/// A gateway registers itself with an admin-issued registration token. Re-registering the
/// same name keeps the gateway id and rotates the relay token.
#[utoipa::path(tag = "gateway-registry", request_body = RegisterRequest, responses((status = 200, body = RegisterResponse), (status = 401), (status = 403), (status = 422)))]
#[post("/api/v1/gateway-registry/register")]
pub async fn register(
    req: HttpRequest,
    state: Data<AppState>,
    Json(body): Json<RegisterRequest>,
) -> ApiResult<web::Json<RegisterResponse>> {
    if !state.settings.gateway.registration_enabled {
        return Err(ApiError::status(
            StatusCode::FORBIDDEN,
            "Gateway registration is disabled.",
        ));
    }
    required("name", &body.name, 255)?;
    required("url", &body.url, 2048)?;
    required("workspace_root", &body.workspace_root, 4096)?;
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    let registered = registry::register(
        &tx,
        Registration {
            organization_id: body.organization_id,
            registration_token: &body.registration_token,
            name: body.name.trim(),
            url: body.url.trim(),
            workspace_root: body.workspace_root.trim(),
            version: body.version.as_deref(),
            capabilities: body.capabilities.as_deref(),
            instance_id: &state.settings.instance_id,
        },
    )
    .await?;
    tx.commit().await.map_err(DomainError::from)?;
    // The gateway-main agent was (re)provisioned.
    state.agents_changed(body.organization_id);
    tracing::info!(gateway_id = %registered.gateway_id, created = registered.created, "gateway registered");
    Ok(web::Json(RegisterResponse {
        gateway_id: registered.gateway_id,
        relay_ws_url: relay_ws_url(&state, &req, registered.gateway_id),
        relay_token: registered.relay_token,
        heartbeat_interval_seconds: state.settings.gateway.heartbeat_interval.as_secs(),
    }))
}

async fn authenticated(
    state: &AppState,
    gateway_id: Uuid,
    relay_token: &str,
) -> ApiResult<GatewayIdentity> {
    registry::verify_relay(&state.db, &state.memos.gateways, gateway_id, relay_token)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// A gateway's heartbeat, with its status and metrics.
#[utoipa::path(tag = "gateway-registry", request_body = HeartbeatRequest, responses((status = 200, body = HeartbeatResponse), (status = 401), (status = 422)))]
#[post("/api/v1/gateway-registry/heartbeat")]
pub async fn heartbeat(
    state: Data<AppState>,
    Json(body): Json<HeartbeatRequest>,
) -> ApiResult<web::Json<HeartbeatResponse>> {
    required("status", &body.status, 32)?;
    if body.metrics.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::validation(
            "dict_type",
            vec!["body".into(), "metrics".into()],
            "metrics must be an object",
            Value::Null,
        ));
    }
    let gateway = authenticated(&state, body.gateway_id, &body.relay_token).await?;
    let beat = registry::Beat {
        gateway,
        status: body.status.trim().to_string(),
        metrics: body.metrics,
    };
    match submit(&state.heartbeats, beat).await {
        Some(Ok(())) => {}
        Some(Err(why)) => return Err(DomainError::Unavailable(why).into()),
        None => return Err(DomainError::Unavailable("heartbeats stopped".into()).into()),
    }
    Ok(web::Json(HeartbeatResponse {
        ok: true,
        config_update: None,
    }))
}

/// A gateway going away on purpose.
#[utoipa::path(tag = "gateway-registry", request_body = DeregisterRequest, responses((status = 200, body = OkResponse), (status = 401)))]
#[delete("/api/v1/gateway-registry/deregister")]
pub async fn deregister(
    state: Data<AppState>,
    Json(body): Json<DeregisterRequest>,
) -> ApiResult<web::Json<OkResponse>> {
    // Checked before a connection is taken: a check that reads takes one of its own.
    let gateway = authenticated(&state, body.gateway_id, &body.relay_token).await?;
    let mut conn = state.db.get().await.map_err(DomainError::from)?;
    let tx = conn.transaction().await.map_err(DomainError::from)?;
    registry::heartbeat(
        &tx,
        &gateway,
        OFFLINE,
        None,
        "deregistered",
        &state.settings.instance_id,
    )
    .await?;
    tx.commit().await.map_err(DomainError::from)?;
    Ok(OkResponse::json())
}

/// The gateway's relay WebSocket (see docs/gateway-protocol.md).
#[utoipa::path(tag = "gateway-registry", responses((status = 101, description = "switching to the relay protocol")))]
#[get("/ws/gateway/{gateway_id}/relay")]
pub async fn relay(
    req: HttpRequest,
    stream: web::Payload,
    state: Data<AppState>,
    id: Path<Uuid>,
) -> Result<HttpResponse, actix_web::Error> {
    open_link(req, stream, &state, *id, false)
}

/// The reference's chat socket for gateways (M4): the relay link with the reference's frames
/// only (realtime.md §5.3), for adapters written for it; its chat takes the same stored,
/// routed path.
#[utoipa::path(tag = "gateway-registry", responses((status = 101, description = "switching to the reference's M4 chat protocol")))]
#[get("/ws/gateway/{gateway_id}/relay-m4")]
pub async fn relay_m4(
    req: HttpRequest,
    stream: web::Payload,
    state: Data<AppState>,
    id: Path<Uuid>,
) -> Result<HttpResponse, actix_web::Error> {
    open_link(req, stream, &state, *id, true)
}

fn open_link(
    req: HttpRequest,
    stream: web::Payload,
    state: &AppState,
    gateway_id: Uuid,
    m4: bool,
) -> Result<HttpResponse, actix_web::Error> {
    let peer = req
        .connection_info()
        .peer_addr()
        .unwrap_or("unknown")
        .to_string();
    let slot = ConnectionSlot::take(&state.sockets, state.settings.ws.max_connections);
    let outbox = Outbox::default();
    let link = GatewayLink::new(
        state.link_deps(),
        gateway_id,
        peer,
        slot,
        outbox.clone(),
        state.device.clone(),
    );
    let link = if m4 { link.reference_m4() } else { link };
    socket::start(link, outbox, &req, stream)
}

/// Whether the gateway's relay link is up, on any instance.
#[utoipa::path(tag = "gateways", security(("bearer" = [])), responses((status = 200, body = Connections), (status = 404)))]
#[get("/api/v1/gateways/{gateway_id}/connections")]
pub async fn connections(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<Connections>> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    registry::exists_in_org(&*conn, p.organization.id, *id).await?;
    let sessions = h5_chat::sessions_of_gateway(&*conn, *id, SESSIONS_SHOWN).await?;
    let link = state
        .presence
        .get(&gateway_presence(*id))
        .await
        .and_then(|v| serde_json::from_str::<Value>(&v).ok());
    Ok(web::Json(Connections {
        gateway_id: *id,
        is_connected: link.is_some(),
        active_connections: i64::from(link.is_some()),
        link,
        sessions,
    }))
}

/// The gateway's last reported metrics and its status history.
#[utoipa::path(tag = "gateways", security(("bearer" = [])), responses((status = 200, body = GatewayMetrics), (status = 404)))]
#[get("/api/v1/gateways/{gateway_id}/metrics")]
pub async fn metrics(
    state: Data<AppState>,
    Admin(p): Admin,
    id: Path<Uuid>,
) -> ApiResult<web::Json<GatewayMetrics>> {
    require_org_admin(&p.member)?;
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        registry::metrics(&*conn, p.organization.id, *id).await?,
    ))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(create_token)
        .service(list_tokens)
        .service(revoke_token)
        .service(register)
        .service(heartbeat)
        .service(deregister)
        .service(relay)
        .service(relay_m4)
        .service(connections)
        .service(metrics);
}
