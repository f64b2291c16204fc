//! Organizations, memberships, invites and per-board access (domain.md §A1).
//!
//! Beyond the reference: an owner is changed (role, access, removal) only by an owner, no
//! one grants a role above their own, an organization never loses its last owner, roles
//! are one of member/admin/owner, and invite tokens are kept as SHA-256 only. Every
//! change to memberships takes the organization's row lock first, so two concurrent
//! demotions cannot both pass the last-owner check.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens;
use crate::domain::model::account::{
    member_at, organization_at, MEMBER_COLUMNS, ORGANIZATION_COLUMNS,
};
use crate::domain::model::{Member, Organization, Principal, User};
use crate::domain::support::access::{is_org_admin, require_org_admin, role_rank};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};

const OWNER: &str = "owner";
const ROLES: [&str; 3] = ["member", "admin", OWNER];
const OWNER_RANK: u8 = 2;
const ERR_LAST_OWNER: &str = "Organization must have at least one owner";

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

/// `OrganizationUserRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberUser {
    pub id: Uuid,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_name: Option<String>,
}

/// `OrganizationBoardAccessRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardAccessRead {
    pub id: Uuid,
    pub board_id: Uuid,
    pub can_read: bool,
    pub can_write: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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

fn default_role() -> String {
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

/// `OrganizationInviteCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteCreate {
    pub invited_email: String,
    #[serde(default = "default_role")]
    pub role: String,
    #[serde(default)]
    pub all_boards_read: bool,
    #[serde(default)]
    pub all_boards_write: bool,
    #[serde(default)]
    pub board_access: Vec<BoardAccessSpec>,
}

/// `OrganizationInviteRead`. Only the token's hash is stored, so `token` is the secret in
/// the answer to the create call and empty everywhere else.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteRead {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub invited_email: String,
    pub role: String,
    pub all_boards_read: bool,
    pub all_boards_write: bool,
    pub token: String,
    pub created_by_user_id: Option<Uuid>,
    pub accepted_by_user_id: Option<Uuid>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `OrganizationInviteAccept`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteAccept {
    pub token: String,
}

const INVITE_COLUMNS: &str =
    "i.id, i.organization_id, i.invited_email, i.role, i.all_boards_read, i.all_boards_write, \
     i.created_by_user_id, i.accepted_by_user_id, i.accepted_at, i.created_at, i.updated_at";

fn invite_from(row: &Row) -> InviteRead {
    InviteRead {
        id: row.get(0),
        organization_id: row.get(1),
        invited_email: row.get(2),
        role: row.get(3),
        all_boards_read: row.get(4),
        all_boards_write: row.get(5),
        token: String::new(),
        created_by_user_id: row.get(6),
        accepted_by_user_id: row.get(7),
        accepted_at: row.get(8),
        created_at: row.get(9),
        updated_at: row.get(10),
    }
}

/// Membership columns, then the user's (`m` joined to `u`).
fn member_select() -> String {
    format!("{MEMBER_COLUMNS}, u.id, u.email, u.name, u.preferred_name")
}

fn member_read_from(row: &Row) -> MemberRead {
    MemberRead {
        member: member_at(row, 0),
        user: Some(MemberUser {
            id: row.get(8),
            email: row.get(9),
            name: row.get(10),
            preferred_name: row.get(11),
        }),
        board_access: Vec::new(),
    }
}

/// The reference's role normalization (trimmed, lower case, empty = member), restricted
/// to the three roles it ranks.
fn normalize_role(role: &str) -> DomainResult<String> {
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

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Owners are changed only by owners.
fn check_may_manage(actor: &Member, target_role: &str) -> DomainResult<()> {
    if role_rank(target_role) == OWNER_RANK && role_rank(&actor.role) < OWNER_RANK {
        return Err(DomainError::forbidden("Only owners can change owners"));
    }
    Ok(())
}

/// No one grants a role above their own.
fn check_may_grant(actor: &Member, role: &str) -> DomainResult<()> {
    if role_rank(role) > role_rank(&actor.role) {
        return Err(DomainError::forbidden(
            "You cannot grant a role above your own",
        ));
    }
    Ok(())
}

/// Serializes membership changes of one organization (see the module note). NO KEY
/// UPDATE, so inserts that only reference the organization are not blocked.
async fn lock_organization(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<()> {
    client
        .execute(
            "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE",
            &[&organization_id],
        )
        .await?;
    Ok(())
}

async fn owner_count(client: &impl GenericClient, organization_id: Uuid) -> DomainResult<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM organization_members WHERE organization_id = $1 AND role = $2",
            &[&organization_id, &OWNER],
        )
        .await?
        .get(0))
}

/// The per-board rows of these members, by member.
async fn board_access_of(
    client: &impl GenericClient,
    member_ids: &[Uuid],
) -> DomainResult<HashMap<Uuid, Vec<BoardAccessRead>>> {
    let rows = client
        .query(
            "SELECT organization_member_id, id, board_id, can_read, can_write, created_at, updated_at \
             FROM organization_board_access WHERE organization_member_id = ANY($1) \
             ORDER BY created_at, board_id",
            &[&member_ids],
        )
        .await?;
    let mut by_member: HashMap<Uuid, Vec<BoardAccessRead>> = HashMap::new();
    for row in rows {
        by_member
            .entry(row.get(0))
            .or_default()
            .push(BoardAccessRead {
                id: row.get(1),
                board_id: row.get(2),
                can_read: row.get(3),
                can_write: row.get(4),
                created_at: row.get(5),
                updated_at: row.get(6),
            });
    }
    Ok(by_member)
}

/// The membership `member_id` of the organization with its user and board rows; another
/// organization's member is 404. `FOR UPDATE` when about to change it.
async fn find_member(
    client: &impl GenericClient,
    organization_id: Uuid,
    member_id: Uuid,
    for_update: bool,
) -> DomainResult<MemberRead> {
    let lock = if for_update { " FOR UPDATE OF m" } else { "" };
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
    let mut read = member_read_from(&row);
    read.board_access = board_access_of(client, &[read.member.id])
        .await?
        .remove(&read.member.id)
        .unwrap_or_default();
    Ok(read)
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
                "INSERT INTO organizations AS o (id, name) VALUES ($1, $2) RETURNING {ORGANIZATION_COLUMNS}"
            ),
            &[&Uuid::new_v4(), &name],
        )
        .await?;
    let organization = organization_at(&row, 0);
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
                "SELECT {ORGANIZATION_COLUMNS} FROM organizations o \
                 JOIN organization_members m ON m.organization_id = o.id AND m.user_id = $1 \
                 WHERE o.id = $2"
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
    Ok(organization_at(&row, 0))
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
        let organization_id: Uuid = row.get(0);
        let counts = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE role = $2), \
                        bool_or(user_id = $3 AND role = $2) \
                 FROM organization_members WHERE organization_id = $1",
                &[&organization_id, &OWNER, &user_id],
            )
            .await?;
        let (members, owners, is_owner): (i64, i64, Option<bool>) =
            (counts.get(0), counts.get(1), counts.get(2));
        if members <= 1 {
            delete_tree(client, organization_id).await?;
        } else if is_owner == Some(true) && owners <= 1 {
            return Err(DomainError::unprocessable(ERR_LAST_OWNER));
        }
    }
    Ok(())
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
    read.member.role = row.get(0);
    read.member.updated_at = row.get(1);
    Ok(read)
}

/// Board access entries checked against the organization's boards (a foreign or unknown
/// board is 422 at its position) and merged by board, the last entry winning; write
/// access implies read.
async fn checked_board_access(
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
        .map(|r| r.get(0))
        .collect();
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
async fn insert_board_rows(
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

/// Pending invites of the caller's organization, newest first (admins).
pub async fn list_invites(
    client: &impl GenericClient,
    principal: &Principal,
    page: PageParams,
) -> DomainResult<Page<InviteRead>> {
    require_org_admin(&principal.member)?;
    fetch_page(
        client,
        INVITE_COLUMNS,
        "FROM organization_invites i WHERE i.organization_id = $1 AND i.accepted_at IS NULL",
        "i.created_at DESC, i.id",
        &[&principal.organization.id],
        page,
        invite_from,
    )
    .await
}

/// Invites an email address (admins); the answer carries the token, the only time it is
/// shown. An email that already belongs to a member is 409.
pub async fn create_invite(
    client: &impl GenericClient,
    principal: &Principal,
    input: InviteCreate,
) -> DomainResult<InviteRead> {
    require_org_admin(&principal.member)?;
    let email = normalize_email(&non_empty("invited_email", &input.invited_email)?);
    let role = normalize_role(&input.role)?;
    check_may_grant(&principal.member, &role)?;
    let organization_id = principal.organization.id;
    let entries = checked_board_access(client, organization_id, &input.board_access).await?;
    let member = client
        .query_opt(
            "SELECT 1 FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 AND lower(u.email) = $2",
            &[&organization_id, &email],
        )
        .await?;
    if member.is_some() {
        return Err(DomainError::conflict(
            "This email already belongs to a member of the organization",
        ));
    }
    let token = tokens::random();
    let all_read = input.all_boards_read;
    let all_write = input.all_boards_write;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO organization_invites AS i (id, organization_id, invited_email, token_hash, role, \
                   all_boards_read, all_boards_write, created_by_user_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {INVITE_COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &organization_id,
                &email,
                &tokens::sha256_hex(&token),
                &role,
                &all_read,
                &all_write,
                &principal.user.id,
            ],
        )
        .await?;
    let invite = InviteRead {
        token,
        ..invite_from(&row)
    };
    if !(all_read || all_write) {
        insert_board_rows(
            client,
            "organization_invite_board_access",
            "organization_invite_id",
            invite.id,
            &entries,
        )
        .await?;
    }
    Ok(invite)
}

/// Deletes an invite of the caller's organization (admins) and answers it.
pub async fn revoke_invite(
    client: &impl GenericClient,
    principal: &Principal,
    invite_id: Uuid,
) -> DomainResult<InviteRead> {
    require_org_admin(&principal.member)?;
    let row = client
        .query_opt(
            &format!(
                "DELETE FROM organization_invites i WHERE i.id = $1 AND i.organization_id = $2 \
                 RETURNING {INVITE_COLUMNS}"
            ),
            &[&invite_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(invite_from(&row))
}

/// Applies a pending invite (locked by the caller) to `user_id`: a new membership with
/// the invite's role and access, or, for a member already, the higher of the two roles
/// and the union of the access. Returns the membership id.
async fn apply_invite(
    client: &impl GenericClient,
    invite: &InviteRead,
    user_id: Uuid,
) -> DomainResult<Uuid> {
    client
        .execute(
            "INSERT INTO organization_members (id, organization_id, user_id) VALUES ($1, $2, $3) \
             ON CONFLICT (organization_id, user_id) DO NOTHING",
            &[&Uuid::new_v4(), &invite.organization_id, &user_id],
        )
        .await?;
    let member = member_at(
        &client
            .query_one(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM organization_members m \
                     WHERE m.organization_id = $1 AND m.user_id = $2 FOR UPDATE"
                ),
                &[&invite.organization_id, &user_id],
            )
            .await?,
        0,
    );
    let role = if role_rank(&invite.role) > role_rank(&member.role) {
        invite.role.clone()
    } else {
        member.role
    };
    client
        .execute(
            "UPDATE organization_members SET role = $2, \
               all_boards_read = all_boards_read OR $3 OR $4, all_boards_write = all_boards_write OR $4, \
               updated_at = now() WHERE id = $1",
            &[
                &member.id,
                &role,
                &invite.all_boards_read,
                &invite.all_boards_write,
            ],
        )
        .await?;
    if !(invite.all_boards_read || invite.all_boards_write) {
        client
            .execute(
                "INSERT INTO organization_board_access AS a (id, organization_member_id, board_id, can_read, can_write) \
                 SELECT gen_random_uuid(), $1, board_id, can_read OR can_write, can_write \
                 FROM organization_invite_board_access WHERE organization_invite_id = $2 \
                 ON CONFLICT (organization_member_id, board_id) DO UPDATE SET \
                   can_read = a.can_read OR EXCLUDED.can_read, can_write = a.can_write OR EXCLUDED.can_write, \
                   updated_at = now()",
                &[&member.id, &invite.id],
            )
            .await?;
    }
    client
        .execute(
            "UPDATE organization_invites SET accepted_by_user_id = $2, accepted_at = now(), updated_at = now() \
             WHERE id = $1",
            &[&invite.id, &user_id],
        )
        .await?;
    client
        .execute(
            "UPDATE users SET active_organization_id = $2, updated_at = now() \
             WHERE id = $1 AND active_organization_id IS NULL",
            &[&user_id, &invite.organization_id],
        )
        .await?;
    Ok(member.id)
}

/// Accepts an invite by its token: unknown or already accepted is 404; the user's email
/// must be the invited one (403; a user without an email cannot accept).
pub async fn accept_invite(
    client: &impl GenericClient,
    user: &User,
    input: InviteAccept,
) -> DomainResult<MemberRead> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {INVITE_COLUMNS} FROM organization_invites i \
                 WHERE i.token_hash = $1 AND i.accepted_at IS NULL FOR UPDATE"
            ),
            &[&tokens::sha256_hex(input.token.trim())],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let invite = invite_from(&row);
    let email = user.email.as_deref().map(normalize_email);
    if email != Some(normalize_email(&invite.invited_email)) {
        return Err(DomainError::forbidden(
            "This invite was sent to another email address",
        ));
    }
    let member_id = apply_invite(client, &invite, user.id).await?;
    find_member(client, invite.organization_id, member_id, false).await
}

/// At a user's first sign-in without any membership: accepts the oldest invite pending
/// for their email, if any, and returns its organization.
pub async fn accept_pending_invite(
    client: &impl GenericClient,
    user_id: Uuid,
    email: &str,
) -> DomainResult<Option<Uuid>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {INVITE_COLUMNS} FROM organization_invites i \
                 WHERE lower(i.invited_email) = $1 AND i.accepted_at IS NULL \
                 ORDER BY i.created_at, i.id LIMIT 1 FOR UPDATE"
            ),
            &[&normalize_email(email)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let invite = invite_from(&row);
    apply_invite(client, &invite, user_id).await?;
    Ok(Some(invite.organization_id))
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
