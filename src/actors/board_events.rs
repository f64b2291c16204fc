//! Where committed task changes are handed to the realtime layer. The change itself was
//! recorded in its transaction (`board_sync::append`, activity); callers invoke
//! `task_changed` once per committed change, after the commit, to wake the board's rooms
//! and SSE feeds (and the organization's comment feed for comments) on every instance.

use actix::Addr;
use uuid::Uuid;

use super::feeds::{board_topic, organization_topic, sync_topic, FeedHub, Poke};
pub use crate::domain::board_sync::TaskChange;

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
        } else {
            self.poke(sync_topic(board_id));
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
