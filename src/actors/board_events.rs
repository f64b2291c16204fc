//! Where committed task changes are handed to the realtime layer. The change itself was
//! recorded in its transaction (`crate::domain::support::board_log::close`, activity);
//! callers invoke `tasks_changed` with the committed changes, after the commit, to carry
//! the sync events to the board's rooms and wake its SSE feeds (and the organization's
//! comment feed for comments) on every instance, the relay links of gateways whose agents
//! were sent notices, and the event bus the system events recorded with them.

use actix::Addr;
use uuid::Uuid;

use super::feeds::{FeedHub, Poke};
use super::registry::{Address, Router};
use super::rule_engine::EventBus;
pub use crate::domain::model::TaskChange;
use crate::protocol::bus::{RouteMessage, SyncNews};
use crate::protocol::channels::Channel;

/// Sync news larger than this goes as a plain poke: the bus stays light and a room reads
/// such an event from PostgreSQL.
const MAX_NEWS_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct BoardEvents {
    feeds: Addr<FeedHub>,
    router: Router,
    bus: EventBus,
}

impl BoardEvents {
    pub fn new(feeds: Addr<FeedHub>, router: Router, bus: EventBus) -> BoardEvents {
        BoardEvents { feeds, router, bus }
    }

    /// Hands over the committed changes of one board, in order.
    pub fn tasks_changed(
        &self,
        organization_id: Uuid,
        board_id: Uuid,
        changes: impl IntoIterator<Item = TaskChange>,
    ) {
        let mut recorded = Vec::new();
        for change in changes {
            tracing::debug!(%board_id, ?change, "task changed");
            match change {
                TaskChange::Notified { gateway_id } => {
                    self.router
                        .tell(Address::Gateway(gateway_id), RouteMessage::Flush);
                    continue;
                }
                TaskChange::Recorded { event_id } => {
                    recorded.push(event_id);
                    continue;
                }
                TaskChange::Synced { events } => {
                    self.sync_news(board_id, events);
                    continue;
                }
                TaskChange::Commented { .. } => self.poke(Channel::OrgFeed(organization_id)),
                TaskChange::Created { .. }
                | TaskChange::Updated { .. }
                | TaskChange::Deleted { .. } => {}
            }
            self.poke(Channel::BoardFeed(board_id));
        }
        self.bus.publish(recorded);
    }

    /// An approval of the board changed, and maybe recorded an event.
    pub fn approval_changed(&self, board_id: Uuid, event: Option<Uuid>) {
        self.poke(Channel::BoardFeed(board_id));
        self.bus.publish(event.into_iter().collect());
    }

    /// The board's activity feed got a line (a pipeline run's progress).
    pub fn feed_changed(&self, board_id: Uuid) {
        self.poke(Channel::BoardFeed(board_id));
    }

    fn poke(&self, topic: Channel) {
        self.feeds.do_send(Poke::plain(topic.to_string()));
    }

    /// Carries the board's new sync events to its rooms; news too large for the bus goes as
    /// a plain poke (the rooms read it).
    fn sync_news(&self, board_id: Uuid, events: Vec<(i64, String)>) {
        let news = SyncNews(events).encode();
        let payload = if news.len() <= MAX_NEWS_BYTES {
            news
        } else {
            String::new()
        };
        self.feeds.do_send(Poke {
            topic: Channel::BoardSync(board_id).to_string(),
            payload: payload.into(),
        });
    }
}
