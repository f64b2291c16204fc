//! Organizations (domain.md §A1): creation, the active organization, deletion; the role
//! rules and the organization lock that `members` and `invites` share.
//!
//! Beyond the reference: an owner is changed (role, access, removal) only by an owner, no
//! one grants a role above their own, an organization never loses its last owner, roles
//! are one of member/admin/owner, and invite tokens are kept as SHA-256 only. Every
//! change to memberships takes the organization's row lock first, so two concurrent
//! demotions cannot both pass the last-owner check.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::model::{Organization, Principal, User};
use crate::domain::support::access::role_rank;
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};

pub(super) const OWNER: &str = "owner";
pub(super) const ROLES: [&str; 3] = ["member", "admin", OWNER];
pub(super) const OWNER_RANK: u8 = 2;
pub(super) const ERR_LAST_OWNER: &str = "Organization must have at least one owner";

/// `OrganizationCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganizationCreate {
    pub name: String,
}

/// `OrganizationActiveUpdate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OrganizationActiveUpdate {
    pub organization_id: Uuid,
}

/// Serializes membership changes of one organization (see the module note). NO KEY
/// UPDATE, so inserts that only reference the organization are not blocked.
pub(super) async fn lock_organization(
    client: &impl GenericClient,
    organization_id: Uuid,
) -> DomainResult<()> {
    client
        .execute(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            &[&organization_id],
        )
        .await?;
    Ok(())
}

/// Creates an organization; the caller becomes its owner with access to every board, and
/// it becomes their active one. A name is unique among the caller's own organizations
/// (the reference checks every tenant's names, which tells callers what others named theirs).
pub async fn create(
    client: &impl GenericClient,
    user: &User,
    input: OrganizationCreate,
) -> DomainResult<Organization> {
    let name = non_empty("name", &input.name)?;
    // Serializes this user's creates, so two at once cannot both pass the name check.
    client
        .execute(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&user.id],
        )
        .await?;
    let taken = client
        .query_opt(
            "SELECT 1 FROM organization_members m JOIN organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 AND lower(o.name) = lower($2)",
            &[&user.id, &name],
        )
        .await?;
    if taken.is_some() {
        return Err(DomainError::conflict(
            "You already belong to an organization with this name",
        ));
    }
    let row = client
        .query_one(
            &format!(
                "INSERT INTO organizations AS o (id, name) VALUES ($1, $2) RETURNING {columns}",
                columns = Organization::COLUMNS
            ),
            &[&Uuid::new_v4(), &name],
        )
        .await?;
    let organization = Organization::from_row(&row)?;
    client
        .execute(
            "INSERT INTO organization_members (id, organization_id, user_id, role, all_boards_read, all_boards_write) \
             VALUES ($1, $2, $3, $4, true, true)",
            &[&Uuid::new_v4(), &organization.id, &user.id, &OWNER],
        )
        .await?;
    client
        .execute(
            "UPDATE users SET active_organization_id = $2, updated_at = now() WHERE id = $1",
            &[&user.id, &organization.id],
        )
        .await?;
    Ok(organization)
}

/// Makes `organization_id` the user's active organization; they must be a member (403
/// "No org access" otherwise, whether or not it exists).
pub async fn set_active(
    client: &impl GenericClient,
    user_id: Uuid,
    organization_id: Uuid,
) -> DomainResult<Organization> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM organizations o \
                 JOIN organization_members m ON m.organization_id = o.id AND m.user_id = $1 \
                 WHERE o.id = $2",
                columns = Organization::COLUMNS
            ),
            &[&user_id, &organization_id],
        )
        .await?
        .ok_or_else(|| DomainError::forbidden("No org access"))?;
    client
        .execute(
            "UPDATE users SET active_organization_id = $2, updated_at = now() \
             WHERE id = $1 AND active_organization_id IS DISTINCT FROM $2",
            &[&user_id, &organization_id],
        )
        .await?;
    Ok(Organization::from_row(&row)?)
}

/// Deletes an organization and everything in it, by the schema's cascades. Its tasks go
/// first: a custom field definition is RESTRICTed while task values hold it, so they must
/// be gone before the cascade reaches the definitions, whatever order it takes. Members'
/// active organization is cleared by the schema; their next call picks another one.
async fn delete_tree(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<()> {
    client
        .execute(
            "DELETE FROM tasks WHERE organization_id = $1",
            &[&organization_id],
        )
        .await?;
    client
        .execute(
            "DELETE FROM organizations WHERE id = $1",
            &[&organization_id],
        )
        .await?;
    Ok(())
}

/// Deletes the caller's active organization (owners only).
pub async fn delete_active(client: &impl GenericClient, principal: &Principal) -> DomainResult<()> {
    if role_rank(&principal.member.role) < OWNER_RANK {
        return Err(DomainError::forbidden(
            "Only organization owners can delete organizations",
        ));
    }
    delete_tree(client, principal.organization.id).await
}

/// Before a user is deleted: organizations where they are the only member are deleted;
/// being the last owner of an organization that has other members is refused (422), as
/// it would leave those members without anyone able to manage it.
pub async fn release_memberships(client: &impl GenericClient, user_id: Uuid) -> DomainResult<()> {
    let rows = client
        .query(
            "SELECT o.id FROM organizations o JOIN organization_members m ON m.organization_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.id FOR NO KEY UPDATE OF o",
            &[&user_id],
        )
        .await?;
    for row in rows {
        let organization_id: Uuid = get(&row, "id")?;
        let counts = client
            .query_one(
                "SELECT count(*) AS members, count(*) FILTER (WHERE role = $2) AS owners, \
                        bool_or(user_id = $3 AND role = $2) AS is_owner \
                 FROM organization_members WHERE organization_id = $1",
                &[&organization_id, &OWNER, &user_id],
            )
            .await?;
        let members: i64 = get(&counts, "members")?;
        let owners: i64 = get(&counts, "owners")?;
        let is_owner: Option<bool> = get(&counts, "is_owner")?;
        if members <= 1 {
            delete_tree(client, organization_id).await?;
        } else if is_owner == Some(true) && owners <= 1 {
            return Err(DomainError::unprocessable(ERR_LAST_OWNER));
        }
    }
    Ok(())
}

/// The organization an operator names on the command line: its id, or its exact name
/// when exactly one organization has it (names are unique per user, not globally).
pub async fn named(client: &impl GenericClient, key: &str) -> Result<Uuid, String> {
    let by_id = key.parse::<Uuid>().ok();
    let rows = client
        .query(
            "SELECT id FROM organizations WHERE id = $1 OR ($1 IS NULL AND name = $2) LIMIT 2",
            &[&by_id, &key],
        )
        .await
        .map_err(|e| e.to_string())?;
    match rows.as_slice() {
        [one] => get(one, "id").map_err(|e| e.to_string()),
        [] => Err(format!("no organization {key:?}")),
        _ => Err(format!(
            "more than one organization is named {key:?}; give its id"
        )),
    }
}
