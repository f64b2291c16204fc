//! Users, organizations and memberships, and the provisioning of the local admin user.

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record, RowError};
use crate::db::GenericClient;
use crate::db::PgPool;
use crate::domain::model::{Member, Organization, Principal, User};
use crate::domain::{orgs::organizations, DomainError, DomainResult};

/// `OrganizationListItem`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MembershipListItem {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub is_active: bool,
}

/// `UserUpdate`: absent fields stay, `null` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub preferred_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub pronouns: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub context: Option<Option<String>>,
}

/// The one user of AUTH_MODE=local, as the reference server names it.
pub struct LocalIdentity;
impl LocalIdentity {
    pub const CLERK_USER_ID: &'static str = "local-auth-user";
    pub const EMAIL: &'static str = "admin@home.local";
    pub const NAME: &'static str = "Local User";
}
const PERSONAL_ORG_NAME: &str = "Personal";

/// The user's columns, then the organization's, then the membership's (`principal_sql`).
fn principal_from(row: &Row) -> Result<Principal, RowError> {
    let organization_at = User::WIDTH;
    let member_at = organization_at + Organization::WIDTH;
    Ok(Principal {
        user: User::from_row(row)?,
        organization: Organization::from_row_at(row, organization_at)?,
        member: Member::from_row_at(row, member_at)?,
    })
}

fn principal_sql() -> String {
    format!(
        "SELECT {}, {}, {} \
         FROM users u \
         JOIN organization_members m ON m.user_id = u.id AND m.organization_id = u.active_organization_id \
         JOIN organizations o ON o.id = m.organization_id \
         WHERE u.clerk_user_id = $1",
        User::COLUMNS,
        Organization::COLUMNS,
        Member::COLUMNS
    )
}

/// The admin that `token` authenticates, provisioned on first sight; `None` when it
/// authenticates nobody (a wrong local token; a Clerk token that does not verify, logged
/// at debug with why).
pub async fn admin_principal(
    pool: &PgPool,
    memo: &PrincipalMemo,
    auth: &crate::config::AuthMode,
    clerk: Option<&super::clerk::Verifier>,
    token: &str,
) -> DomainResult<Option<Principal>> {
    use crate::config::AuthMode;
    match (auth, clerk) {
        (AuthMode::Local { .. }, _) if auth.accepts(token) => {
            local_principal(pool, memo).await.map(Some)
        }
        (AuthMode::Clerk(_), Some(clerk)) => {
            let identity = match clerk.verify(token).await {
                Ok(identity) => identity,
                Err(why) => {
                    tracing::debug!(%why, "Clerk token refused");
                    return Ok(None);
                }
            };
            if let Some(found) = existing_principal(pool, memo, &identity.clerk_user_id).await? {
                return Ok(Some(found));
            }
            // First sight: what the token does not say, Clerk's API may.
            let (mut email, mut name) = (identity.email.clone(), identity.name.clone());
            if email.is_none() || name.is_none() {
                let (profile_email, profile_name) = clerk.profile(&identity.clerk_user_id).await;
                email = email.or(profile_email);
                name = name.or(profile_name);
            }
            let account = Account {
                clerk_user_id: &identity.clerk_user_id,
                email: email.as_deref(),
                name: name.as_deref(),
            };
            provision(pool, &account).await.map(Some)
        }
        _ => Ok(None),
    }
}

/// The local admin principal (AUTH_MODE=local): see [`provision`].
pub async fn local_principal(pool: &PgPool, memo: &PrincipalMemo) -> DomainResult<Principal> {
    let local = Account {
        clerk_user_id: LocalIdentity::CLERK_USER_ID,
        email: Some(LocalIdentity::EMAIL),
        name: Some(LocalIdentity::NAME),
    };
    if let Some(found) = existing_principal(pool, memo, local.clerk_user_id).await? {
        return Ok(found);
    }
    provision(pool, &local).await
}

/// Who signs in: the `users.clerk_user_id` key, and what is known of them.
pub struct Account<'a> {
    pub clerk_user_id: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// The admin principals this instance keeps, by `clerk_user_id` (`domain::memos`).
pub type PrincipalMemo = crate::db::memo::Memo<String, Principal>;

/// The principal of a user seen before: kept in `memo`, else one indexed query.
pub async fn existing_principal(
    pool: &PgPool,
    memo: &PrincipalMemo,
    clerk_user_id: &str,
) -> DomainResult<Option<Principal>> {
    let read = || async {
        let conn = pool.get().await?;
        let row = conn.query_opt(&principal_sql(), &[&clerk_user_id]).await?;
        Ok::<_, DomainError>(row.as_ref().map(principal_from).transpose()?)
    };
    memo.get_or_read(clerk_user_id.to_string(), read).await
}

/// First sight of a user (as the reference provisions one): the `users` row, then its
/// active membership if it still exists, else its oldest one, else the oldest invite
/// pending for its email, else a new "Personal" organization it owns. Serialized by the
/// user row's lock, so concurrent first calls provision exactly once.
pub async fn provision(pool: &PgPool, account: &Account<'_>) -> DomainResult<Principal> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute(
        "INSERT INTO users (id, clerk_user_id, email, name) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (clerk_user_id) DO NOTHING",
        &[
            &Uuid::new_v4(),
            &account.clerk_user_id,
            &account.email,
            &account.name,
        ],
    )
    .await?;
    let user = tx
        .query_one(
            "SELECT id, active_organization_id, email FROM users WHERE clerk_user_id = $1 FOR NO KEY UPDATE",
            &[&account.clerk_user_id],
        )
        .await?;
    let user_id: Uuid = get(&user, "id")?;
    let active: Option<Uuid> = get(&user, "active_organization_id")?;
    let email: Option<String> = get::<Option<String>>(&user, "email")?
        .filter(|e| !e.is_empty())
        .or_else(|| account.email.map(str::to_string));
    tx.execute(
        "UPDATE users SET email = COALESCE(NULLIF(email, ''), $2), name = COALESCE(NULLIF(name, ''), $3), updated_at = now() \
         WHERE id = $1 AND (COALESCE(email, '') = '' OR COALESCE(name, '') = '') \
           AND ($2::text IS NOT NULL OR $3::text IS NOT NULL)",
        &[&user_id, &account.email, &account.name],
    )
    .await?;

    let membership = tx
        .query_opt(
            "SELECT organization_id FROM organization_members WHERE user_id = $1 \
             ORDER BY (organization_id = $2) IS TRUE DESC, created_at, id LIMIT 1",
            &[&user_id, &active],
        )
        .await?;
    let invited = match (&membership, &email) {
        (None, Some(email)) => {
            crate::domain::orgs::invites::accept_pending_invite(&tx, user_id, email).await?
        }
        _ => None,
    };
    let organization_id: Uuid = match (membership, invited) {
        (Some(row), _) => get(&row, "organization_id")?,
        (None, Some(org_id)) => org_id,
        (None, None) => {
            let org_id = Uuid::new_v4();
            tx.execute(
                "INSERT INTO organizations (id, name) VALUES ($1, $2)",
                &[&org_id, &PERSONAL_ORG_NAME],
            )
            .await?;
            tx.execute(
                "INSERT INTO organization_members (id, organization_id, user_id, role, all_boards_read, all_boards_write) \
                 VALUES ($1, $2, $3, 'owner', true, true)",
                &[&Uuid::new_v4(), &org_id, &user_id],
            )
            .await?;
            crate::domain::skills::packs::seed_default_packs(&tx, org_id).await?;
            org_id
        }
    };
    tx.execute(
        "UPDATE users SET active_organization_id = $2, updated_at = now() \
         WHERE id = $1 AND active_organization_id IS DISTINCT FROM $2",
        &[&user_id, &organization_id],
    )
    .await?;
    tx.commit().await?;

    let row = conn
        .query_one(&principal_sql(), &[&account.clerk_user_id])
        .await?;
    Ok(principal_from(&row)?)
}

pub async fn update_user(pool: &PgPool, user_id: Uuid, update: UserUpdate) -> DomainResult<User> {
    let conn = pool.get().await?;
    // Each field: $n+1 says "was it given", $n the new value (possibly NULL to clear).
    let sql = format!(
        "UPDATE users u SET \
           name = CASE WHEN $2 THEN $3 ELSE u.name END, \
           preferred_name = CASE WHEN $4 THEN $5 ELSE u.preferred_name END, \
           pronouns = CASE WHEN $6 THEN $7 ELSE u.pronouns END, \
           timezone = CASE WHEN $8 THEN $9 ELSE u.timezone END, \
           notes = CASE WHEN $10 THEN $11 ELSE u.notes END, \
           context = CASE WHEN $12 THEN $13 ELSE u.context END, \
           updated_at = now() \
         WHERE u.id = $1 RETURNING {}",
        User::COLUMNS
    );
    let fields = [
        &update.name,
        &update.preferred_name,
        &update.pronouns,
        &update.timezone,
        &update.notes,
        &update.context,
    ];
    let given: Vec<bool> = fields.iter().map(|f| f.is_some()).collect();
    let values: Vec<Option<&str>> = fields
        .iter()
        .map(|f| f.as_ref().and_then(|v| v.as_deref()))
        .collect();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&user_id];
    for i in 0..fields.len() {
        params.push(&given[i]);
        params.push(&values[i]);
    }
    // Deleted by a request that committed first: gone.
    let row = conn
        .query_opt(&sql, &params)
        .await?
        .ok_or_else(|| crate::domain::DomainError::NotFound(serde_json::json!("User not found")))?;
    Ok(User::from_row(&row)?)
}

/// Deletes the user (domain.md §A2). Their memberships go with them and their authorship
/// of invites and tasks is cleared by the schema; their organizations are settled first.
/// Organizations are locked before the user row, the order member removal takes too.
pub async fn delete_user(client: &impl GenericClient, user_id: Uuid) -> DomainResult<()> {
    organizations::release_memberships(client, user_id).await?;
    client
        .execute("DELETE FROM users WHERE id = $1", &[&user_id])
        .await?;
    Ok(())
}

/// The caller's memberships, by organization name.
pub async fn memberships(
    pool: &PgPool,
    user_id: Uuid,
    active: Uuid,
) -> DomainResult<Vec<MembershipListItem>> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT o.id, o.name, m.role FROM organization_members m JOIN organizations o ON o.id = m.organization_id \
             WHERE m.user_id = $1 ORDER BY lower(o.name), o.id",
            &[&user_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: Uuid = get(r, "id")?;
            Ok(MembershipListItem {
                id,
                name: get(r, "name")?,
                role: get(r, "role")?,
                is_active: id == active,
            })
        })
        .collect()
}
