//! The local Registry: which actor on this instance holds which socket (gateway links, H5
//! chat sockets). It extends itself across instances through the Bridge: while it holds a
//! gateway's link it subscribes `ws:route:gateway:{id}`, while it holds a socket of an H5
//! user `ws:route:h5:{id}`, and it delivers what arrives there to its local sockets.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe, Unsubscribe};
use super::socket::Outbox;

/// What the registry tells a socket actor.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum Control {
    /// A newer connection took over.
    Replaced,
    /// The server is shutting down.
    GoingAway,
    /// The account behind the socket was suspended or deleted.
    Revoked(String),
    /// The client did not read its frames; newer ones were dropped (it resumes on reconnect).
    TooSlow,
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

/// Wakes the link of a gateway (to send its recorded requests), on whichever instance holds
/// it; nothing happens when no instance does.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PokeGateway(pub Uuid);

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

/// A frame for a gateway's link: `true` when this instance holds the link and took it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ToLocalGateway {
    pub gateway_id: Uuid,
    pub frame: Arc<str>,
}

/// A frame for every socket of an H5 user, on every instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ToUser {
    pub user_id: Uuid,
    pub frame: Arc<str>,
}

/// Closes every socket of an H5 user, on every instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseUser {
    pub user_id: Uuid,
    pub reason: String,
}

/// Tells every socket to close with "going away"; answers how many were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

/// Local socket counts (for `/connections` and tests).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct H5SocketCount(pub Uuid);

pub fn gateway_channel(gateway_id: Uuid) -> String {
    format!("ws:route:gateway:{gateway_id}")
}

pub fn user_channel(user_id: Uuid) -> String {
    format!("ws:route:h5:{user_id}")
}

/// Control messages share the user and gateway channels; a frame never starts with NUL.
const CLOSE_MARKER: &str = "\u{0}close:";
const FLUSH_MARKER: &str = "\u{0}flush";

struct GatewayEntry {
    link_id: Uuid,
    socket: SocketHandle,
    flush: Recipient<FlushCommands>,
}

pub struct Registry {
    bridge: Addr<Bridge>,
    gateways: HashMap<Uuid, GatewayEntry>,
    users: HashMap<Uuid, HashMap<Uuid, SocketHandle>>,
}

impl Registry {
    pub fn new(bridge: Addr<Bridge>) -> Registry {
        Registry {
            bridge,
            gateways: HashMap::new(),
            users: HashMap::new(),
        }
    }

    fn subscribe(&self, channel: String, ctx: &Context<Self>) {
        self.bridge.do_send(Subscribe {
            channel,
            subscriber: ctx.address().recipient(),
        });
    }

    fn unsubscribe(&self, channel: String, ctx: &Context<Self>) {
        self.bridge.do_send(Unsubscribe {
            channel,
            subscriber: ctx.address().recipient(),
        });
    }

    fn deliver_to_local_user(&self, user_id: Uuid, frame: &Arc<str>) {
        for socket in self
            .users
            .get(&user_id)
            .into_iter()
            .flat_map(HashMap::values)
        {
            socket.deliver(frame);
        }
    }

    fn close_local_user(&self, user_id: Uuid, reason: &str) {
        for socket in self
            .users
            .get(&user_id)
            .into_iter()
            .flat_map(HashMap::values)
        {
            socket.control.do_send(Control::Revoked(reason.to_string()));
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
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
            None => self.subscribe(gateway_channel(msg.gateway_id), ctx),
        }
        // A link on another instance is replaced too: one link per gateway, anywhere.
        let takeover = format!("{CLOSE_MARKER}{}", msg.link_id);
        self.bridge.do_send(Publish {
            channel: gateway_channel(msg.gateway_id),
            payload: takeover,
        });
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
            self.unsubscribe(gateway_channel(msg.gateway_id), ctx);
        }
    }
}

impl Handler<HasGateway> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: HasGateway, _: &mut Context<Self>) -> bool {
        self.gateways.contains_key(&msg.0)
    }
}

impl Handler<ToLocalGateway> for Registry {
    type Result = bool;

    fn handle(&mut self, msg: ToLocalGateway, _: &mut Context<Self>) -> bool {
        match self.gateways.get(&msg.gateway_id) {
            Some(entry) => {
                entry.socket.deliver(&msg.frame);
                true
            }
            None => false,
        }
    }
}

impl Handler<PokeGateway> for Registry {
    type Result = ();

    fn handle(&mut self, msg: PokeGateway, _: &mut Context<Self>) {
        match self.gateways.get(&msg.0) {
            Some(entry) => entry.flush.do_send(FlushCommands),
            None => self.bridge.do_send(Publish {
                channel: gateway_channel(msg.0),
                payload: FLUSH_MARKER.to_string(),
            }),
        }
    }
}

impl Handler<RegisterH5> for Registry {
    type Result = ();

    fn handle(&mut self, msg: RegisterH5, ctx: &mut Context<Self>) {
        let sockets = self.users.entry(msg.user_id).or_default();
        sockets.insert(msg.socket_id, msg.socket);
        if sockets.len() == 1 {
            self.subscribe(user_channel(msg.user_id), ctx);
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
            self.unsubscribe(user_channel(msg.user_id), ctx);
        }
    }
}

impl Handler<ToUser> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ToUser, _: &mut Context<Self>) {
        self.deliver_to_local_user(msg.user_id, &msg.frame);
        self.bridge.do_send(Publish {
            channel: user_channel(msg.user_id),
            payload: msg.frame.to_string(),
        });
    }
}

impl Handler<CloseUser> for Registry {
    type Result = ();

    fn handle(&mut self, msg: CloseUser, _: &mut Context<Self>) {
        self.close_local_user(msg.user_id, &msg.reason);
        let payload = format!("{CLOSE_MARKER}{}", msg.reason);
        self.bridge.do_send(Publish {
            channel: user_channel(msg.user_id),
            payload,
        });
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
        let control = msg.payload.strip_prefix(CLOSE_MARKER);
        if let Some(id) = msg
            .channel
            .strip_prefix("ws:route:gateway:")
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            let Some(entry) = self.gateways.get(&id) else {
                return;
            };
            if &*msg.payload == FLUSH_MARKER {
                entry.flush.do_send(FlushCommands);
                return;
            }
            match control {
                // Another instance took this gateway's link over.
                Some(_) => {
                    entry.socket.control.do_send(Control::Replaced);
                }
                None => entry.socket.deliver(&msg.payload),
            }
        } else if let Some(id) = msg
            .channel
            .strip_prefix("ws:route:h5:")
            .and_then(|id| id.parse::<Uuid>().ok())
        {
            match control {
                Some(reason) => self.close_local_user(id, reason),
                None => self.deliver_to_local_user(id, &msg.payload),
            }
        }
    }
}

impl Handler<CloseAll> for Registry {
    type Result = usize;

    fn handle(&mut self, _: CloseAll, _: &mut Context<Self>) -> usize {
        let sockets = self
            .gateways
            .values()
            .map(|entry| &entry.socket)
            .chain(self.users.values().flat_map(HashMap::values));
        let mut count = 0;
        for socket in sockets {
            socket.control.do_send(Control::GoingAway);
            count += 1;
        }
        count
    }
}
