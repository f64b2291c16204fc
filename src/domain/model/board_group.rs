//! Board groups (`BoardGroupRead`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

crate::db::record! {
    /// `BoardGroupRead`.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct BoardGroup in "g" {
        pub id: Uuid,
        pub organization_id: Uuid,
        pub name: String,
        pub slug: String,
        pub description: Option<String>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}
