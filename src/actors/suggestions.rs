//! Proactive suggestions, live: one `SuggestionHub` per organization per instance hands
//! each new suggestion to the organization's listeners here (the suggestion SSE streams,
//! and board sockets for the suggestions of their board). A hub subscribes the bridge
//! channel `suggestions:{org_id}` while it has listeners; `publish` reaches the hubs of
//! every instance. `SuggestionHubs` starts a hub with its first listener and stops it with
//! its last.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe, Unsubscribe};
use crate::protocol::channels::Channel;
use crate::protocol::{self, board};

/// Suggestions a listener may have waiting; a listener that falls further behind is
/// dropped (its stream ends and the client reconnects).
pub const LISTENER_QUEUE: usize = 128;

fn channel(organization_id: Uuid) -> String {
    Channel::Suggestions(organization_id).to_string()
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Listen {
    pub organization_id: Uuid,
    pub listener: Uuid,
    /// Only suggestions of this board (a board socket); `None` for all.
    pub board_id: Option<Uuid>,
    pub frames: mpsc::Sender<Arc<str>>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unlisten {
    pub organization_id: Uuid,
    pub listener: Uuid,
}

/// A new suggestion of the organization: to its listeners here and on every instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishSuggestion {
    pub organization_id: Uuid,
    pub suggestion: Value,
}

/// What every creator of suggestions (agents' posts, the proactivity engine) calls after
/// its commit.
pub fn publish(hubs: &Addr<SuggestionHubs>, organization_id: Uuid, suggestion: Value) {
    hubs.do_send(PublishSuggestion {
        organization_id,
        suggestion,
    });
}

pub struct SuggestionHubs {
    bridge: Addr<Bridge>,
    hubs: HashMap<Uuid, (Addr<SuggestionHub>, usize)>,
}

impl SuggestionHubs {
    pub fn new(bridge: Addr<Bridge>) -> SuggestionHubs {
        SuggestionHubs {
            bridge,
            hubs: HashMap::new(),
        }
    }
}

impl Actor for SuggestionHubs {
    type Context = Context<Self>;
}

impl Supervised for SuggestionHubs {}

impl Handler<Listen> for SuggestionHubs {
    type Result = ();

    fn handle(&mut self, msg: Listen, _: &mut Context<Self>) {
        let (hub, count) = self.hubs.entry(msg.organization_id).or_insert_with(|| {
            let hub = SuggestionHub::new(msg.organization_id, self.bridge.clone()).start();
            (hub, 0)
        });
        *count += 1;
        hub.do_send(msg);
    }
}

impl Handler<Unlisten> for SuggestionHubs {
    type Result = ();

    fn handle(&mut self, msg: Unlisten, _: &mut Context<Self>) {
        let Some((hub, count)) = self.hubs.get_mut(&msg.organization_id) else {
            return;
        };
        *count -= 1;
        let (last, organization_id) = (*count == 0, msg.organization_id);
        hub.do_send(msg);
        if last {
            if let Some((hub, _)) = self.hubs.remove(&organization_id) {
                hub.do_send(Stop);
            }
        }
    }
}

impl Handler<PublishSuggestion> for SuggestionHubs {
    type Result = ();

    fn handle(&mut self, msg: PublishSuggestion, _: &mut Context<Self>) {
        let frame = board::Outbound::SuggestionNew {
            suggestion: &msg.suggestion,
        };
        let text: Arc<str> = protocol::text(&frame).into();
        if let Some((hub, _)) = self.hubs.get(&msg.organization_id) {
            hub.do_send(Deliver(text.clone()));
        }
        let publish = self.bridge.send(Publish {
            channel: channel(msg.organization_id),
            payload: text.to_string(),
        });
        actix::spawn(async move {
            if let Ok(Err(e)) = publish.await {
                tracing::warn!(error = %e, "suggestion not published to other instances");
            }
        });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Deliver(Arc<str>);

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

pub struct SuggestionHub {
    organization_id: Uuid,
    bridge: Addr<Bridge>,
    listeners: HashMap<Uuid, (Option<Uuid>, mpsc::Sender<Arc<str>>)>,
}

impl SuggestionHub {
    fn new(organization_id: Uuid, bridge: Addr<Bridge>) -> SuggestionHub {
        SuggestionHub {
            organization_id,
            bridge,
            listeners: HashMap::new(),
        }
    }

    fn deliver(&mut self, text: &Arc<str>) {
        let board_id = serde_json::from_str::<Value>(text).ok().and_then(|v| {
            v["suggestion"]["board_id"]
                .as_str()
                .and_then(|b| b.parse::<Uuid>().ok())
        });
        self.listeners.retain(|_, (only, frames)| {
            if only.is_some() && *only != board_id {
                return !frames.is_closed();
            }
            match frames.try_send(text.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!("a suggestion listener fell behind; dropping it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

impl Actor for SuggestionHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.bridge.do_send(Subscribe {
            channel: channel(self.organization_id),
            subscriber: ctx.address().recipient(),
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.bridge.do_send(Unsubscribe {
            channel: channel(self.organization_id),
            subscriber: ctx.address().recipient(),
        });
    }
}

impl Handler<Listen> for SuggestionHub {
    type Result = ();

    fn handle(&mut self, msg: Listen, _: &mut Context<Self>) {
        self.listeners
            .insert(msg.listener, (msg.board_id, msg.frames));
    }
}

impl Handler<Unlisten> for SuggestionHub {
    type Result = ();

    fn handle(&mut self, msg: Unlisten, _: &mut Context<Self>) {
        self.listeners.remove(&msg.listener);
    }
}

impl Handler<Deliver> for SuggestionHub {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Context<Self>) {
        self.deliver(&msg.0);
    }
}

impl Handler<Stop> for SuggestionHub {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Suggestions published on other instances.
impl Handler<BusMessage> for SuggestionHub {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        self.deliver(&msg.payload);
    }
}
