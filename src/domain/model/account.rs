//! Users, organizations and memberships: the admin caller (`Principal`) is made of them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// `UserRead` of the reference API.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub clerk_user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub preferred_name: Option<String>,
    pub pronouns: Option<String>,
    pub timezone: Option<String>,
    pub notes: Option<String>,
    pub context: Option<String>,
    pub is_super_admin: bool,
}

/// `OrganizationRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An `organization_members` row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub role: String,
    pub all_boards_read: bool,
    pub all_boards_write: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The caller of an admin route: the user, their active organization and membership.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub organization: Organization,
    pub member: Member,
}

pub const USER_COLUMNS: &str =
    "u.id, u.clerk_user_id, u.email, u.name, u.preferred_name, u.pronouns, u.timezone, u.notes, u.context, u.is_super_admin";

pub fn user_from(row: &Row) -> User {
    User {
        id: row.get(0),
        clerk_user_id: row.get(1),
        email: row.get(2),
        name: row.get(3),
        preferred_name: row.get(4),
        pronouns: row.get(5),
        timezone: row.get(6),
        notes: row.get(7),
        context: row.get(8),
        is_super_admin: row.get(9),
    }
}

/// The columns `member_at` reads, in order, for a membership aliased `m`.
pub const MEMBER_COLUMNS: &str =
    "m.id, m.organization_id, m.user_id, m.role, m.all_boards_read, m.all_boards_write, m.created_at, m.updated_at";

/// The membership in columns `i..i + 8` (see `MEMBER_COLUMNS`).
pub fn member_at(row: &Row, i: usize) -> Member {
    Member {
        id: row.get(i),
        organization_id: row.get(i + 1),
        user_id: row.get(i + 2),
        role: row.get(i + 3),
        all_boards_read: row.get(i + 4),
        all_boards_write: row.get(i + 5),
        created_at: row.get(i + 6),
        updated_at: row.get(i + 7),
    }
}

/// The columns `organization_at` reads, for an organization aliased `o`.
pub const ORGANIZATION_COLUMNS: &str = "o.id, o.name, o.created_at, o.updated_at";

pub fn organization_at(row: &Row, i: usize) -> Organization {
    Organization {
        id: row.get(i),
        name: row.get(i + 1),
        created_at: row.get(i + 2),
        updated_at: row.get(i + 3),
    }
}
