//! The `FeedHub`: wakes the streams of a topic (a board's feed, a board group's memory, an
//! organization's comment feed or agents, a board's sync log) when something was committed
//! to it, on every instance.
//!
//! A plain poke carries no data: each stream reads what is new from PostgreSQL after its
//! own cursor, so a lost or doubled poke never loses or doubles an event. A poke may carry
//! news (a board's sync events: `protocol::bus::SyncNews`), which spares its listeners the
//! read; they still read to fill a gap. The hub subscribes a topic's bridge channel while a
//! local stream listens to it. A topic is a channel name (`protocol::channels::Channel`).

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe, Unsubscribe};

/// How a listener is woken.
pub enum Wake {
    /// A unit whenever the topic may have news; one slot is enough, as a pending wake-up
    /// already covers every later commit.
    Poke(mpsc::Sender<()>),
    /// Each poke's payload, in order (empty for a plain poke): news is not to be dropped.
    News(mpsc::UnboundedSender<Arc<str>>),
}

impl Wake {
    /// False once the listener is gone.
    fn wake(&self, payload: &Arc<str>) -> bool {
        match self {
            // A full channel already holds a wake-up the stream has yet to act on.
            Wake::Poke(wake) => !matches!(
                wake.try_send(()),
                Err(mpsc::error::TrySendError::Closed(()))
            ),
            Wake::News(news) => news.send(payload.clone()).is_ok(),
        }
    }
}

/// A stream starts listening to `topic`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Listen {
    pub topic: String,
    pub listener: Uuid,
    pub wake: Wake,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Unlisten {
    pub topic: String,
    pub listener: Uuid,
}

/// Something was committed to `topic`: wake its streams here and on the other instances,
/// with `payload` (empty: a plain poke).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poke {
    pub topic: String,
    pub payload: Arc<str>,
}

impl Poke {
    pub fn plain(topic: String) -> Poke {
        Poke {
            topic,
            payload: Arc::from(""),
        }
    }
}

pub struct FeedHub {
    bridge: Addr<Bridge>,
    topics: HashMap<String, HashMap<Uuid, Wake>>,
}

impl FeedHub {
    pub fn new(bridge: Addr<Bridge>) -> FeedHub {
        FeedHub {
            bridge,
            topics: HashMap::new(),
        }
    }

    fn wake(&mut self, topic: &str, payload: &Arc<str>) {
        if let Some(listeners) = self.topics.get_mut(topic) {
            listeners.retain(|_, wake| wake.wake(payload));
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
        self.wake(&msg.topic, &msg.payload);
        // Without Redis a stream still catches up on its next keepalive tick.
        let publish = self.bridge.send(Publish {
            channel: msg.topic,
            payload: msg.payload.to_string(),
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
        self.wake(&msg.channel, &msg.payload);
    }
}
