//! Where committed task changes are handed to the realtime layer. Callers invoke
//! `task_changed` once per committed change, after the commit. Today it wakes the board's
//! SSE feeds (and the organization's comment feed for comments); the board-sync work adds
//! the BoardRoom broadcast.

use actix::Addr;
use serde_json::Value;
use uuid::Uuid;

use super::feeds::{board_topic, organization_topic, FeedHub, Poke};

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
    Commented {
        task_id: Uuid,
    },
}

#[derive(Clone)]
pub struct BoardEvents {
    feeds: Addr<FeedHub>,
}

impl BoardEvents {
    pub fn new(feeds: Addr<FeedHub>) -> BoardEvents {
        BoardEvents { feeds }
    }

    pub fn task_changed(&self, organization_id: Uuid, board_id: Uuid, change: TaskChange) {
        tracing::debug!(%board_id, ?change, "task changed");
        if matches!(change, TaskChange::Commented { .. }) {
            self.poke(organization_topic(organization_id));
        }
        self.poke(board_topic(board_id));
    }

    pub fn approval_changed(&self, board_id: Uuid) {
        self.poke(board_topic(board_id));
    }

    fn poke(&self, topic: String) {
        self.feeds.do_send(Poke { topic });
    }
}
