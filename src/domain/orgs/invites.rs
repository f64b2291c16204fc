//! Invitations to an organization: created with a role and board access, accepted by the
//! invited email (tokens are kept as SHA-256 only), and accepted on first sign-in.

use super::members::check_may_grant;
use super::members::checked_board_access;
use super::members::default_role;
use super::members::find_member;
use super::members::insert_board_rows;
use super::members::normalize_role;
use super::members::BoardAccessSpec;
use super::members::MemberRead;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::Record;
use crate::db::GenericClient;
use crate::domain::model::{Member, Principal, User};
use crate::domain::support::access::{require_org_admin, role_rank};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};
use crate::secrets::tokens;

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

crate::db::record! {
    /// `OrganizationInviteRead`. Only the token's hash is stored, so `token` is the secret in
    /// the answer to the create call and empty everywhere else.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct InviteRead in "i" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub invited_email: String,
        pub role: String,
        pub all_boards_read: bool,
        pub all_boards_write: bool,
        pub token: String = "''::text",
        pub created_by_user_id: Option<Uuid>,
        pub accepted_by_user_id: Option<Uuid>,
        pub accepted_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `OrganizationInviteAccept`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct InviteAccept {
    pub token: String,
}

fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
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
        InviteRead::COLUMNS,
        "FROM organization_invites i WHERE i.organization_id = $1 AND i.accepted_at IS NULL",
        "i.created_at DESC, i.id",
        &[&principal.organization.id],
        page,
        InviteRead::from_row,
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {columns}",
                columns = InviteRead::COLUMNS
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
        ..InviteRead::from_row(&row)?
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
                 RETURNING {columns}",
                columns = InviteRead::COLUMNS
            ),
            &[&invite_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(InviteRead::from_row(&row)?)
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
    let row = client
        .query_one(
            &format!(
                "SELECT {} FROM organization_members m \
                 WHERE m.organization_id = $1 AND m.user_id = $2 FOR NO KEY UPDATE",
                Member::COLUMNS
            ),
            &[&invite.organization_id, &user_id],
        )
        .await?;
    let member = Member::from_row(&row)?;
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
                "SELECT {columns} FROM organization_invites i \
                 WHERE i.token_hash = $1 AND i.accepted_at IS NULL FOR NO KEY UPDATE",
                columns = InviteRead::COLUMNS
            ),
            &[&tokens::sha256_hex(input.token.trim())],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    let invite = InviteRead::from_row(&row)?;
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
                "SELECT {columns} FROM organization_invites i \
                 WHERE lower(i.invited_email) = $1 AND i.accepted_at IS NULL \
                 ORDER BY i.created_at, i.id LIMIT 1 FOR NO KEY UPDATE",
                columns = InviteRead::COLUMNS
            ),
            &[&normalize_email(email)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let invite = InviteRead::from_row(&row)?;
    apply_invite(client, &invite, user_id).await?;
    Ok(Some(invite.organization_id))
}
