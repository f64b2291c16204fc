//! Where committed task changes are handed to the realtime layer. Callers invoke
//! `task_changed` once per committed change, after the commit; the board-sync work fills
//! it in (BoardRoom actors, per-board sequence numbers, the Redis bridge). Until then it
//! only records the change in the log.

use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub enum TaskChange {
    Created {
        task: Value,
    },
    Updated {
        task_id: Uuid,
        changes: Value,
        updated_by: Value,
    },
    Deleted {
        task_id: Uuid,
    },
}

#[derive(Debug, Clone, Default)]
pub struct BoardEvents;

impl BoardEvents {
    pub fn task_changed(&self, board_id: Uuid, change: TaskChange) {
        tracing::debug!(%board_id, ?change, "task changed");
    }
}
