//! Board and board-group memory entries (`BoardMemoryRead`, `BoardGroupMemoryRead`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

crate::db::record! {
    /// The fields both kinds of entry share, after their id and owner.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct MemoryBody in "m" {
        pub content: String,
        pub tags: Option<Vec<String>> as Option<Json<Vec<String>>>,
        pub source: Option<String>,
        pub is_chat: bool,
        pub created_at: DateTime<Utc>,
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
