//! H5 users: accounts, refresh-token families, and assignments to agents.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::error::SqlState;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::{DomainError, DomainResult};

crate::db::record! {
    /// `H5UserRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct H5User in "u" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub username: String,
        pub display_name: Option<String>,
        pub email: Option<String>,
        pub phone: Option<String>,
        pub avatar_url: Option<String>,
        pub status: String,
        pub last_login_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

impl H5User {
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }
}

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_SUSPENDED: &str = "suspended";

crate::db::record! {
    /// `H5AssignmentRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Assignment in "a" {
        pub id: Uuid,
        pub h5_user_id: Uuid,
        pub agent_id: Uuid,
        pub board_id: Uuid,
        pub role: String,
        pub assigned_at: DateTime<Utc>,
        pub assigned_by: Option<Uuid>,
    }
}

/// `H5UserMeResponse`: a user with their assignments.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserWithAssignments {
    pub user: H5User,
    pub assignments: Vec<Assignment>,
}

pub struct NewUser<'a> {
    pub organization_id: Uuid,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub display_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
}

pub async fn create(client: &impl GenericClient, new: NewUser<'_>) -> DomainResult<H5User> {
    let org_exists = client
        .query_opt(
            "SELECT 1 FROM organizations WHERE id = $1",
            &[&new.organization_id],
        )
        .await?
        .is_some();
    if !org_exists {
        return Err(DomainError::NotFound(serde_json::json!(
            "Organization not found."
        )));
    }
    let result = client
        .query_one(
            &format!(
                "INSERT INTO h5_users AS u (id, organization_id, username, password_hash, display_name, email, phone) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {columns}",
                columns = H5User::COLUMNS
            ),
            &[&Uuid::new_v4(), &new.organization_id, &new.username, &new.password_hash, &new.display_name, &new.email, &new.phone],
        )
        .await;
    match result {
        Ok(row) => Ok(H5User::from_row(&row)?),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(DomainError::conflict(
            "Username already taken in this organization.",
        )),
        Err(e) => Err(e.into()),
    }
}

/// The user and their password hash, for login.
pub async fn find_for_login(
    client: &impl GenericClient,
    organization_id: Uuid,
    username: &str,
) -> DomainResult<Option<(H5User, String)>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns}, u.password_hash FROM h5_users u WHERE u.organization_id = $1 AND u.username = $2",
                columns = H5User::COLUMNS
            ),
            &[&organization_id, &username],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some((H5User::from_row(&r)?, get(&r, "password_hash")?)))
}

pub async fn record_login(client: &impl GenericClient, user_id: Uuid) -> DomainResult<H5User> {
    let row = client
        .query_one(
            &format!(
                "UPDATE h5_users u SET last_login_at = now() WHERE u.id = $1 RETURNING {columns}",
                columns = H5User::COLUMNS
            ),
            &[&user_id],
        )
        .await?;
    Ok(H5User::from_row(&row)?)
}

pub async fn find(client: &impl GenericClient, user_id: Uuid) -> DomainResult<Option<H5User>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM h5_users u WHERE u.id = $1",
                columns = H5User::COLUMNS
            ),
            &[&user_id],
        )
        .await?;
    Ok(row.as_ref().map(H5User::from_row).transpose()?)
}

pub async fn find_in_org(
    client: &impl GenericClient,
    organization_id: Uuid,
    user_id: Uuid,
) -> DomainResult<H5User> {
    find(client, user_id)
        .await?
        .filter(|u| u.organization_id == organization_id)
        .ok_or_else(DomainError::not_found)
}

pub async fn with_assignments(
    client: &impl GenericClient,
    user: H5User,
) -> DomainResult<UserWithAssignments> {
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM h5_user_agent_assignments a WHERE a.h5_user_id = $1 ORDER BY a.assigned_at, a.id",
                columns = Assignment::COLUMNS
            ),
            &[&user.id],
        )
        .await?;
    Ok(UserWithAssignments {
        user,
        assignments: Assignment::from_rows(&rows)?,
    })
}

/// Absent fields stay; `Some(None)` clears.
pub struct ProfileUpdate {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
}

pub async fn update_profile(
    client: &impl GenericClient,
    user_id: Uuid,
    update: ProfileUpdate,
) -> DomainResult<H5User> {
    if update.display_name.is_none() && update.avatar_url.is_none() {
        return find(client, user_id)
            .await?
            .ok_or_else(DomainError::not_found);
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE h5_users u SET \
                   display_name = CASE WHEN $2 THEN $3 ELSE u.display_name END, \
                   avatar_url = CASE WHEN $4 THEN $5 ELSE u.avatar_url END, \
                   updated_at = now() \
                 WHERE u.id = $1 RETURNING {columns}",
                columns = H5User::COLUMNS
            ),
            &[
                &user_id,
                &update.display_name.is_some(),
                &update.display_name.flatten(),
                &update.avatar_url.is_some(),
                &update.avatar_url.flatten(),
            ],
        )
        .await?;
    Ok(H5User::from_row(&row)?)
}

/// Stores a refresh token; `family_id` is the login it descends from.
pub async fn store_refresh(
    client: &impl GenericClient,
    user_id: Uuid,
    family_id: Uuid,
    hash: &str,
    ttl: std::time::Duration,
) -> DomainResult<()> {
    let expires_at =
        Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    client
        .execute(
            "INSERT INTO h5_refresh_tokens (id, h5_user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&Uuid::new_v4(), &user_id, &family_id, &hash, &expires_at],
        )
        .await?;
    Ok(())
}

/// A refresh token that was live and is now spent: issue the next token of `family_id`.
pub struct Redeemed {
    pub user: H5User,
    pub family_id: Uuid,
}

/// Spends a refresh token; `None` when it is unknown, expired, spent before (its family is
/// then revoked) or its user is not active. The conditional UPDATE makes a token single use
/// even under concurrent presentations.
pub async fn redeem_refresh(
    client: &impl GenericClient,
    hash: &str,
) -> DomainResult<Option<Redeemed>> {
    let spent = client
        .query_opt(
            "UPDATE h5_refresh_tokens SET revoked = true \
             WHERE token_hash = $1 AND NOT revoked AND expires_at > now() RETURNING h5_user_id, family_id",
            &[&hash],
        )
        .await?;
    let Some(row) = spent else {
        let reused = client
            .query_opt(
                "SELECT family_id FROM h5_refresh_tokens WHERE token_hash = $1 AND revoked",
                &[&hash],
            )
            .await?;
        if let Some(reused) = reused {
            let family_id: Uuid = get(&reused, "family_id")?;
            tracing::warn!(%family_id, "revoked H5 refresh token presented again: revoking its family");
            client
                .execute(
                    "UPDATE h5_refresh_tokens SET revoked = true WHERE family_id = $1",
                    &[&family_id],
                )
                .await?;
        }
        return Ok(None);
    };
    let user_id: Uuid = get(&row, "h5_user_id")?;
    let family_id: Uuid = get(&row, "family_id")?;
    match find(client, user_id).await? {
        Some(user) if user.is_active() => Ok(Some(Redeemed { user, family_id })),
        _ => Ok(None),
    }
}

pub struct ListFilter {
    pub status: Option<String>,
    /// Matches username or display name, case-insensitively.
    pub q: Option<String>,
}

pub async fn list(
    client: &impl GenericClient,
    organization_id: Uuid,
    filter: &ListFilter,
    page: PageParams,
) -> DomainResult<Page<H5User>> {
    let pattern = filter.q.as_ref().map(|q| {
        format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let condition = "u.organization_id = $1 AND ($2::text IS NULL OR u.status = $2) \
                     AND ($3::text IS NULL OR u.username ILIKE $3 OR u.display_name ILIKE $3)";
    fetch_page(
        client,
        H5User::COLUMNS,
        &format!("FROM h5_users u WHERE {condition}"),
        "u.created_at DESC, u.id",
        &[&organization_id, &filter.status, &pattern],
        page,
        H5User::from_row,
    )
    .await
}

pub struct NewAssignment {
    pub agent_id: Uuid,
    pub board_id: Uuid,
    pub role: String,
    pub assigned_by: Uuid,
}

/// Assigns an agent of the organization, on the given board of the organization.
pub async fn assign(
    client: &impl GenericClient,
    organization_id: Uuid,
    user_id: Uuid,
    new: NewAssignment,
) -> DomainResult<Assignment> {
    find_in_org(client, organization_id, user_id).await?;
    let agent = client
        .query_opt(
            "SELECT board_id FROM agents WHERE id = $1 AND organization_id = $2",
            &[&new.agent_id, &organization_id],
        )
        .await?
        .ok_or_else(|| DomainError::NotFound(serde_json::json!("Agent not found.")))?;
    let board_ok = client
        .query_opt(
            "SELECT 1 FROM boards WHERE id = $1 AND organization_id = $2",
            &[&new.board_id, &organization_id],
        )
        .await?
        .is_some();
    if !board_ok {
        return Err(DomainError::NotFound(serde_json::json!("Board not found.")));
    }
    let agent_board: Option<Uuid> = get(&agent, "board_id")?;
    if agent_board.is_some_and(|b| b != new.board_id) {
        return Err(DomainError::unprocessable(
            "The agent is not on this board.",
        ));
    }
    let result = client
        .query_one(
            &format!(
                "INSERT INTO h5_user_agent_assignments AS a (id, h5_user_id, agent_id, board_id, role, assigned_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {columns}",
                columns = Assignment::COLUMNS
            ),
            &[&Uuid::new_v4(), &user_id, &new.agent_id, &new.board_id, &new.role, &new.assigned_by],
        )
        .await;
    match result {
        Ok(row) => Ok(Assignment::from_row(&row)?),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(DomainError::conflict(
            "User is already assigned to this agent.",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn unassign(
    client: &impl GenericClient,
    organization_id: Uuid,
    user_id: Uuid,
    agent_id: Uuid,
) -> DomainResult<()> {
    find_in_org(client, organization_id, user_id).await?;
    let removed = client
        .execute(
            "DELETE FROM h5_user_agent_assignments WHERE h5_user_id = $1 AND agent_id = $2",
            &[&user_id, &agent_id],
        )
        .await?;
    if removed == 0 {
        return Err(DomainError::not_found());
    }
    Ok(())
}

/// Suspends or reactivates. Suspending also revokes every refresh token of the user.
pub async fn set_status(
    client: &impl GenericClient,
    organization_id: Uuid,
    user_id: Uuid,
    status: &str,
) -> DomainResult<H5User> {
    find_in_org(client, organization_id, user_id).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE h5_users u SET status = $2, updated_at = now() WHERE u.id = $1 RETURNING {columns}",
                columns = H5User::COLUMNS
            ),
            &[&user_id, &status],
        )
        .await?;
    if status != STATUS_ACTIVE {
        client
            .execute(
                "UPDATE h5_refresh_tokens SET revoked = true WHERE h5_user_id = $1 AND NOT revoked",
                &[&user_id],
            )
            .await?;
    }
    Ok(H5User::from_row(&row)?)
}
