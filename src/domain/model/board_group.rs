//! Board groups (`BoardGroupRead`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// `BoardGroupRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardGroup {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const GROUP_COLUMNS: &str =
    "g.id, g.organization_id, g.name, g.slug, g.description, g.created_at, g.updated_at";

impl BoardGroup {
    pub fn from_row(row: &Row) -> BoardGroup {
        BoardGroup {
            id: row.get(0),
            organization_id: row.get(1),
            name: row.get(2),
            slug: row.get(3),
            description: row.get(4),
            created_at: row.get(5),
            updated_at: row.get(6),
        }
    }
}
