//! Where committed task changes are handed to the realtime layer. The change itself was
//! recorded in its transaction (`crate::domain::support::board_log::append`, activity); callers invoke
//! `tasks_changed` with the committed changes, after the commit, to wake the board's rooms
//! and SSE feeds (and the organization's comment feed for comments) on every instance,
//! and the relay links of gateways whose agents were sent notices.

use actix::Addr;
use uuid::Uuid;

use super::feeds::{board_topic, organization_topic, sync_topic, FeedHub, Poke};
use super::registry::{PokeGateway, Registry};
pub use crate::domain::model::TaskChange;

#[derive(Clone)]
pub struct BoardEvents {
    feeds: Addr<FeedHub>,
    registry: Addr<Registry>,
}

impl BoardEvents {
    pub fn new(feeds: Addr<FeedHub>, registry: Addr<Registry>) -> BoardEvents {
        BoardEvents { feeds, registry }
    }

    /// Hands over the committed changes of one board, in order.
    pub fn tasks_changed(
        &self,
        organization_id: Uuid,
        board_id: Uuid,
        changes: impl IntoIterator<Item = TaskChange>,
    ) {
        for change in changes {
            tracing::debug!(%board_id, ?change, "task changed");
            match change {
                TaskChange::Notified { gateway_id } => {
                    self.registry.do_send(PokeGateway(gateway_id));
                    continue;
                }
                TaskChange::Commented { .. } => self.poke(organization_topic(organization_id)),
                _ => self.poke(sync_topic(board_id)),
            }
            self.poke(board_topic(board_id));
        }
    }

    pub fn approval_changed(&self, board_id: Uuid) {
        self.poke(board_topic(board_id));
    }

    fn poke(&self, topic: String) {
        self.feeds.do_send(Poke { topic });
    }
}
