//! The `FeedHub`: wakes the SSE streams of a topic (a board's feed, a board group's memory, an
//! organization's comment feed or agents) when something was committed to it, on every instance.
//!
//! A poke carries no data: each stream reads what is new from PostgreSQL after its own
//! cursor, so a lost or doubled poke never loses or doubles an event. The hub subscribes a
//! topic's bridge channel while a local stream listens to it. A topic is a channel name
//! (`protocol::channels::Channel`: the feeds and `BoardSync`).

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe, Unsubscribe};

/// A stream starts listening; `wake` gets a unit whenever the topic may have news.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Listen {
    pub topic: String,
    pub listener: Uuid,
    pub wake: mpsc::Sender<()>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unlisten {
    pub topic: String,
    pub listener: Uuid,
}

/// Something was committed to `topic`: wake its streams here and on the other instances.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poke {
    pub topic: String,
}

pub struct FeedHub {
    bridge: Addr<Bridge>,
    topics: HashMap<String, HashMap<Uuid, mpsc::Sender<()>>>,
}

impl FeedHub {
    pub fn new(bridge: Addr<Bridge>) -> FeedHub {
        FeedHub {
            bridge,
            topics: HashMap::new(),
        }
    }

    fn wake(&mut self, topic: &str) {
        if let Some(listeners) = self.topics.get_mut(topic) {
            // A full channel already holds a wake-up the stream has yet to act on.
            listeners.retain(|_, wake| !wake.is_closed());
            for wake in listeners.values() {
                let _ = wake.try_send(());
            }
        }
    }
}

impl Actor for FeedHub {
    type Context = Context<Self>;
}

impl Supervised for FeedHub {}

impl Handler<Listen> for FeedHub {
    type Result = ();

    fn handle(&mut self, msg: Listen, ctx: &mut Context<Self>) {
        let listeners = self.topics.entry(msg.topic.clone()).or_default();
        if listeners.is_empty() {
            self.bridge.do_send(Subscribe {
                channel: msg.topic,
                subscriber: ctx.address().recipient(),
            });
        }
        listeners.insert(msg.listener, msg.wake);
    }
}

impl Handler<Unlisten> for FeedHub {
    type Result = ();

    fn handle(&mut self, msg: Unlisten, ctx: &mut Context<Self>) {
        let Some(listeners) = self.topics.get_mut(&msg.topic) else {
            return;
        };
        listeners.remove(&msg.listener);
        if listeners.is_empty() {
            self.topics.remove(&msg.topic);
            self.bridge.do_send(Unsubscribe {
                channel: msg.topic,
                subscriber: ctx.address().recipient(),
            });
        }
    }
}

impl Handler<Poke> for FeedHub {
    type Result = ();

    fn handle(&mut self, msg: Poke, _: &mut Context<Self>) {
        self.wake(&msg.topic);
        // Without Redis a stream still catches up on its next keepalive tick.
        let publish = self.bridge.send(Publish {
            channel: msg.topic,
            payload: String::new(),
        });
        actix::spawn(async move {
            if let Ok(Err(e)) = publish.await {
                tracing::warn!(error = %e, "feed poke not published");
            }
        });
    }
}

/// Pokes from other instances.
impl Handler<BusMessage> for FeedHub {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        self.wake(&msg.channel);
    }
}
