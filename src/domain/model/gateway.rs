//! Gateways (`GatewayRead`) and the lookups every gateway-facing area shares.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::board::Board;
use crate::domain::{DomainError, DomainResult};

/// `GatewayRead`. `token` is write-only here: it is always `null` on the wire and
/// `has_token` says whether one is stored (the reference echoes it in plaintext).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gateway {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub url: String,
    pub workspace_root: String,
    pub token: Option<String>,
    pub has_token: bool,
    pub status: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub auto_registered: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const GATEWAY_COLUMNS: &str =
    "g.id, g.organization_id, g.name, g.url, g.workspace_root, g.token IS NOT NULL, \
     g.status, g.last_heartbeat_at, g.auto_registered, g.created_at, g.updated_at";

impl Gateway {
    pub fn from_row(row: &Row) -> Gateway {
        Gateway {
            id: row.get(0),
            organization_id: row.get(1),
            name: row.get(2),
            url: row.get(3),
            workspace_root: row.get(4),
            token: None,
            has_token: row.get(5),
            status: row.get(6),
            last_heartbeat_at: row.get(7),
            auto_registered: row.get(8),
            created_at: row.get(9),
            updated_at: row.get(10),
        }
    }
}

/// The gateway with this id in this organization.
pub async fn find(
    client: &impl GenericClient,
    organization_id: Uuid,
    gateway_id: Uuid,
    lock: bool,
) -> DomainResult<Option<Gateway>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {GATEWAY_COLUMNS} FROM gateways g WHERE g.id = $1 AND g.organization_id = $2{}",
                if lock { " FOR UPDATE" } else { "" }
            ),
            &[&gateway_id, &organization_id],
        )
        .await?;
    Ok(row.as_ref().map(Gateway::from_row))
}

/// The board's gateway (the reference's `require_gateway_for_board`): 422 when the board
/// has none or it is gone.
pub async fn of_board(client: &impl GenericClient, board: &Board) -> DomainResult<Gateway> {
    let gateway_id = board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))?;
    find(client, board.organization_id, gateway_id, false)
        .await?
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is invalid"))
}
