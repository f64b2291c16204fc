//! The `Bridge`: extends local actor addresses across instances over Redis pub/sub.
//!
//! It owns the subscription counts; a dedicated connection task (`bridge_link`) owns the
//! Redis pub/sub connection, reconnects with backoff and resubscribes. Publications carry
//! the sending instance id so an instance ignores its own. Without Redis the bridge runs
//! in-process: there are no other instances, so publishing reaches nobody else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::bridge_link::{self, LinkCommand};
use crate::db::cache::RedisPool;
use crate::protocol::channels::Channel;

/// A publication from another instance, handed to every local subscriber of its channel.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct BusMessage {
    pub channel: Arc<str>,
    pub payload: Arc<str>,
}

/// Adds one reference to `channel`; the first reference subscribes in Redis.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub channel: String,
    pub subscriber: Recipient<BusMessage>,
}

/// Asks to be told each time the pub/sub connection comes back after a loss: publications of
/// that time were lost, and what they carried must be read again from PostgreSQL.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Recipient<Reconnected>);

/// The pub/sub connection is back after a loss.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Reconnected;

/// Drops one reference; the last one unsubscribes in Redis.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub channel: String,
    pub subscriber: Recipient<BusMessage>,
}

/// Sends `payload` to the subscribers of `channel` on every other instance; answers how many
/// instances received it (Redis's count of subscribers; 0 without Redis).
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Publish {
    pub channel: String,
    pub payload: String,
}

/// Proves the pub/sub loop end to end: publishes a nonce and waits for it to come back.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Probe {
    pub timeout: Duration,
}

/// From the link task: a raw publication.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct Delivered {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// From the link task: the pub/sub connection went up or down.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct LinkState {
    pub up: bool,
}

/// How many channels and references the bridge holds (for tests and diagnostics).
#[derive(Message)]
#[rtype(result = "BridgeStats")]
pub struct Stats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct BridgeStats {
    pub channels: usize,
    pub subscribers: usize,
    pub link_up: bool,
}

struct RedisLink {
    commands: mpsc::UnboundedSender<LinkCommand>,
    publisher: RedisPool,
    up: bool,
}

pub struct Bridge {
    instance_id: Arc<str>,
    probe_channel: String,
    link: Option<RedisLink>,
    redis: Option<(redis::Client, RedisPool)>,
    subscriptions: HashMap<String, Vec<Recipient<BusMessage>>>,
    pending_probes: HashMap<String, oneshot::Sender<()>>,
    watchers: Vec<Recipient<Reconnected>>,
    /// The connection was lost since it was last up: its return is a reconnection.
    lost: bool,
}

impl Bridge {
    /// A bridge over Redis: `url` for the pub/sub connection, `publisher` for PUBLISH.
    pub fn redis(instance_id: &str, url: &str, publisher: RedisPool) -> Result<Bridge, String> {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Bridge::new(instance_id, Some((client, publisher))))
    }

    /// The single-instance bridge: local delivery only.
    pub fn in_process(instance_id: &str) -> Bridge {
        Bridge::new(instance_id, None)
    }

    fn new(instance_id: &str, redis: Option<(redis::Client, RedisPool)>) -> Bridge {
        Bridge {
            instance_id: instance_id.into(),
            probe_channel: Channel::Probe(instance_id.to_string()).to_string(),
            link: None,
            redis,
            subscriptions: HashMap::new(),
            pending_probes: HashMap::new(),
            watchers: Vec::new(),
            lost: false,
        }
    }

    fn send_link(&mut self, command: LinkCommand) {
        if let Some(link) = &self.link {
            // The link task only ends with the bridge; a closed channel means it is gone.
            if link.commands.send(command).is_err() {
                tracing::error!("bridge link task is gone");
            }
        }
    }

    fn envelope(&self, payload: &str) -> String {
        format!("{}\n{}", self.instance_id, payload)
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some((client, publisher)) = self.redis.clone() else {
            tracing::info!("no REDIS_URL: single instance, in-process bus");
            return;
        };
        if self.link.is_none() {
            let mut channels: Vec<String> = self.subscriptions.keys().cloned().collect();
            channels.push(self.probe_channel.clone());
            let commands = bridge_link::spawn(client, channels, ctx.address());
            self.link = Some(RedisLink {
                commands,
                publisher,
                up: false,
            });
        }
    }
}

impl Supervised for Bridge {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // Subscriptions live in this value and the link task outlives the context, so a
        // restart keeps both; only probes waiting on the old context are dropped.
        tracing::warn!("bridge restarting");
        self.pending_probes.clear();
    }
}

impl Handler<Subscribe> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) {
        let subscribers = self.subscriptions.entry(msg.channel.clone()).or_default();
        subscribers.push(msg.subscriber);
        if subscribers.len() == 1 {
            self.send_link(LinkCommand::Subscribe(msg.channel));
        }
    }
}

impl Handler<Unsubscribe> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _: &mut Context<Self>) {
        let Some(subscribers) = self.subscriptions.get_mut(&msg.channel) else {
            return;
        };
        if let Some(pos) = subscribers.iter().position(|s| *s == msg.subscriber) {
            subscribers.swap_remove(pos);
        }
        if subscribers.is_empty() {
            self.subscriptions.remove(&msg.channel);
            self.send_link(LinkCommand::Unsubscribe(msg.channel));
        }
    }
}

impl Handler<Publish> for Bridge {
    type Result = ResponseFuture<Result<usize, String>>;

    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) -> Self::Result {
        let Some(link) = &self.link else {
            return Box::pin(async { Ok(0) });
        };
        let pool = link.publisher.clone();
        let envelope = self.envelope(&msg.payload);
        Box::pin(async move { publish(&pool, &msg.channel, &envelope).await })
    }
}

async fn publish(pool: &RedisPool, channel: &str, envelope: &str) -> Result<usize, String> {
    let mut conn = pool.get().await.map_err(|e| format!("redis: {e}"))?;
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(envelope)
        .query_async::<i64>(&mut *conn)
        .await
        .map(|receivers| receivers.max(0) as usize)
        .map_err(|e| format!("redis: {e}"))
}

impl Handler<Probe> for Bridge {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: Probe, _: &mut Context<Self>) -> Self::Result {
        let Some(link) = &self.link else {
            return Box::pin(fut::ready(Ok(())));
        };
        if !link.up {
            return Box::pin(fut::ready(Err(
                "redis pub/sub connection is down".to_string()
            )));
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending_probes.insert(nonce.clone(), tx);
        let pool = link.publisher.clone();
        let channel = self.probe_channel.clone();
        let envelope = self.envelope(&nonce);
        let round_trip = async move {
            publish(&pool, &channel, &envelope).await?;
            rx.await.map_err(|_| "probe was dropped".to_string())
        };
        Box::pin(
            async move {
                tokio::time::timeout(msg.timeout, round_trip)
                    .await
                    .unwrap_or_else(|_| {
                        Err("redis pub/sub probe did not come back in time".to_string())
                    })
            }
            .into_actor(self)
            .map(move |result, act, _| {
                act.pending_probes.remove(&nonce);
                result
            }),
        )
    }
}

impl Handler<Delivered> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Delivered, _: &mut Context<Self>) {
        let Ok(text) = std::str::from_utf8(&msg.payload) else {
            tracing::warn!(channel = %msg.channel, "dropping a non-UTF-8 publication");
            return;
        };
        let Some((origin, payload)) = text.split_once('\n') else {
            tracing::warn!(channel = %msg.channel, "dropping a publication without an envelope");
            return;
        };
        if msg.channel == self.probe_channel {
            if let Some(waiter) = self.pending_probes.remove(payload) {
                let _ = waiter.send(());
            }
            return;
        }
        if origin == &*self.instance_id {
            return;
        }
        let Some(subscribers) = self.subscriptions.get_mut(&msg.channel) else {
            return;
        };
        let message = BusMessage {
            channel: msg.channel.as_str().into(),
            payload: payload.into(),
        };
        // A subscriber that stopped without unsubscribing is dropped here.
        subscribers.retain(|s| s.connected());
        for subscriber in subscribers.iter() {
            subscriber.do_send(message.clone());
        }
    }
}

impl Handler<LinkState> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: LinkState, _: &mut Context<Self>) {
        if let Some(link) = &mut self.link {
            if link.up != msg.up {
                if msg.up {
                    tracing::info!(
                        channels = self.subscriptions.len(),
                        "bridge connected to redis"
                    );
                    if std::mem::take(&mut self.lost) {
                        for watcher in &self.watchers {
                            watcher.do_send(Reconnected);
                        }
                    }
                } else {
                    tracing::warn!("bridge lost its redis pub/sub connection; reconnecting");
                    self.lost = true;
                }
            }
            link.up = msg.up;
        }
    }
}

impl Handler<Watch> for Bridge {
    type Result = ();

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) {
        self.watchers.push(msg.0);
    }
}

impl Handler<Stats> for Bridge {
    type Result = BridgeStats;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> BridgeStats {
        BridgeStats {
            channels: self.subscriptions.len(),
            subscribers: self.subscriptions.values().map(Vec::len).sum(),
            link_up: self.link.as_ref().is_some_and(|l| l.up),
        }
    }
}
