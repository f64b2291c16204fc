//! What every handler can reach.

use std::sync::Arc;

use actix::Addr;

use crate::actors::board_events::BoardEvents;
use crate::actors::board_room::BoardRooms;
use crate::actors::bridge::Bridge;
use crate::actors::feeds::{FeedHub, Poke};
use crate::actors::gateway_rpc::RpcReplies;
use crate::actors::presence::Presence;
use crate::actors::registry::Router;
use crate::actors::suggestions::SuggestionHubs;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::db::PgPool;
use crate::protocol::channels::Channel;

pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub bridge: Addr<Bridge>,
    /// Committed task changes go here, once each, after the commit.
    pub board_events: BoardEvents,
    /// Wakes the SSE streams and board rooms of this instance.
    pub feeds: Addr<FeedHub>,
    /// The board rooms of this instance.
    pub board_rooms: Addr<BoardRooms>,
    /// Live suggestions, per organization.
    pub suggestions: Addr<SuggestionHubs>,
    pub login_throttle: LoginThrottle,
    /// Inbound calls per board webhook, per minute (the same windowed counter).
    pub webhook_throttle: LoginThrottle,
    /// Which local actor holds which socket, and the one door to reach one by id.
    pub router: Router,
    /// Callers of this instance waiting for a gateway's answer.
    pub rpc: Addr<RpcReplies>,
    /// Which instance holds which socket.
    pub presence: Arc<Presence>,
    /// Open WebSockets of this instance (see `actors::socket::ConnectionSlot`).
    pub sockets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AppState {
    /// Wakes the organization's agents streams, here and on the other instances: call it
    /// after a commit that wrote any of its agents.
    /// What a request to a gateway needs, borrowed from the state.
    pub fn gateway_caller(&self) -> crate::actors::gateway_rpc::Caller<'_> {
        crate::actors::gateway_rpc::Caller {
            settings: &self.settings,
            db: &self.db,
            router: &self.router,
            rpc: &self.rpc,
        }
    }

    pub fn agents_changed(&self, organization_id: uuid::Uuid) {
        self.feeds.do_send(Poke {
            topic: Channel::AgentsFeed(organization_id).to_string(),
        });
    }
}
