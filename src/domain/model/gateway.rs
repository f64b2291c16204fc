//! Gateways (`GatewayRead`) and the lookups every gateway-facing area shares.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::board::Board;
use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::{DomainError, DomainResult};

/// What reads answer as `token` for a gateway that has one (written out in
/// `Gateway::COLUMNS` too).
pub const TOKEN_MASK: &str = "********";

crate::db::record! {
    /// `GatewayRead`. The stored token is never answered (the reference echoes it in
    /// plaintext): `token` is [`TOKEN_MASK`] when one is stored, else `null`, and
    /// `has_token` says the same. The console's edit form shows the mask and sends it back
    /// unchanged, which keeps the stored token (`gateways::crud`).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Gateway in "g" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub name: String,
        pub url: String,
        pub workspace_root: String,
        pub token: Option<String> = "CASE WHEN g.token IS NULL THEN NULL ELSE '********' END",
        pub has_token: bool = "(g.token IS NOT NULL)",
        pub status: String,
        pub last_heartbeat_at: Option<DateTime<Utc>>,
        pub auto_registered: bool,
        /// The operator connection of a gateway we dial (docs/gateway-protocol.md §8):
        /// `connecting`, `connected`, `pairing_required`, `auth_failed`,
        /// `protocol_mismatch`, `missing_scopes`, `unreachable` or `error`; `null` for a
        /// gateway that dials us.
        pub connection_state: Option<String>,
        /// The gateway's own words about the state.
        pub connection_message: Option<String>,
        pub connection_changed_at: Option<DateTime<Utc>>,
        /// While `pairing_required`: the gateway's request id, and the command that
        /// approves it on the gateway's host.
        pub pairing_request_id: Option<String>,
        pub pairing_command: Option<String> = "('openclaw devices approve ' || g.pairing_request_id)",
        pub gateway_version: Option<String>,
        pub gateway_protocol: Option<i32>,
        /// Requests recorded for the gateway and not answered yet: agent creates, updates
        /// and deletes wait here while it is unreachable (the reference answers 502
        /// instead). How each one ended is in the activity (`agent.*.direct` / `.failed`).
        pub pending_requests: i64 = "(SELECT count(*) FROM gateway_commands c WHERE c.gateway_id = g.id AND c.status IN ('pending', 'sent'))",
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
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
                "SELECT {} FROM gateways g WHERE g.id = $1 AND g.organization_id = $2{}",
                Gateway::COLUMNS,
                if lock { " FOR NO KEY UPDATE" } else { "" }
            ),
            &[&gateway_id, &organization_id],
        )
        .await?;
    Ok(row.as_ref().map(Gateway::from_row).transpose()?)
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
