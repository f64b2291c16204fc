//! Board and board-group memory entries (`BoardMemoryRead`, `BoardGroupMemoryRead`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// The fields both kinds of entry share, after their id and owner.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemoryBody {
    pub content: String,
    pub tags: Option<Vec<String>>,
    pub source: Option<String>,
    pub is_chat: bool,
    pub created_at: DateTime<Utc>,
}

impl MemoryBody {
    pub fn from_row(row: &Row) -> MemoryBody {
        MemoryBody {
            content: row.get(2),
            tags: row
                .get::<_, Option<Json<Vec<String>>>>(3)
                .map(|tags| tags.0),
            source: row.get(4),
            is_chat: row.get(5),
            created_at: row.get(6),
        }
    }
}

/// `BoardMemoryRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardMemory {
    pub id: Uuid,
    pub board_id: Uuid,
    #[serde(flatten)]
    pub body: MemoryBody,
}

/// `BoardGroupMemoryRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BoardGroupMemory {
    pub id: Uuid,
    pub board_group_id: Uuid,
    #[serde(flatten)]
    pub body: MemoryBody,
}
