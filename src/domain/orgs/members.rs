//! Memberships of an organization: roles (an owner is changed only by an owner, no one
//! grants a role above their own, the last owner stays) and per-board access.

use super::organizations::lock_organization;
use super::organizations::ERR_LAST_OWNER;
use super::organizations::OWNER;
use super::organizations::OWNER_RANK;
use super::organizations::ROLES;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::domain::model::{Member, Principal};
use crate::domain::support::access::{is_org_admin, require_org_admin, role_rank};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `OrganizationUserRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct MemberUser in "u" {
        pub id: Uuid,
        pub email: Option<String>,
        pub name: Option<String>,
        pub preferred_name: Option<String>,
    }
}

crate::db::record! {
    /// `OrganizationBoardAccessRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct BoardAccessRead in "a" {
        pub id: Uuid,
        pub board_id: Uuid,
        pub can_read: bool,
        pub can_write: bool,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `OrganizationMemberRead`. Unlike the reference, every answer carries the member's
/// per-board rows (the reference leaves them out of lists and of its write answers).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRead {
    #[serde(flatten)]
    pub member: Member,
    pub user: Option<MemberUser>,
    pub board_access: Vec<BoardAccessRead>,
}

/// `OrganizationMemberUpdate`: an absent or null role changes nothing.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberUpdate {
    #[serde(default)]
    pub role: Option<String>,
}

fn default_true() -> bool {
    true
}

pub(super) fn default_role() -> String {
    "member".into()
}

/// `OrganizationBoardAccessSpec`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct BoardAccessSpec {
    pub board_id: Uuid,
    #[serde(default = "default_true")]
    pub can_read: bool,
    #[serde(default)]
    pub can_write: bool,
}

/// `OrganizationMemberAccessUpdate`. Either all-boards flag makes the per-board rows
/// moot, so none are kept then (the same holds for invites).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MemberAccessUpdate {
    #[serde(default)]
    pub all_boards_read: bool,
    #[serde(default)]
    pub all_boards_write: bool,
    #[serde(default)]
    pub board_access: Vec<BoardAccessSpec>,
}

/// Membership columns, then the user's (`m` joined to `u`).
fn member_select() -> String {
    format!("{}, {}", Member::COLUMNS, MemberUser::COLUMNS)
}

fn member_read_from(row: &Row) -> Result<MemberRead, RowError> {
    Ok(MemberRead {
        member: Member::from_row(row)?,
        user: Some(MemberUser::from_row_at(row, Member::WIDTH)?),
        board_access: Vec::new(),
    })
}

/// The reference's role normalization (trimmed, lower case, empty = member), restricted
/// to the three roles it ranks.
pub(super) fn normalize_role(role: &str) -> DomainResult<String> {
    let normalized = role.trim().to_lowercase();
    let normalized = if normalized.is_empty() {
        default_role()
    } else {
        normalized
    };
    if !ROLES.contains(&normalized.as_str()) {
        return Err(DomainError::Unprocessable(json!([{
            "type": "literal_error",
            "loc": ["body", "role"],
            "msg": "Input should be 'member', 'admin' or 'owner'",
            "input": role,
            "ctx": {"expected": "'member', 'admin' or 'owner'"},
        }])));
    }
    Ok(normalized)
}

/// Owners are changed only by owners.
pub(super) fn check_may_manage(actor: &Member, target_role: &str) -> DomainResult<()> {
    if role_rank(target_role) == OWNER_RANK && role_rank(&actor.role) < OWNER_RANK {
        return Err(DomainError::forbidden("Only owners can change owners"));
    }
    Ok(())
}

/// No one grants a role above their own.
pub(super) fn check_may_grant(actor: &Member, role: &str) -> DomainResult<()> {
    if role_rank(role) > role_rank(&actor.role) {
        return Err(DomainError::forbidden(
            "You cannot grant a role above your own",
        ));
    }
    Ok(())
}

async fn owner_count(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<i64> {
    let row = client
        .query_one(
            "SELECT count(*) AS owners FROM organization_members WHERE organization_id = $1 AND role = $2",
            &[&organization_id, &OWNER],
        )
        .await?;
    Ok(get(&row, "owners")?)
}

/// The per-board rows of these members, by member.
async fn board_access_of(
    client: &impl GenericClient,
    member_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<BoardAccessRead>>> {
    let rows = client
        .query(
            &format!(
                "SELECT {}, a.organization_member_id \
                 FROM organization_board_access a WHERE a.organization_member_id = ANY($1) \
                 ORDER BY a.created_at, a.board_id",
                BoardAccessRead::COLUMNS
            ),
            &[&member_ids],
        )
        .await?;
    let mut by_member: HashMap<Uuid, Vec<BoardAccessRead>> = HashMap::new();
    for row in rows {
        by_member
            .entry(get(&row, "organization_member_id")?)
            .or_default()
            .push(BoardAccessRead::from_row(&row)?);
    }
    Ok(by_member)
}

/// The membership `member_id` of the organization with its user and board rows; another
/// organization's member is 404. `FOR NO KEY UPDATE` when about to change it.
pub(super) async fn find_member(
    client: &impl GenericClient,
    organization_id: Uuid,
    member_id: Uuid,
    for_update: bool,
) -> DomainResult<MemberRead> {
    let lock = if for_update {
        " FOR NO KEY UPDATE OF m"
    } else {
        ""
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT {} FROM organization_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.id = $1 AND m.organization_id = $2{lock}",
                member_select()
            ),
            &[&member_id, &organization_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let mut read = member_read_from(&row)?;
    read.board_access = board_access_of(client, &[read.member.id])
        .await?
        .remove(&read.member.id)
        .unwrap_or_default();
    Ok(read)
}

/// The members of the caller's organization by email, then name.
pub async fn list_members(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<MemberRead>> {
    let mut members = fetch_page(
        client,
        &member_select(),
        "FROM organization_members m JOIN users u ON u.id = m.user_id WHERE m.organization_id = $1",
        "lower(u.email), u.name, m.id",
        &[&principal.organization.id],
        page,
        member_read_from,
    )
    .await?;
    let ids: Vec<Uuid> = members.items.iter().map(|m| m.member.id).collect();
    let mut access = board_access_of(client, &ids).await?;
    for item in &mut members.items {
        item.board_access = access.remove(&item.member.id).unwrap_or_default();
    }
    Ok(members)
}

/// One member; a non-admin may read only their own membership.
pub async fn get_member(
    client: &impl GenericClient,
    principal: &Principal,
    member_id: Uuid,
) -> DomainResult<MemberRead> {
    let read = find_member(client, principal.organization.id, member_id, false).await?;
    if !is_org_admin(&principal.member) && read.member.user_id != principal.user.id {
        return Err(DomainError::forbidden("Forbidden"));
    }
    Ok(read)
}

/// The caller's own membership.
pub async fn my_membership(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<MemberRead> {
    find_member(
        client,
        principal.organization.id,
        principal.member.id,
        false,
    )
    .await
}

/// Changes a member's role (admins). Owners change owners, no one grants above their own
/// role, and the last owner keeps the role.
pub async fn update_member(
    client: &impl GenericClient,
    principal: &Principal,
    member_id: Uuid,
    update: MemberUpdate,
) -> DomainResult<MemberRead> {
    require_org_admin(&principal.member)?;
    let organization_id = principal.organization.id;
    lock_organization(client, organization_id).await?;
    let mut read = find_member(client, organization_id, member_id, true).await?;
    let Some(role) = update.role else {
        return Ok(read);
    };
    let role = normalize_role(&role)?;
    check_may_manage(&principal.member, &read.member.role)?;
    check_may_grant(&principal.member, &role)?;
    if role_rank(&read.member.role) == OWNER_RANK
        && role != OWNER
        && owner_count(client, organization_id).await? <= 1
    {
        return Err(DomainError::unprocessable(ERR_LAST_OWNER));
    }
    let row = client
        .query_one(
            "UPDATE organization_members SET role = $2, updated_at = now() WHERE id = $1 \
             RETURNING role, updated_at",
            &[&member_id, &role],
        )
        .await?;
    read.member.role = get(&row, "role")?;
    read.member.updated_at = get(&row, "updated_at")?;
    Ok(read)
}

/// Board access entries checked against the organization's boards (a foreign or unknown
/// board is 422 at its position) and merged by board, the last entry winning; write
/// access implies read.
pub(super) async fn checked_board_access(
    client: &impl GenericClient,
    organization_id: Uuid,
    entries: &[BoardAccessSpec],
) -> DomainResult<Vec<BoardAccessSpec>> {
    let ids: Vec<Uuid> = entries.iter().map(|e| e.board_id).collect();
    let found: Vec<Uuid> = client
        .query(
            "SELECT id FROM boards WHERE organization_id = $1 AND id = ANY($2)",
            &[&organization_id, &ids],
        )
        .await?
        .iter()
        .map(|r| get(r, "id"))
        .collect::<Result<_, _>>()?;
    if let Some((index, entry)) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| !found.contains(&e.board_id))
    {
        return Err(DomainError::Unprocessable(json!([{
            "type": "value_error",
            "loc": ["body", "board_access", index, "board_id"],
            "msg": "Value error, board is not in this organization",
            "input": entry.board_id,
        }])));
    }
    let mut merged: Vec<BoardAccessSpec> = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = BoardAccessSpec {
            can_read: entry.can_read || entry.can_write,
            ..entry.clone()
        };
        match merged.iter_mut().find(|m| m.board_id == entry.board_id) {
            Some(existing) => *existing = entry,
            None => merged.push(entry),
        }
    }
    Ok(merged)
}

/// Inserts rows of `(board_id, can_read, can_write)` into `table` for `owner_column` =
/// `owner_id`.
pub(super) async fn insert_board_rows(
    client: &impl GenericClient,
    table: &str,
    owner_column: &str,
    owner_id: Uuid,
    entries: &[BoardAccessSpec],
) -> DomainResult<()> {
    let boards: Vec<Uuid> = entries.iter().map(|e| e.board_id).collect();
    let reads: Vec<bool> = entries.iter().map(|e| e.can_read).collect();
    let writes: Vec<bool> = entries.iter().map(|e| e.can_write).collect();
    let params: [&(dyn ToSql + Sync); 4] = [&owner_id, &boards, &reads, &writes];
    client
        .execute(
            &format!(
                "INSERT INTO {table} (id, {owner_column}, board_id, can_read, can_write) \
                 SELECT gen_random_uuid(), $1, b, r, w FROM unnest($2::uuid[], $3::bool[], $4::bool[]) AS t(b, r, w)"
            ),
            &params,
        )
        .await?;
    Ok(())
}

/// Replaces a member's access (admins; an owner's only by owners).
pub async fn update_access(
    client: &impl GenericClient,
    principal: &Principal,
    member_id: Uuid,
    update: MemberAccessUpdate,
) -> DomainResult<MemberRead> {
    require_org_admin(&principal.member)?;
    let organization_id = principal.organization.id;
    lock_organization(client, organization_id).await?;
    let read = find_member(client, organization_id, member_id, true).await?;
    check_may_manage(&principal.member, &read.member.role)?;
    let entries = checked_board_access(client, organization_id, &update.board_access).await?;
    client
        .execute(
            "UPDATE organization_members SET all_boards_read = $2, all_boards_write = $3, updated_at = now() \
             WHERE id = $1",
            &[&member_id, &update.all_boards_read, &update.all_boards_write],
        )
        .await?;
    client
        .execute(
            "DELETE FROM organization_board_access WHERE organization_member_id = $1",
            &[&member_id],
        )
        .await?;
    if !(update.all_boards_read || update.all_boards_write) {
        insert_board_rows(
            client,
            "organization_board_access",
            "organization_member_id",
            member_id,
            &entries,
        )
        .await?;
    }
    find_member(client, organization_id, member_id, false).await
}

/// Removes a member (admins): not oneself, an owner only by an owner, never the last
/// owner. If it was the removed user's active organization, their oldest other
/// membership becomes active.
pub async fn remove_member(
    client: &impl GenericClient,
    principal: &Principal,
    member_id: Uuid,
) -> DomainResult<()> {
    require_org_admin(&principal.member)?;
    let organization_id = principal.organization.id;
    lock_organization(client, organization_id).await?;
    let target = find_member(client, organization_id, member_id, true)
        .await?
        .member;
    if target.user_id == principal.user.id {
        return Err(DomainError::forbidden(
            "You cannot remove yourself from the organization",
        ));
    }
    check_may_manage(&principal.member, &target.role)?;
    if role_rank(&target.role) == OWNER_RANK && owner_count(client, organization_id).await? <= 1 {
        return Err(DomainError::unprocessable(ERR_LAST_OWNER));
    }
    client
        .execute(
            "DELETE FROM organization_members WHERE id = $1",
            &[&member_id],
        )
        .await?;
    client
        .execute(
            "UPDATE users SET updated_at = now(), active_organization_id = \
               (SELECT organization_id FROM organization_members WHERE user_id = $1 ORDER BY created_at, id LIMIT 1) \
             WHERE id = $1 AND active_organization_id = $2",
            &[&target.user_id, &organization_id],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(role: &str) -> Member {
        Member {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            user_id: Uuid::nil(),
            role: role.into(),
            all_boards_read: false,
            all_boards_write: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn roles_are_normalized_and_limited_to_the_three_ranks() {
        assert_eq!(normalize_role(" Admin ").unwrap(), "admin");
        assert_eq!(normalize_role("").unwrap(), "member");
        assert!(matches!(
            normalize_role("superuser"),
            Err(DomainError::Unprocessable(_))
        ));
    }

    #[test]
    fn only_owners_manage_owners_and_no_one_grants_above_their_role() {
        assert!(check_may_manage(&member("admin"), "owner").is_err());
        assert!(check_may_manage(&member("admin"), "admin").is_ok());
        assert!(check_may_manage(&member("owner"), "owner").is_ok());
        assert!(check_may_grant(&member("admin"), "owner").is_err());
        assert!(check_may_grant(&member("admin"), "admin").is_ok());
        assert!(check_may_grant(&member("owner"), "owner").is_ok());
    }
}
