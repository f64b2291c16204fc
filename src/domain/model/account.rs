//! Users, organizations and memberships: the admin caller (`Principal`) is made of them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

crate::db::record! {
    /// `UserRead` of the reference API.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct User in "u" {
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
}

crate::db::record! {
    /// `OrganizationRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Organization in "o" {
        pub id: Uuid,
        pub name: String,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

crate::db::record! {
    /// An `organization_members` row (aliased `m`).
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Member in "m" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub user_id: Uuid,
        pub role: String,
        pub all_boards_read: bool,
        pub all_boards_write: bool,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// The caller of an admin route: the user, their active organization and membership.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub organization: Organization,
    pub member: Member,
}
