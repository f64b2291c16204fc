//! What every handler can reach.

use std::sync::Arc;

use actix::Addr;

use crate::actors::board_events::BoardEvents;
use crate::actors::board_room::BoardRooms;
use crate::actors::bridge::Bridge;
use crate::actors::feeds::{FeedHub, Poke};
use crate::actors::gateway_link::LinkDeps;
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
    /// Where committed system events go, for the rule engine.
    pub events: crate::actors::rule_engine::EventBus,
    pub login_throttle: LoginThrottle,
    /// Inbound calls per board webhook, per minute (the same windowed counter).
    pub webhook_throttle: LoginThrottle,
    /// Which local actor holds which socket, and the one door to reach one by id.
    pub router: Router,
    /// Callers of this instance waiting for a gateway's answer.
    pub rpc: Addr<RpcReplies>,
    /// The deployment's device key towards OpenClaw gateways (loaded on first use).
    pub device: crate::actors::openclaw::DeviceCell,
    /// Which instance holds which socket.
    pub presence: Arc<Presence>,
    /// Open WebSockets of this instance (see `actors::socket::ConnectionSlot`).
    pub sockets: std::sync::Arc<crate::actors::socket::Sockets>,
    /// AUTH_MODE=clerk: the verifier of Clerk session tokens and its cached keys.
    pub clerk: Option<Arc<crate::domain::orgs::clerk::Verifier>>,
    /// Uploaded files (knowledge documents).
    pub storage: crate::storage::Storage,
    /// Rows kept between requests (admin principals, gateways' relay identities).
    pub memos: Arc<crate::domain::memos::Memos>,
    /// Gateways' HTTP heartbeats, written in group commits.
    pub heartbeats: Addr<crate::actors::heartbeats::Heartbeats>,
    /// What H5 sockets handed their clients, recorded in group commits.
    pub delivered: Addr<crate::actors::delivered::DeliveredMarks>,
    /// H5 chat messages in known sessions, written in group commits.
    pub chat_writes: Addr<crate::actors::chat_writes::ChatWrites>,
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

    /// What a relay link or a gateway client uses.
    pub fn link_deps(&self) -> LinkDeps {
        LinkDeps {
            settings: self.settings.clone(),
            db: self.db.clone(),
            router: self.router.clone(),
            presence: self.presence.clone(),
            rpc: self.rpc.clone(),
            memos: self.memos.clone(),
        }
    }

    /// A gateway client's dependencies (the device key is read once per process).
    pub async fn gateway_client_deps(&self) -> Result<crate::actors::openclaw::ClientDeps, String> {
        let link = self.link_deps();
        let device = crate::actors::openclaw::device_key(&link, &self.device).await?;
        Ok(crate::actors::openclaw::ClientDeps { link, device })
    }

    pub fn agents_changed(&self, organization_id: uuid::Uuid) {
        self.feeds.do_send(Poke::plain(
            Channel::AgentsFeed(organization_id).to_string(),
        ));
    }

    /// A new agent event: the organization's command-center streams read it.
    pub fn agent_event_recorded(&self, organization_id: uuid::Uuid) {
        self.feeds.do_send(Poke::plain(
            Channel::CommandCenterFeed(organization_id).to_string(),
        ));
    }
}
