//! Gateways (domain.md §A3, admin part): CRUD for org admins. This server never dials a
//! gateway (gateways connect to it), so there is no version check; creating or changing
//! a gateway records the provisioning intent of its gateway-main agent.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{self, Record};
use crate::db::GenericClient;
use crate::domain::model::gateway::{find, TOKEN_MASK};
use crate::domain::model::{Gateway, Principal};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{support::access, DomainError, DomainResult};

/// `GatewayCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GatewayCreate {
    pub name: String,
    pub url: String,
    pub workspace_root: String,
    #[serde(default)]
    pub token: Option<String>,
}

/// `GatewayUpdate`: absent fields stay. For `token`, `null` and the read mask also keep the
/// stored token (the console's edit form sends `null` or the mask when nobody retyped it),
/// a blank string clears it, anything else replaces it.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GatewayUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub token: Option<Option<String>>,
    #[serde(default)]
    pub workspace_root: Option<String>,
}

/// Blank tokens are no token, as in the reference; nor is the read mask.
fn normalize_token(token: Option<String>) -> Option<String> {
    token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t != TOKEN_MASK)
}

/// What a `GatewayUpdate.token` does: `None` keeps the stored token, `Some(t)` stores `t`
/// (`None` inside clears it).
fn token_change(token: Option<Option<String>>) -> Option<Option<String>> {
    match token.flatten() {
        None => None,
        Some(t) if t.trim() == TOKEN_MASK => None,
        Some(t) => Some(normalize_token(Some(t))),
    }
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
        Gateway::COLUMNS,
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
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {columns}",
                columns = Gateway::COLUMNS
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
    let gateway = Gateway::from_row(&row)?;
    crate::domain::agents::gateway_main::ensure_gateway_main(
        client,
        org,
        gateway.id,
        &gateway.name,
        "provision",
    )
    .await?;
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
    let token = token_change(patch.token);
    let row = client
        .query_one(
            &format!(
                "UPDATE gateways g SET name = $3, url = $4, workspace_root = $5, \
                   token = CASE WHEN $6 THEN $7 ELSE g.token END, updated_at = now() \
                 WHERE g.id = $1 AND g.organization_id = $2 RETURNING {columns}",
                columns = Gateway::COLUMNS
            ),
            &[
                &current.id,
                &org,
                &patch.name.unwrap_or(current.name),
                &patch.url.unwrap_or(current.url),
                &patch.workspace_root.unwrap_or(current.workspace_root),
                &token.is_some(),
                &token.flatten(),
            ],
        )
        .await?;
    let gateway = Gateway::from_row(&row)?;
    crate::domain::agents::gateway_main::ensure_gateway_main(
        client,
        org,
        gateway.id,
        &gateway.name,
        "update",
    )
    .await?;
    Ok(gateway)
}

/// Deletes the gateway with its gateway-main agent(s). A gateway still used by boards is
/// refused (409): deleting it would silently delete those boards' agents.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    gateway_id: Uuid,
) -> DomainResult<Vec<crate::domain::agents::removal::ReleasedTask>> {
    let gateway = get_for_update(client, principal, gateway_id).await?;
    let row = client
        .query_one(
            "SELECT count(*) AS boards FROM boards WHERE gateway_id = $1",
            &[&gateway.id],
        )
        .await?;
    let boards: i64 = record::get(&row, "boards")?;
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
            crate::domain::agents::removal::release_tasks(
                client,
                record::get(&row, "id")?,
                &crate::domain::model::Actor::User(principal.user.id).reference(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edit_forms_null_or_mask_keeps_the_token_and_blank_clears_it() {
        let some = |t: &str| Some(Some(t.to_string()));
        assert_eq!(token_change(None), None);
        assert_eq!(token_change(Some(None)), None);
        assert_eq!(token_change(some(TOKEN_MASK)), None);
        assert_eq!(token_change(some("  ")), Some(None));
        assert_eq!(token_change(some(" new ")), Some(Some("new".into())));
    }
}
