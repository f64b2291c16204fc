//! The local Registry: which actor on this instance holds which socket (gateway links, H5
//! chat sockets), and the one door for "send to an id" (`Route`, through a `Router`): it
//! alone decides between delivering to a local socket, publishing for another instance, and
//! answering that nobody holds the id (the caller then keeps what it sent).
//!
//! It extends itself across instances through the Bridge: while it holds a gateway's link
//! it subscribes `Channel::GatewayRoute`, while it holds a socket of an H5 user
//! `Channel::UserRoute`, and it delivers the `RouteMessage`s that arrive there to its local
//! sockets exactly as it delivers its own.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Reconnected, Subscribe, Unsubscribe, Watch};
use super::presence::Presence;
use super::socket::Outbox;
use crate::protocol::bus::RouteMessage;
use crate::protocol::channels::{gateway_presence, Channel};

/// What the registry tells a socket actor.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Control {
    /// A newer connection took over.
    Replaced,
    /// The account behind the socket was suspended or deleted.
    Revoked(String),
    /// The client did not read its frames; newer ones were dropped (it resumes on reconnect).
    TooSlow,
    /// Frames published while the bridge was down were lost: an H5 socket reads what it
    /// missed, a gateway's holder rewrites its presence.
    Resync,
}

/// A text frame for a socket.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Frame(pub Arc<str>);

/// How a router reaches a socket actor: frames of type `M` go through the socket's
/// bounded outbox.
pub struct SocketHandle<M: Message<Result = ()> + Send = Frame> {
    pub control: Recipient<Control>,
    pub frames: Recipient<M>,
    /// What the socket has queued for its client; frames past `queue_limit` are dropped.
    pub outbox: Outbox,
    pub queue_limit: usize,
}

impl<M: Message<Result = ()> + Send> Clone for SocketHandle<M> {
    fn clone(&self) -> Self {
        SocketHandle {
            control: self.control.clone(),
            frames: self.frames.clone(),
            outbox: self.outbox.clone(),
            queue_limit: self.queue_limit,
        }
    }
}

impl<M: Message<Result = ()> + Send> SocketHandle<M> {
    /// Queues `message` (`len` bytes on the wire) for the socket, unless its client has
    /// stopped taking frames. The bound is enforced here, by the sender: a socket whose
    /// client stops reading also stops running (its actor is driven by the response
    /// stream), so it could not refuse frames itself.
    pub fn deliver_sized(&self, message: M, len: usize) {
        if self.outbox.admit(len, self.queue_limit) {
            self.frames.do_send(message);
        } else if self.outbox.mark_too_slow() {
            tracing::info!("a socket's client is too slow: dropping its frames and closing it");
            self.control.do_send(Control::TooSlow);
        }
    }
}

impl SocketHandle {
    fn deliver(&self, frame: &Arc<str>) {
        self.deliver_sized(Frame(frame.clone()), frame.len());
    }
}

/// Tells a gateway's link that requests for its gateway wait in `gateway_commands`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct FlushCommands;

#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterGateway {
    pub gateway_id: Uuid,
    pub link_id: Uuid,
    pub socket: SocketHandle,
    pub flush: Recipient<FlushCommands>,
}

/// Removes the entry only if it is still this link's (a replaced link must not remove its
/// successor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterGateway {
    pub gateway_id: Uuid,
    pub link_id: Uuid,
}

#[derive(Message)]
#[rtype(result = "bool")]
pub struct HasGateway(pub Uuid);

#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterH5 {
    pub user_id: Uuid,
    pub socket_id: Uuid,
    pub socket: SocketHandle,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct UnregisterH5 {
    pub user_id: Uuid,
    pub socket_id: Uuid,
}

/// Who a `Route` is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// Every socket of an H5 user, on every instance.
    User(Uuid),
    /// The one relay link of a gateway, on whichever instance holds it.
    Gateway(Uuid),
}

impl Address {
    fn channel(self) -> Channel {
        match self {
            Address::User(id) => Channel::UserRoute(id),
            Address::Gateway(id) => Channel::GatewayRoute(id),
        }
    }
}

/// Sends `message` to `to`, wherever it is; answers where it went.
#[derive(Message)]
#[rtype(result = "Delivery")]
pub struct Route {
    pub to: Address,
    pub message: RouteMessage,
}

/// Where a `Route` went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A socket of this instance took it. A user's message is also published, for the
    /// user's sockets on other instances.
    Local,
    /// Published for the instance that holds the id (for a user: this instance has none of
    /// the user's sockets; the user may have none anywhere).
    Published,
    /// Nobody holds the gateway's link: not this instance, and its presence key names no
    /// other one (or the publication failed). The caller keeps what it sent.
    Offline,
}

/// The gateways whose sender (relay link or OpenClaw client) is on this instance.
#[derive(Message)]
#[rtype(result = "Vec<Uuid>")]
pub struct LocalGateways;

/// Local socket counts (for `/connections` and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct H5SocketCount(pub Uuid);

/// The door everything uses to reach a socket by id (see `Route`), and to register sockets.
#[derive(Clone)]
pub struct Router(Addr<Registry>);

impl Router {
    pub fn new(registry: Addr<Registry>) -> Router {
        Router(registry)
    }

    /// Sends and answers where it went (`Offline` when the registry is not running).
    pub async fn send(&self, to: Address, message: RouteMessage) -> Delivery {
        self.0
            .send(Route { to, message })
            .await
            .unwrap_or(Delivery::Offline)
    }

    /// Sends without waiting for the outcome.
    pub fn tell(&self, to: Address, message: RouteMessage) {
        self.0.do_send(Route { to, message });
    }

    /// The registry itself, to register and unregister sockets.
    pub fn registry(&self) -> &Addr<Registry> {
        &self.0
    }
}

struct GatewayEntry {
    link_id: Uuid,
    socket: SocketHandle,
    flush: Recipient<FlushCommands>,
}

impl GatewayEntry {
    /// Hands `message` to the link, from this instance or another.
    fn take(&self, message: &RouteMessage) {
        match message {
            RouteMessage::Frame { text } => self.socket.deliver(&text.as_str().into()),
            RouteMessage::Flush => self.flush.do_send(FlushCommands),
            RouteMessage::Replaced { link_id } => {
                tracing::info!(old_link = %self.link_id, new_link = %link_id, "gateway link replaced on another instance");
                self.socket.control.do_send(Control::Replaced);
            }
            RouteMessage::Close { reason } => self
                .socket
                .control
                .do_send(Control::Revoked(reason.clone())),
        }
    }
}

pub struct Registry {
    bridge: Addr<Bridge>,
    presence: Arc<Presence>,
    gateways: HashMap<Uuid, GatewayEntry>,
    users: HashMap<Uuid, HashMap<Uuid, SocketHandle>>,
}

impl Registry {
    pub fn new(bridge: Addr<Bridge>, presence: Arc<Presence>) -> Registry {
        Registry {
            bridge,
            presence,
            gateways: HashMap::new(),
            users: HashMap::new(),
        }
    }

    fn subscribe(&self, channel: Channel, ctx: &Context<Self>) {
        self.bridge.do_send(Subscribe {
            channel: channel.to_string(),
            subscriber: ctx.address().recipient(),
        });
    }

    fn unsubscribe(&self, channel: Channel, ctx: &Context<Self>) {
        self.bridge.do_send(Unsubscribe {
            channel: channel.to_string(),
            subscriber: ctx.address().recipient(),
        });
    }

    fn publish(&self, to: Address, message: &RouteMessage) {
        self.bridge.do_send(Publish {
            channel: to.channel().to_string(),
            payload: message.encode(),
        });
    }

    /// Hands `message` to the user's sockets here; `true` when there was one.
    fn deliver_to_local_user(&self, user_id: Uuid, message: &RouteMessage) -> bool {
        let Some(sockets) = self.users.get(&user_id) else {
            return false;
        };
        match message {
            RouteMessage::Frame { text } => {
                let frame: Arc<str> = text.as_str().into();
                for socket in sockets.values() {
                    socket.deliver(&frame);
                }
            }
            RouteMessage::Close { reason } => {
                for socket in sockets.values() {
                    socket.control.do_send(Control::Revoked(reason.clone()));
                }
            }
            // Link messages mean nothing to a user's sockets.
            RouteMessage::Replaced { .. } | RouteMessage::Flush => {}
        }
        !sockets.is_empty()
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.bridge.do_send(Watch(ctx.address().recipient()));
    }
}

impl Handler<Reconnected> for Registry {
    type Result = ();

    fn handle(&mut self, _: Reconnected, _: &mut Context<Self>) {
        let sockets = self
            .gateways
            .values()
            .map(|entry| &entry.socket)
            .chain(self.users.values().flat_map(HashMap::values));
        for socket in sockets {
            socket.control.do_send(Control::Resync);
        }
    }
}

impl Supervised for Registry {}

impl Handler<RegisterGateway> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterGateway, ctx: &mut Context<Self>) {
        let entry = GatewayEntry {
            link_id: msg.link_id,
            socket: msg.socket,
            flush: msg.flush,
        };
        match self.gateways.insert(msg.gateway_id, entry) {
            Some(old) => {
                tracing::info!(gateway_id = %msg.gateway_id, old_link = %old.link_id, "gateway link replaced by a newer one");
                old.socket.control.do_send(Control::Replaced);
            }
            None => self.subscribe(Channel::GatewayRoute(msg.gateway_id), ctx),
        }
        // A link on another instance is replaced too: one link per gateway, anywhere.
        self.publish(
            Address::Gateway(msg.gateway_id),
            &RouteMessage::Replaced {
                link_id: msg.link_id,
            },
        );
    }
}

impl Handler<UnregisterGateway> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnregisterGateway, ctx: &mut Context<Self>) {
        if self
            .gateways
            .get(&msg.gateway_id)
            .is_some_and(|entry| entry.link_id == msg.link_id)
        {
            self.gateways.remove(&msg.gateway_id);
            self.unsubscribe(Channel::GatewayRoute(msg.gateway_id), ctx);
        }
    }
}

impl Handler<HasGateway> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: HasGateway, _: &mut Context<Self>) -> bool {
        self.gateways.contains_key(&msg.0)
    }
}

impl Handler<LocalGateways> for Registry {
    type Result = Vec<Uuid>;

    fn handle(&mut self, _: LocalGateways, _: &mut Context<Self>) -> Vec<Uuid> {
        self.gateways.keys().copied().collect()
    }
}

impl Handler<Route> for Registry {
    type Result = ResponseFuture<Delivery>;

    fn handle(&mut self, msg: Route, _: &mut Context<Self>) -> Self::Result {
        let delivery = match msg.to {
            Address::User(user_id) => {
                let local = self.deliver_to_local_user(user_id, &msg.message);
                // A user's sockets may be on any number of instances, none of which is
                // recorded anywhere: always published.
                self.publish(msg.to, &msg.message);
                if local {
                    Delivery::Local
                } else {
                    Delivery::Published
                }
            }
            Address::Gateway(gateway_id) => match self.gateways.get(&gateway_id) {
                Some(entry) => {
                    entry.take(&msg.message);
                    Delivery::Local
                }
                None => {
                    // Published only when the gateway's presence names an instance, so the
                    // caller learns that nobody will take it.
                    let (presence, bridge) = (self.presence.clone(), self.bridge.clone());
                    return Box::pin(async move {
                        if presence.get(&gateway_presence(gateway_id)).await.is_none() {
                            return Delivery::Offline;
                        }
                        let published = bridge
                            .send(Publish {
                                channel: msg.to.channel().to_string(),
                                payload: msg.message.encode(),
                            })
                            .await;
                        match published {
                            // A publication nobody received is no delivery: the instance the
                            // presence names is gone (its key outlives it by up to its TTL).
                            Ok(Ok(receivers)) if receivers > 0 => Delivery::Published,
                            _ => Delivery::Offline,
                        }
                    });
                }
            },
        };
        Box::pin(std::future::ready(delivery))
    }
}

impl Handler<RegisterH5> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterH5, ctx: &mut Context<Self>) {
        let sockets = self.users.entry(msg.user_id).or_default();
        sockets.insert(msg.socket_id, msg.socket);
        if sockets.len() == 1 {
            self.subscribe(Channel::UserRoute(msg.user_id), ctx);
        }
    }
}

impl Handler<UnregisterH5> for Registry {
    type Result = ();

    fn handle(&mut self, msg: UnregisterH5, ctx: &mut Context<Self>) {
        let Some(sockets) = self.users.get_mut(&msg.user_id) else {
            return;
        };
        sockets.remove(&msg.socket_id);
        if sockets.is_empty() {
            self.users.remove(&msg.user_id);
            self.unsubscribe(Channel::UserRoute(msg.user_id), ctx);
        }
    }
}

impl Handler<H5SocketCount> for Registry {
    type Result = usize;

    fn handle(&mut self, msg: H5SocketCount, _: &mut Context<Self>) -> usize {
        self.users.get(&msg.0).map_or(0, HashMap::len)
    }
}

/// Publications of other instances on the channels this registry subscribed.
impl Handler<BusMessage> for Registry {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        let Some(message) = RouteMessage::decode(&msg.payload) else {
            tracing::warn!(channel = %msg.channel, "dropping a publication that is no route message");
            return;
        };
        match Channel::parse(&msg.channel) {
            Some(Channel::GatewayRoute(id)) => {
                if let Some(entry) = self.gateways.get(&id) {
                    entry.take(&message);
                }
            }
            Some(Channel::UserRoute(id)) => {
                self.deliver_to_local_user(id, &message);
            }
            _ => {}
        }
    }
}
