//! Gateways (domain.md §A3, admin part): CRUD for org admins. This server never dials a
//! gateway (gateways connect to it), so there is no version check; creating or changing
//! a gateway records the provisioning intent of its gateway-main agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::orgs::accounts::Principal;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{agents::crud as agents, support::access, DomainError, DomainResult};

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

const GATEWAY_COLUMNS: &str =
    "g.id, g.organization_id, g.name, g.url, g.workspace_root, g.token IS NOT NULL, \
     g.status, g.last_heartbeat_at, g.auto_registered, g.created_at, g.updated_at";

impl Gateway {
    fn from_row(row: &Row) -> Gateway {
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

/// `GatewayCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GatewayCreate {
    pub name: String,
    pub url: String,
    pub workspace_root: String,
    #[serde(default)]
    pub token: Option<String>,
}

/// `GatewayUpdate`: absent fields stay; `null` (or a blank string) clears the token and
/// leaves the other fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GatewayUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::http::json::patch::field")]
    #[schema(value_type = Option<String>)]
    pub token: Option<Option<String>>,
    #[serde(default)]
    pub workspace_root: Option<String>,
}

/// Blank tokens are no token, as in the reference.
fn normalize_token(token: Option<String>) -> Option<String> {
    token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
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
pub async fn of_board(
    client: &impl GenericClient,
    board: &crate::domain::boards::crud::Board,
) -> DomainResult<Gateway> {
    let gateway_id = board
        .gateway_id
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is required"))?;
    find(client, board.organization_id, gateway_id, false)
        .await?
        .ok_or_else(|| DomainError::unprocessable("Board gateway_id is invalid"))
}

pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<Gateway>> {
    access::require_org_admin(&principal.member)?;
    let org = principal.organization.id;
    fetch_page(
        client,
        GATEWAY_COLUMNS,
        "FROM gateways g WHERE g.organization_id = $1",
        "g.created_at DESC, g.id",
        &[&org],
        page,
        Gateway::from_row,
    )
    .await
}

pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
) -> DomainResult<Gateway> {
    access::require_org_admin(&principal.member)?;
    find(client, principal.organization.id, gateway_id, false)
        .await?
        .ok_or_else(DomainError::not_found)
}

/// Creates the gateway and its gateway-main agent (status provisioning).
pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: GatewayCreate,
) -> DomainResult<Gateway> {
    access::require_org_admin(&principal.member)?;
    let id = Uuid::new_v4();
    let org = principal.organization.id;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO gateways AS g (id, organization_id, name, url, workspace_root, token) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {GATEWAY_COLUMNS}"
            ),
            &[
                &id,
                &org,
                &input.name,
                &input.url,
                &input.workspace_root,
                &normalize_token(input.token),
            ],
        )
        .await?;
    let gateway = Gateway::from_row(&row);
    agents::ensure_gateway_main(client, org, gateway.id, &gateway.name, "provision").await?;
    Ok(gateway)
}

/// Applies the change and re-ensures the gateway-main agent (status updating).
pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
    patch: GatewayUpdate,
) -> DomainResult<Gateway> {
    let org = principal.organization.id;
    let current = get_for_update(client, principal, gateway_id).await?;
    let token_given = patch.token.is_some();
    let row = client
        .query_one(
            &format!(
                "UPDATE gateways g SET name = $3, url = $4, workspace_root = $5, \
                   token = CASE WHEN $6 THEN $7 ELSE g.token END, updated_at = now() \
                 WHERE g.id = $1 AND g.organization_id = $2 RETURNING {GATEWAY_COLUMNS}"
            ),
            &[
                &current.id,
                &org,
                &patch.name.unwrap_or(current.name),
                &patch.url.unwrap_or(current.url),
                &patch.workspace_root.unwrap_or(current.workspace_root),
                &token_given,
                &normalize_token(patch.token.flatten()),
            ],
        )
        .await?;
    let gateway = Gateway::from_row(&row);
    agents::ensure_gateway_main(client, org, gateway.id, &gateway.name, "update").await?;
    Ok(gateway)
}

/// Deletes the gateway with its gateway-main agent(s). A gateway still used by boards is
/// refused (409): deleting it would silently delete those boards' agents.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
) -> DomainResult<Vec<agents::ReleasedTask>> {
    let gateway = get_for_update(client, principal, gateway_id).await?;
    let boards: i64 = client
        .query_one(
            "SELECT count(*) FROM boards WHERE gateway_id = $1",
            &[&gateway.id],
        )
        .await?
        .get(0);
    if boards > 0 {
        return Err(DomainError::conflict(
            "Gateway is used by boards; move or delete them first.",
        ));
    }
    let mut released = Vec::new();
    for row in client
        .query(
            "SELECT id FROM agents WHERE gateway_id = $1 FOR UPDATE",
            &[&gateway.id],
        )
        .await?
    {
        released.extend(
            agents::release_tasks(
                client,
                row.get(0),
                &crate::domain::tasks::rules::Actor::User(principal.user.id).reference(),
            )
            .await?,
        );
    }
    client
        .execute("DELETE FROM gateways WHERE id = $1", &[&gateway.id])
        .await?;
    Ok(released)
}

async fn get_for_update(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
) -> DomainResult<Gateway> {
    access::require_org_admin(&principal.member)?;
    find(client, principal.organization.id, gateway_id, true)
        .await?
        .ok_or_else(DomainError::not_found)
}
