//! Gateways we dial (OpenClaw's operator protocol, docs/gateway-protocol.md §8): which are
//! dialled, which instance holds each one's connection (a lease), the deployment's device
//! key, and what each connection is doing (the state an admin sees).
//!
//! A gateway is dialled when it has a `ws://` or `wss://` URL and no relay credential: an
//! admin created it by URL and token. A gateway that registered itself (even one an admin
//! created first) keeps its relay link instead: it dials us.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::registry::{self, GatewayIdentity, OFFLINE, ONLINE};
use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::support::activity::{self, NewActivity};
use crate::domain::DomainResult;

/// The SQL test for "we dial this gateway" (alias `g`).
pub(super) const DIALLED: &str =
    "g.relay_token_hash IS NULL AND (g.url LIKE 'ws://%' OR g.url LIKE 'wss://%')";

/// The deployment's device seed kept in PostgreSQL: the first instance that asks stores
/// `generated`, every later one reads that (GATEWAY_DEVICE_KEY, when set, replaces this).
pub async fn device_seed(client: &impl GenericClient, generated: &[u8]) -> DomainResult<Vec<u8>> {
    client
        .execute(
            "INSERT INTO gateway_device_identity (seed) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&generated],
        )
        .await?;
    let row = client
        .query_one("SELECT seed FROM gateway_device_identity", &[])
        .await?;
    Ok(get(&row, "seed")?)
}

crate::db::record! {
    /// What a connection to a dialled gateway needs.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct DialTarget in "g" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub url: String,
        pub workspace_root: String,
        pub token: Option<String>,
        pub device_token: Option<String>,
    }
}

/// What a connector's tunnel dials for its gateway: the gateway's row, with the local
/// gateway's shared token the connector handed over (it is kept nowhere else).
pub async fn tunnel_target(
    client: &impl GenericClient,
    gateway_id: Uuid,
    token: Option<String>,
) -> DomainResult<Option<DialTarget>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM gateways g WHERE g.id = $1",
                DialTarget::COLUMNS
            ),
            &[&gateway_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(DialTarget {
        token,
        ..DialTarget::from_row(&row)?
    }))
}

/// Renews this instance's leases and takes those of dialled gateways that nobody holds (or
/// whose holder stopped renewing), at most `take` new ones per call so that instances
/// starting together share the gateways. Returns every gateway this instance now holds.
pub async fn hold_leases(
    client: &impl GenericClient,
    instance_id: &str,
    ttl: Duration,
    take: i64,
) -> DomainResult<Vec<DialTarget>> {
    let ttl = ttl.as_secs_f64();
    client
        .execute(
            "UPDATE gateway_leases SET expires_at = now() + make_interval(secs => $2)
              WHERE instance_id = $1",
            &[&instance_id, &ttl],
        )
        .await?;
    client
        .execute(
            &format!(
                "INSERT INTO gateway_leases AS l (gateway_id, instance_id, expires_at)
                 SELECT g.id, $1, now() + make_interval(secs => $2) FROM gateways g
                  LEFT JOIN gateway_leases held ON held.gateway_id = g.id
                  WHERE {DIALLED} AND (held.gateway_id IS NULL OR held.expires_at < now())
                  ORDER BY g.created_at LIMIT $3
                 ON CONFLICT (gateway_id) DO UPDATE SET instance_id = EXCLUDED.instance_id,
                        expires_at = EXCLUDED.expires_at, taken_at = now()
                  WHERE l.expires_at < now()"
            ),
            &[&instance_id, &ttl, &take],
        )
        .await?;
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM gateways g JOIN gateway_leases l ON l.gateway_id = g.id
                  WHERE l.instance_id = $1 AND {DIALLED}",
                DialTarget::COLUMNS
            ),
            &[&instance_id],
        )
        .await?;
    Ok(DialTarget::from_rows(&rows)?)
}

/// Gives up the lease (shutdown, a gateway no longer dialled), so another instance takes
/// the gateway at once instead of after the lease expires.
pub async fn release_lease(
    client: &impl GenericClient,
    gateway_id: Option<Uuid>,
    instance_id: &str,
) -> DomainResult<()> {
    client
        .execute(
            "DELETE FROM gateway_leases WHERE instance_id = $1 AND ($2::uuid IS NULL OR gateway_id = $2)",
            &[&instance_id, &gateway_id],
        )
        .await?;
    Ok(())
}

/// What a connection is doing, as an admin sees it on the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    PairingRequired,
    AuthFailed,
    ProtocolMismatch,
    MissingScopes,
    Unreachable,
    Error,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::PairingRequired => "pairing_required",
            ConnectionState::AuthFailed => "auth_failed",
            ConnectionState::ProtocolMismatch => "protocol_mismatch",
            ConnectionState::MissingScopes => "missing_scopes",
            ConnectionState::Unreachable => "unreachable",
            ConnectionState::Error => "error",
        }
    }
}

/// One report of a connection: its state, the gateway's own words, and what it told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub state: ConnectionState,
    pub message: Option<String>,
    pub pairing_request_id: Option<String>,
    pub protocol: Option<i32>,
    pub version: Option<String>,
}

impl Report {
    pub fn new(state: ConnectionState, message: Option<String>) -> Report {
        Report {
            state,
            message,
            pairing_request_id: None,
            protocol: None,
            version: None,
        }
    }
}

/// The command an operator runs on the gateway's host to approve our device.
pub fn approve_command(request_id: &str) -> String {
    format!("openclaw devices approve {request_id}")
}

/// Records the report. A change of state is an activity event (pairing requests, refused
/// tokens and protocol mismatches must be seen, not read as "offline"), and connected /
/// lost move the gateway's `status` like a heartbeat.
pub async fn report(
    client: &impl GenericClient,
    gateway: &GatewayIdentity,
    report: &Report,
    instance_id: &str,
) -> DomainResult<()> {
    let row = client
        .query_opt(
            "WITH old AS (SELECT connection_state, connection_message, pairing_request_id
                            FROM gateways WHERE id = $1 FOR NO KEY UPDATE)
             UPDATE gateways g SET connection_state = $2, connection_message = $3,
                    pairing_request_id = $4,
                    gateway_protocol = COALESCE($5, g.gateway_protocol),
                    gateway_version = COALESCE($6, g.gateway_version),
                    connection_changed_at = CASE WHEN old.connection_state IS DISTINCT FROM $2
                                                 THEN now() ELSE g.connection_changed_at END
               FROM old WHERE g.id = $1
             RETURNING old.connection_state IS DISTINCT FROM $2
                       OR old.pairing_request_id IS DISTINCT FROM $4 AS changed",
            &[
                &gateway.id,
                &report.state.as_str(),
                &report.message,
                &report.pairing_request_id,
                &report.protocol,
                &report.version,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let changed: bool = get(&row, "changed")?;
    let status = match report.state {
        ConnectionState::Connected => ONLINE,
        ConnectionState::Connecting => return Ok(()),
        _ => OFFLINE,
    };
    registry::heartbeat(
        client,
        gateway,
        status,
        None,
        "operator connection",
        instance_id,
    )
    .await?;
    if changed && report.state != ConnectionState::Connected {
        activity::record(
            client,
            NewActivity {
                organization_id: gateway.organization_id,
                board_id: None,
                event_type: &format!("gateway.connection.{}", report.state.as_str()),
                message: Some(describe(report)),
                agent_id: None,
                task_id: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// A sign of life of a connected gateway (it answered a tick or a call).
pub async fn alive(
    client: &impl GenericClient,
    gateway: &GatewayIdentity,
    instance_id: &str,
) -> DomainResult<()> {
    registry::heartbeat(
        client,
        gateway,
        ONLINE,
        None,
        "operator connection",
        instance_id,
    )
    .await
}

fn describe(report: &Report) -> String {
    let said = report.message.as_deref().unwrap_or("no details");
    match (&report.state, &report.pairing_request_id) {
        (ConnectionState::PairingRequired, Some(request)) => format!(
            "Gateway pairing required: approve request {request} on the gateway host (`{}`). {said}",
            approve_command(request)
        ),
        (state, _) => format!("Gateway connection {}: {said}", state.as_str()),
    }
}

pub async fn keep_device_token(
    client: &impl GenericClient,
    gateway_id: Uuid,
    device_token: &str,
) -> DomainResult<()> {
    client
        .execute(
            "UPDATE gateways SET device_token = $2 WHERE id = $1",
            &[&gateway_id, &device_token],
        )
        .await?;
    Ok(())
}

/// A device token the gateway no longer accepts: the next connect uses the shared token.
pub async fn forget_device_token(
    client: &impl GenericClient,
    gateway_id: Uuid,
) -> DomainResult<()> {
    client
        .execute(
            "UPDATE gateways SET device_token = NULL WHERE id = $1",
            &[&gateway_id],
        )
        .await?;
    Ok(())
}

/// Where a message to one of our agents goes on this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTarget {
    /// The gateway's name for the agent: the `<agentId>` of its session key
    /// `agent:<agentId>:main` (`mc-<uuid>`, `lead-<board>`, `mc-gateway-<gateway>`).
    Ready(String),
    /// A request that creates or re-provisions the agent is still open: the message waits
    /// for it (sent before, it would reach an agent the gateway does not have yet).
    Provisioning,
    /// The agent is not on this gateway (any more).
    Missing,
}

pub async fn chat_target(
    client: &impl GenericClient,
    gateway_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<ChatTarget> {
    let row = client
        .query_opt(
            "SELECT a.openclaw_session_id, EXISTS (
                    SELECT 1 FROM gateway_commands c WHERE c.gateway_id = $2 AND c.agent_id = $1
                       AND c.status IN ('pending', 'sent')
                       AND c.method IN ('agents.create', 'agents.update', 'agents.templates.sync')
                    ) AS provisioning
               FROM agents a WHERE a.id = $1 AND a.gateway_id = $2",
            &[&agent_id, &gateway_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(ChatTarget::Missing);
    };
    if get(&row, "provisioning")? {
        return Ok(ChatTarget::Provisioning);
    }
    let key: Option<String> = get(&row, "openclaw_session_id")?;
    Ok(key
        .as_deref()
        .and_then(crate::protocol::openclaw::agent_of_session)
        .map_or(ChatTarget::Missing, |agent| {
            ChatTarget::Ready(agent.to_string())
        }))
}
