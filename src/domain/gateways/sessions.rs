//! The gateway views the reference proxies to a gateway (`/gateways/status`, `/sessions…`,
//! `/commands`) and its template sync: which gateway a call means, what its answers look
//! like, and what a sync asks of which agents.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Agent, Principal};
use crate::domain::outbox::commands::{Command, Target};
use crate::domain::outbox::provisioning::{self, SyncOptions};
use crate::domain::support::access::{self, Access};
use crate::domain::{DomainError, DomainResult};

/// Relay protocol revision reported by `/gateways/commands`.
pub const PROTOCOL_VERSION: i64 = 1;

/// Requests Mission Control sends over a relay link (`rpc.request` methods).
pub const METHODS: &[&str] = &[
    provisioning::CREATE,
    provisioning::UPDATE,
    provisioning::DELETE,
    provisioning::WRITE_FILE,
    provisioning::SYNC_TEMPLATES,
    LIST_SESSIONS,
    SESSION_HISTORY,
    SEND_TO_SESSION,
];

/// Frames a gateway sends on its relay link.
pub const EVENTS: &[&str] = &["heartbeat", "chat.reply", "rpc.result"];

pub const LIST_SESSIONS: &str = "sessions.list";
pub const SESSION_HISTORY: &str = "chat.history";
pub const SEND_TO_SESSION: &str = "sessions.send";

/// `?board_id=` (and, for the status, `gateway_url`/`gateway_token`).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct GatewayQuery {
    pub board_id: Option<String>,
    pub gateway_url: Option<String>,
    /// With `gateway_url`, for the status: the token to check the URL with (a gateway we
    /// dial is then dialled with it, as the console's gateway form asks).
    pub gateway_token: Option<String>,
}

/// The gateway a call is about.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: Target,
    pub gateway_url: String,
    pub main_session: String,
}

/// What a status check is about: a gateway of the organization (by board or URL), or a URL
/// no gateway of the organization has yet (the console's "new gateway" form).
pub enum StatusTarget {
    Registered { resolved: Resolved, dialled: bool },
    Unregistered(url::Url),
}

/// The status's target: the board's gateway, the organization's gateway at `gateway_url`,
/// or that URL alone.
pub async fn resolve_status(
    client: &impl GenericClient,
    principal: &Principal,
    query: &GatewayQuery,
) -> DomainResult<StatusTarget> {
    let url = query
        .gateway_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let by_board = query
        .board_id
        .as_deref()
        .is_some_and(|b| !b.trim().is_empty());
    let Some(raw) = url.filter(|_| !by_board) else {
        let resolved = resolve(client, principal, query, Access::Read).await?;
        let dialled = is_dialled(client, resolved.target.gateway_id).await?;
        return Ok(StatusTarget::Registered { resolved, dialled });
    };
    access::require_org_admin(&principal.member)?;
    let parsed = super::urls::gateway_url(raw)?;
    let row = client
        .query_opt(
            "SELECT id, url FROM gateways WHERE organization_id = $1 AND (url = $2 OR url = $3)
              ORDER BY created_at LIMIT 1",
            &[&principal.organization.id, &raw, &parsed.as_str()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(StatusTarget::Unregistered(parsed));
    };
    let gateway_id: Uuid = get(&row, "id")?;
    let resolved = Resolved {
        target: Target {
            organization_id: principal.organization.id,
            gateway_id,
            agent_id: None,
            board_id: None,
        },
        gateway_url: get(&row, "url")?,
        main_session: crate::domain::model::agent::gateway_main_session_key(gateway_id),
    };
    let dialled = is_dialled(client, gateway_id).await?;
    Ok(StatusTarget::Registered { resolved, dialled })
}

async fn is_dialled(client: &impl GenericClient, gateway_id: Uuid) -> DomainResult<bool> {
    let row = client
        .query_one(
            &format!(
                "SELECT {} AS dialled FROM gateways g WHERE g.id = $1",
                super::dialing::DIALLED
            ),
            &[&gateway_id],
        )
        .await?;
    Ok(get(&row, "dialled")?)
}

/// The board's gateway (the caller needs read access to the board).
pub async fn resolve(
    client: &impl GenericClient,
    principal: &Principal,
    query: &GatewayQuery,
    access: Access,
) -> DomainResult<Resolved> {
    access::require_org_admin(&principal.member)?;
    let board_id = query
        .board_id
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    let row = match board_id {
        Some(board_id) => {
            let board_id: Uuid = board_id
                .parse()
                .map_err(|_| DomainError::NotFound(serde_json::json!("Board not found")))?;
            let board = access::board_for_user(client, principal, board_id, access).await?;
            let gateway_id = board
                .gateway_id
                .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))?;
            client
                .query_opt(
                    "SELECT id, url, $2::uuid AS board_id FROM gateways WHERE id = $1",
                    &[&gateway_id, &Some(board.id)],
                )
                .await?
        }
        None => {
            return Err(DomainError::unprocessable(
                "board_id or gateway_url is required",
            ))
        }
    };
    let row = row.ok_or_else(|| DomainError::NotFound(serde_json::json!("Gateway not found")))?;
    let gateway_id: Uuid = get(&row, "id")?;
    Ok(Resolved {
        target: Target {
            organization_id: principal.organization.id,
            gateway_id,
            agent_id: None,
            board_id: get(&row, "board_id")?,
        },
        gateway_url: get(&row, "url")?,
        main_session: crate::domain::model::agent::gateway_main_session_key(gateway_id),
    })
}

/// A `sessions.list` answer: `{"sessions": [...]}` or the list itself; objects only.
pub fn sessions_of(answer: &Value) -> Vec<Value> {
    list_in(answer, "sessions")
        .into_iter()
        .filter(Value::is_object)
        .collect()
}

/// A `chat.history` answer: `{"messages": [...]}` or the list itself.
pub fn history_of(answer: &Value) -> Vec<Value> {
    list_in(answer, "messages")
}

fn list_in(answer: &Value, key: &str) -> Vec<Value> {
    match answer {
        Value::Array(items) => items.clone(),
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The session with this key.
pub fn find_session<'a>(sessions: &'a [Value], key: &str) -> Option<&'a Value> {
    sessions
        .iter()
        .find(|s| s.get("key").and_then(Value::as_str) == Some(key))
}

/// `GatewaysStatusResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayStatus {
    pub connected: bool,
    pub gateway_url: String,
    pub sessions_count: Option<usize>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub sessions: Option<Vec<Value>>,
    #[schema(value_type = Option<Object>)]
    pub main_session: Option<Value>,
    pub main_session_error: Option<String>,
    pub error: Option<String>,
}

impl GatewayStatus {
    pub fn unreachable(gateway_url: &str, error: String) -> GatewayStatus {
        GatewayStatus {
            connected: false,
            gateway_url: gateway_url.to_string(),
            sessions_count: None,
            sessions: None,
            main_session: None,
            main_session_error: None,
            error: Some(error),
        }
    }

    /// `main_session`: the key of the gateway's main agent session, when the gateway is ours.
    pub fn connected(
        gateway_url: &str,
        main_session: Option<&str>,
        sessions: Vec<Value>,
    ) -> GatewayStatus {
        let main_session_key = main_session;
        let main_session = main_session_key.and_then(|key| find_session(&sessions, key).cloned());
        let main_session_error = main_session_key
            .filter(|_| main_session.is_none())
            .map(|key| format!("The gateway has no session {key}."));
        GatewayStatus {
            connected: true,
            gateway_url: gateway_url.to_string(),
            sessions_count: Some(sessions.len()),
            sessions: Some(sessions),
            main_session,
            main_session_error,
            error: None,
        }
    }
}

/// `POST /gateways/{id}/templates/sync` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SyncQuery {
    #[serde(default = "yes")]
    pub include_main: bool,
    #[serde(default)]
    pub lead_only: bool,
    #[serde(default)]
    pub reset_sessions: bool,
    #[serde(default)]
    pub rotate_tokens: bool,
    #[serde(default)]
    pub force_bootstrap: bool,
    #[serde(default)]
    pub overwrite: bool,
    pub board_id: Option<Uuid>,
}

fn yes() -> bool {
    true
}

/// `GatewayTemplatesSyncResult`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResult {
    pub gateway_id: Uuid,
    pub include_main: bool,
    pub reset_sessions: bool,
    /// Board agents whose sync was requested.
    pub agents_updated: usize,
    /// Board agents left out by `lead_only`.
    pub agents_skipped: usize,
    pub main_updated: bool,
    pub errors: Vec<SyncError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncError {
    pub agent_id: Option<Uuid>,
    pub agent_name: Option<String>,
    pub board_id: Option<Uuid>,
    pub message: String,
}

/// Records one `agents.templates.sync` request per selected agent of the gateway (they go
/// out when its link is up).
pub async fn sync_templates(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
    query: &SyncQuery,
) -> DomainResult<SyncResult> {
    let gateway = crate::domain::gateways::crud::get(client, principal, gateway_id).await?;
    if let Some(board_id) = query.board_id {
        let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
        if board.gateway_id != Some(gateway.id) {
            return Err(DomainError::unprocessable(
                "board_id does not belong to this gateway",
            ));
        }
    }
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM agents a WHERE a.gateway_id = $1
                   AND (a.board_id IS NULL OR $2::uuid IS NULL OR a.board_id = $2)
                 ORDER BY a.board_id NULLS FIRST, a.created_at, a.id",
                Agent::COLUMNS
            ),
            &[&gateway.id, &query.board_id],
        )
        .await?;
    let options = SyncOptions {
        reset_session: query.reset_sessions,
        rotate_token: query.rotate_tokens,
        force_bootstrap: query.force_bootstrap,
        overwrite: query.overwrite,
    };
    let mut result = SyncResult {
        gateway_id: gateway.id,
        include_main: query.include_main,
        reset_sessions: query.reset_sessions,
        agents_updated: 0,
        agents_skipped: 0,
        main_updated: false,
        errors: Vec::new(),
    };
    for row in &rows {
        let agent = Agent::from_row(row)?;
        let is_main = agent.board_id.is_none();
        if is_main && !query.include_main {
            continue;
        }
        if !is_main && query.lead_only && !agent.is_board_lead {
            result.agents_skipped += 1;
            continue;
        }
        let _: Command =
            provisioning::sync_templates(client, principal.organization.id, &agent, options)
                .await?;
        if is_main {
            result.main_updated = true;
        } else {
            result.agents_updated += 1;
        }
    }
    Ok(result)
}
