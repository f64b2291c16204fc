//! `GatewayLink`: one per gateway relay WebSocket (`/ws/gateway/{id}/relay`).
//!
//! The first frame must be `{"type":"auth","payload":{"relay_token":…}}` within
//! WS_AUTH_TIMEOUT_SECONDS; then the link registers in the local Registry (replacing an
//! older link of the same gateway), records its presence in Redis, and marks the gateway
//! online. Every frame counts as a heartbeat (written at most every half heartbeat
//! interval). The server pings every WS_HEARTBEAT_INTERVAL_SECONDS and closes a link that
//! sent nothing, not even a pong, for WS_HEARTBEAT_TIMEOUT_SECONDS. The protocol is in
//! docs/gateway-protocol.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws;
use chrono::Utc;
use uuid::Uuid;

use super::gateway_flush::{claim_due, record_answer, store_replies, Flushes, RecentIds};
use super::gateway_rpc::RpcReplies;
use super::presence::{self, Presence};
use super::registry::{
    Address, Control, FlushCommands, Frame, RegisterGateway, Router, SocketHandle,
    UnregisterGateway,
};
use super::socket::{self, Outbox};
use crate::actors::openclaw::{ClientDeps, DeviceCell, FromConnector, Stop, ToConnector, Tunnel};
use crate::config::Settings;
use crate::db::PgPool;
use crate::domain::gateways::dialing;
use crate::domain::gateways::registry::{self as gateway_registry, GatewayIdentity, ONLINE};
use crate::domain::h5::chat::{self as h5_chat, StoredReply};
use crate::domain::h5::delivery::{self, Taken};
use crate::domain::outbox::commands as gateway_commands;
use crate::protocol::bus::{GatewayPresence, RouteMessage};
use crate::protocol::channels::gateway_presence;
use crate::protocol::codes::{Close, ErrorCode};
use crate::protocol::h5::AgentPresence;
use crate::protocol::relay::{self, ChatReply, Outbound, Request, RpcResult};
use crate::protocol::{self, text};

/// What a relay link uses, handed over at the upgrade: the gateway's rows, the router to
/// reach H5 users, the presence it writes, the callers waiting for answers, and its
/// settings (instance id, socket limits, request retries).
#[derive(Clone)]
pub struct LinkDeps {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub router: Router,
    pub presence: Arc<Presence>,
    pub rpc: Addr<RpcReplies>,
    pub memos: Arc<crate::domain::memos::Memos>,
}

pub struct GatewayLink {
    deps: LinkDeps,
    gateway_id: Uuid,
    link_id: Uuid,
    peer: String,
    identity: Option<GatewayIdentity>,
    authenticating: bool,
    /// The presence entry this link wrote, so it removes only its own.
    presence: Option<String>,
    last_frame: Instant,
    last_touch: Option<Instant>,
    slot: socket::Slot,
    /// A text message arriving in fragments.
    fragments: socket::Fragments,
    /// What this socket has queued for its client (see `socket::Outbox`).
    outbox: Outbox,
    /// Set when a newer link took over: this one's end is not the gateway going away.
    replaced: bool,
    /// Recorded requests and held messages being claimed and sent.
    flushes: Flushes,
    /// The gateway acknowledges H5 messages (`chat.ack` in its capabilities): they stay
    /// pending until it does. Otherwise a message counts as taken once written to the link
    /// (at most once: what the link loses is lost).
    acks: bool,
    /// The H5 messages this connection wrote lately (a gateway without acks gets each at
    /// most once: a message routed here while the connection's first flush claimed it too
    /// is written once).
    written: RecentIds,
    /// A connector asked for the OpenClaw tunnel (with the local gateway's token): the
    /// link then carries the gateway's `GatewayClient`, which is the gateway's route for
    /// chat and requests, instead of relay frames (`protocol::tunnel`).
    tunnel: Option<Tunnelled>,
    device: DeviceCell,
    /// The reference's chat socket (`/relay-m4`): its frames only — refusals are closes
    /// without an `auth_error` frame, bad or unknown frames are ignored without an `error`
    /// frame, and the heartbeat interval is WS_HEARTBEAT_INTERVAL_SECONDS.
    m4: bool,
    /// Replies (with their frames' sizes) waiting for the batch being stored
    /// (`storing_replies`) to commit.
    replies: std::collections::VecDeque<(ChatReply, usize)>,
    storing_replies: bool,
    /// Messages taken while the previous ones are being recorded (`recording_taken`).
    taken_ids: Vec<Uuid>,
    recording_taken: bool,
}

/// Replies stored in one transaction at most.
const REPLY_BATCH: usize = 100;

enum Tunnelled {
    Asked(Option<String>),
    Running(Addr<Tunnel>),
}

impl GatewayLink {
    /// `slot` is `None` when the instance is at its connection limit: the socket is then
    /// closed right away with 1013.
    pub fn new(
        deps: LinkDeps,
        gateway_id: Uuid,
        peer: String,
        slot: socket::Slot,
        outbox: Outbox,
        device: DeviceCell,
    ) -> GatewayLink {
        GatewayLink {
            deps,
            gateway_id,
            link_id: Uuid::new_v4(),
            peer,
            identity: None,
            authenticating: false,
            presence: None,
            last_frame: Instant::now(),
            last_touch: None,
            slot,
            fragments: socket::Fragments::default(),
            outbox,
            replaced: false,
            flushes: Flushes::default(),
            acks: false,
            written: RecentIds::default(),
            tunnel: None,
            device,
            m4: false,
            replies: Default::default(),
            storing_replies: false,
            taken_ids: Vec::new(),
            recording_taken: false,
        }
    }

    /// The same link on the reference's `/relay-m4` path, with its frames.
    pub fn reference_m4(self) -> GatewayLink {
        GatewayLink { m4: true, ..self }
    }

    /// `auth_ok`, with the interval the gateway should heartbeat at (the reference's chat
    /// socket told WS_HEARTBEAT_INTERVAL_SECONDS there).
    fn auth_ok(&self, ctx: &mut socket::Ctx<Self>) {
        let settings = &self.deps.settings;
        let every = match self.m4 {
            true => settings.ws.heartbeat_interval,
            false => settings.gateway.heartbeat_interval,
        };
        socket::send(
            ctx,
            &Outbound::AuthOk {
                payload: relay::AuthOk {
                    gateway_id: self.gateway_id,
                    config: relay::LinkConfig {
                        heartbeat_interval_seconds: every.as_secs(),
                    },
                },
            },
        );
    }

    /// An `error` frame about a frame of the gateway (none on `/relay-m4`).
    fn complain(&self, ctx: &mut socket::Ctx<Self>, code: ErrorCode, message: &str) {
        if !self.m4 {
            socket::error(ctx, None, code, message);
        }
    }

    fn refuse(&self, ctx: &mut socket::Ctx<Self>, reason: &str) {
        if !self.m4 {
            socket::send(
                ctx,
                &Outbound::AuthError {
                    payload: relay::AuthError {
                        message: reason.to_string(),
                    },
                },
            );
        }
        socket::close(ctx, Close::AuthFailed, reason);
    }

    fn authenticate(&mut self, token: String, ctx: &mut socket::Ctx<Self>) {
        self.authenticating = true;
        let (db, memos, gateway_id) = (
            self.deps.db.clone(),
            self.deps.memos.clone(),
            self.gateway_id,
        );
        let check = async move {
            gateway_registry::verify_relay(&db, &memos.gateways, gateway_id, &token)
                .await
                .map_err(|e| e.to_string())
        };
        // `wait` holds further frames until the check is done.
        ctx.wait(check.into_actor(self).map(|result, act, ctx| {
            act.authenticating = false;
            match result {
                Ok(Some(identity)) => act.accept(identity, ctx),
                Ok(None) => act.refuse(ctx, "invalid credentials"),
                Err(e) => {
                    tracing::error!(gateway_id = %act.gateway_id, error = %e, "relay auth failed");
                    act.refuse(ctx, "authentication unavailable, retry")
                }
            }
        }));
    }

    fn accept(&mut self, identity: GatewayIdentity, ctx: &mut socket::Ctx<Self>) {
        if let Some(Tunnelled::Asked(token)) = self.tunnel.take() {
            return self.accept_tunnel(identity, token, ctx);
        }
        let settings = &self.deps.settings;
        let entry = text(&GatewayPresence {
            instance_id: &settings.instance_id,
            link_id: self.link_id,
            connected_at: Utc::now(),
            peer: &self.peer,
        });
        self.deps.router.registry().do_send(RegisterGateway {
            gateway_id: self.gateway_id,
            link_id: self.link_id,
            socket: SocketHandle {
                control: ctx.address().recipient(),
                frames: ctx.address().recipient(),
                outbox: self.outbox.clone(),
                queue_limit: settings.ws.outbound_queue_bytes,
            },
            flush: ctx.address().recipient(),
        });
        let (deps, key, value, ttl) = (
            self.deps.clone(),
            gateway_presence(self.gateway_id),
            entry.clone(),
            presence::ENTRY_TTL,
        );
        let online = identity.clone();
        // The presence is written before `auth_ok`: a gateway that has its `auth_ok` is
        // reported connected by every instance.
        let recorded = async move {
            deps.presence.set(&key, &value, ttl).await;
            actix::spawn(async move {
                touch(&deps, &online, "relay link connected").await;
                announce(&deps, online.id, AgentPresence::AgentOnline).await;
            });
        };
        self.presence = Some(entry);
        self.last_touch = Some(Instant::now());
        self.identity = Some(identity);
        ctx.wait(recorded.into_actor(self).map(move |(), act, ctx| {
            tracing::info!(gateway_id = %act.gateway_id, link_id = %act.link_id, "gateway relay link up");
            act.auth_ok(ctx);
            // Requests recorded while the gateway was away go out now, after `auth_ok`.
            act.flush(ctx);
        }));
    }

    /// Claims the gateway's due requests and the chat messages held while it was away and
    /// sends them, then arms a timer for the next request that falls due (an unanswered
    /// request is sent again with backoff).
    fn flush(&mut self, ctx: &mut socket::Ctx<Self>) {
        if self.identity.is_none() {
            return;
        }
        let Some(connected) = self.flushes.start() else {
            return;
        };
        let (deps, gateway_id, chat_only) = (self.deps.clone(), self.gateway_id, self.m4);
        let claimed = async move { claim_due(&deps, gateway_id, connected, chat_only).await };
        ctx.spawn(socket::detached(claimed).into_actor(self).map(move |result, act, ctx| {
            let next_due = match result {
                Ok(due) => {
                    for command in &due.commands {
                        ctx.text(gateway_commands::rpc_frame(command));
                    }
                    if due.more_chat {
                        act.flushes.again();
                    }
                    let mut sent = Vec::with_capacity(due.chat.len());
                    for (message_id, frame) in due.chat {
                        if act.acks || act.written.insert(message_id) {
                            ctx.text(frame);
                            sent.push(message_id);
                        }
                    }
                    if !act.acks && !sent.is_empty() {
                        act.taken(sent, ctx);
                    }
                    due.next_due
                }
                Err(e) => {
                    tracing::warn!(gateway_id = %act.gateway_id, error = %e, "gateway requests not sent");
                    // The next flush is still this link's first: what it did not claim now is
                    // sent then.
                    act.flushes.claim_failed(connected);
                    Some(Utc::now() + act.deps.settings.gateway.command_retry)
                }
            };
            if act.flushes.done() {
                return act.flush(ctx);
            }
            act.flushes.arm(ctx, next_due, Self::flush);
        }));
    }

    /// A frame is a sign of life; written at most every half heartbeat interval.
    fn frame_seen(&mut self) {
        self.last_frame = Instant::now();
        let Some(identity) = &self.identity else {
            return;
        };
        // A connector's heartbeats say whether its gateway is up (`degraded` when not):
        // tunnelled bytes are no sign of it.
        if self.tunnel.is_some() {
            return;
        }
        let every = (self.deps.settings.gateway.heartbeat_interval / 2).max(Duration::from_secs(1));
        if self.last_touch.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_touch = Some(Instant::now());
        let (deps, identity) = (self.deps.clone(), identity.clone());
        actix::spawn(async move { touch(&deps, &identity, "relay frame").await });
    }

    fn on_text(&mut self, text: &str, ctx: &mut socket::Ctx<Self>) {
        if socket::too_large(ctx, text.len(), self.deps.settings.ws.max_frame_bytes) {
            return;
        }
        let Some(request) = relay::parse(text) else {
            if self.m4 && self.identity.is_none() {
                return self.refuse(ctx, "invalid auth message");
            }
            return self.complain(ctx, ErrorCode::InvalidJson, "frames must be JSON objects");
        };
        if self.identity.is_none() {
            if self.authenticating {
                return;
            }
            return match request {
                Request::Auth {
                    relay_token: Some(token),
                    acks,
                    tunnel,
                    gateway_token,
                } => {
                    self.acks = acks;
                    self.tunnel = tunnel.then_some(Tunnelled::Asked(gateway_token));
                    self.authenticate(token, ctx)
                }
                Request::Auth {
                    relay_token: None, ..
                } => self.refuse(ctx, "missing relay_token"),
                _ => self.refuse(ctx, "expected auth message"),
            };
        }
        match request {
            Request::Heartbeat { id } => socket::send(ctx, &Outbound::HeartbeatAck { id }),
            Request::TunnelClose(stream) => {
                if let Some(Tunnelled::Running(tunnel)) = &self.tunnel {
                    tunnel.do_send(FromConnector::Closed(stream));
                }
            }
            Request::ChatReply(Ok(reply)) => self.on_reply(reply, text.len(), ctx),
            Request::RpcResult(Ok(result)) => self.on_rpc_result(result, ctx),
            Request::ChatAck(Ok(ids)) => self.taken(ids, ctx),
            Request::ChatReply(Err(invalid))
            | Request::RpcResult(Err(invalid))
            | Request::ChatAck(Err(invalid)) => self.complain(ctx, invalid.code, invalid.message),
            Request::Auth { .. } => self.complain(
                ctx,
                ErrorCode::AlreadyAuthenticated,
                "this link is already authenticated",
            ),
            Request::Untyped => {
                self.complain(ctx, ErrorCode::MissingType, "frames need a \"type\"")
            }
            Request::Unknown(kind) => {
                self.complain(ctx, ErrorCode::UnknownType, &protocol::unknown_type(&kind))
            }
        }
    }
}

impl GatewayLink {
    /// The gateway took these H5 messages (its `chat.ack`, or, for a gateway without acks,
    /// the link wrote them): no longer pending; each user hears it once (`chat_ack`,
    /// `status: "delivered"`). Recorded one write at a time, with what came meanwhile.
    fn taken(&mut self, message_ids: Vec<Uuid>, ctx: &mut socket::Ctx<Self>) {
        self.taken_ids.extend(message_ids);
        self.record_taken(ctx);
    }

    fn record_taken(&mut self, ctx: &mut socket::Ctx<Self>) {
        if self.recording_taken || self.taken_ids.is_empty() {
            return;
        }
        self.recording_taken = true;
        let message_ids = std::mem::take(&mut self.taken_ids);
        let (deps, gateway_id) = (self.deps.clone(), self.gateway_id);
        let recorded = async move {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let acks = delivery::taken(&*conn, gateway_id, &message_ids, Taken::Done)
                .await
                .map_err(|e| e.to_string())?;
            for (user, text) in acks {
                deps.router
                    .tell(Address::User(user), RouteMessage::Frame { text });
            }
            Ok::<_, String>(())
        };
        ctx.spawn(socket::detached(recorded).into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                // Still pending: sent again (and acked again) later.
                tracing::warn!(gateway_id = %act.gateway_id, error = %e, "taken messages not recorded");
            }
            act.recording_taken = false;
            act.record_taken(ctx);
        }));
    }

    /// The gateway's answer to a request (`rpc.result`): recorded, then handed to the caller
    /// that waits for it, on any instance.
    fn on_rpc_result(&mut self, result: RpcResult, ctx: &mut socket::Ctx<Self>) {
        let RpcResult {
            command_id,
            outcome,
        } = result;
        let (deps, gateway_id) = (self.deps.clone(), self.gateway_id);
        let recorded = async move { record_answer(&deps, gateway_id, command_id, outcome).await };
        ctx.spawn(socket::detached(recorded).into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                tracing::error!(gateway_id = %act.gateway_id, error = %e, "gateway answer not recorded");
                socket::error(ctx, None, ErrorCode::Internal, "the answer was not recorded; send it again");
            }
        }));
    }

    /// An agent's answer: stored (with the others that come while a batch is stored: one
    /// transaction), then delivered to every socket of the user, everywhere. Replies of one
    /// link are stored and delivered in the order the agent sent them, and the link goes on
    /// with its other frames meanwhile.
    fn on_reply(&mut self, reply: ChatReply, size: usize, ctx: &mut socket::Ctx<Self>) {
        self.replies.push_back((reply, size));
        self.store_replies(ctx);
    }

    fn store_replies(&mut self, ctx: &mut socket::Ctx<Self>) {
        if self.storing_replies || self.replies.is_empty() {
            return;
        }
        self.storing_replies = true;
        // A batch's replies reach their users at once: its bytes stay well below what a
        // user's socket may queue (WS_OUTBOUND_QUEUE_BYTES), or a reading client would
        // count as too slow.
        let budget = self.deps.settings.ws.outbound_queue_bytes / 4;
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while let Some((_, size)) = self.replies.front() {
            if batch.len() == REPLY_BATCH || (!batch.is_empty() && bytes + size > budget) {
                break;
            }
            bytes += size;
            batch.extend(self.replies.pop_front().map(|(reply, _)| reply));
        }
        let (deps, gateway_id) = (self.deps.clone(), self.gateway_id);
        let stored = async move {
            let outcomes = store_replies(&deps, gateway_id, &batch).await;
            (batch, outcomes)
        };
        ctx.spawn(
            socket::detached(stored)
                .into_actor(self)
                .map(|(batch, outcomes), act, ctx| {
                    for (reply, outcome) in batch.into_iter().zip(outcomes) {
                        act.replied(reply.reply_id, outcome, ctx);
                    }
                    act.storing_replies = false;
                    act.store_replies(ctx);
                }),
        );
    }

    fn replied(
        &mut self,
        reply_id: Option<String>,
        outcome: Result<Option<StoredReply>, String>,
        ctx: &mut socket::Ctx<Self>,
    ) {
        match outcome {
            Ok(Some((session, message, duplicate))) => {
                if !duplicate {
                    let text = text(&h5_chat::reply_frame(&session, &message));
                    self.deps.router.tell(
                        Address::User(session.h5_user_id),
                        RouteMessage::Frame { text },
                    );
                }
                // Stored (now or before): the gateway may forget it. The reference's chat
                // socket acknowledges nothing; there only a gateway that acks gets acks.
                if let Some(id) = reply_id.filter(|_| !self.m4 || self.acks) {
                    let id = serde_json::Value::String(id);
                    socket::send(
                        ctx,
                        &Outbound::ChatReplyAck {
                            id,
                            payload: relay::ReplyAck {
                                message_id: message.id,
                            },
                        },
                    );
                }
            }
            Ok(None) => self.complain(
                ctx,
                ErrorCode::SessionNotFound,
                "no chat session of this gateway has that session_key",
            ),
            Err(e) => {
                tracing::error!(gateway_id = %self.gateway_id, error = %e, "chat reply not stored");
                socket::error(
                    ctx,
                    None,
                    ErrorCode::Internal,
                    "the reply was not stored; send it again",
                );
            }
        }
    }
}

/// Tells every H5 user who chats through this gateway that its agents went offline or came
/// back (`system` frames, on every instance).
async fn announce(deps: &LinkDeps, gateway_id: Uuid, event: AgentPresence) {
    let audience = match deps.db.get().await {
        Ok(conn) => h5_chat::audience_of_gateway(&*conn, gateway_id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match audience {
        Ok(pairs) => {
            for (user_id, agent_id) in pairs {
                let text = text(&h5_chat::presence_frame(event, agent_id, gateway_id));
                deps.router
                    .tell(Address::User(user_id), RouteMessage::Frame { text });
            }
        }
        Err(e) => {
            tracing::warn!(%gateway_id, ?event, error = %e, "agent presence not announced")
        }
    }
}

/// Records a sign of life for the gateway (and the online transition, if any).
async fn touch(deps: &LinkDeps, identity: &GatewayIdentity, reason: &str) {
    let result = async {
        let mut conn = deps.db.get().await.map_err(|e| e.to_string())?;
        let tx = conn.transaction().await.map_err(|e| e.to_string())?;
        gateway_registry::heartbeat(
            &tx,
            identity,
            ONLINE,
            None,
            reason,
            &deps.settings.instance_id,
        )
        .await
        .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(gateway_id = %identity.id, error = %e, "gateway heartbeat not recorded");
    }
}

impl Actor for GatewayLink {
    type Context = socket::Ctx<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !socket::admit(ctx, &self.slot) {
            return;
        }
        let ws = &self.deps.settings.ws;
        ctx.run_later(ws.auth_timeout, |act, ctx| {
            if act.identity.is_none() {
                act.refuse(ctx, "auth timeout");
            }
        });
        socket::keep_alive(ctx, ws, |act| act.last_frame, |_, _| {});
        ctx.run_interval(presence::REFRESH_EVERY, |act, _| act.refresh_presence());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.identity.is_none() {
            return;
        }
        if let Some(Tunnelled::Running(tunnel)) = self.tunnel.take() {
            tunnel.do_send(Stop);
            let (deps, gateway_id) = (self.deps.clone(), self.gateway_id);
            actix::spawn(
                async move { announce(&deps, gateway_id, AgentPresence::AgentOffline).await },
            );
            tracing::info!(gateway_id = %self.gateway_id, link_id = %self.link_id, "connector link down");
            return;
        }
        self.deps.router.registry().do_send(UnregisterGateway {
            gateway_id: self.gateway_id,
            link_id: self.link_id,
        });
        if let Some(entry) = self.presence.take() {
            let (deps, key, gateway_id, replaced) = (
                self.deps.clone(),
                gateway_presence(self.gateway_id),
                self.gateway_id,
                self.replaced,
            );
            actix::spawn(async move {
                deps.presence.clear_if(&key, &entry).await;
                if !replaced {
                    announce(&deps, gateway_id, AgentPresence::AgentOffline).await;
                }
            });
        }
        tracing::info!(gateway_id = %self.gateway_id, link_id = %self.link_id, "gateway relay link down");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for GatewayLink {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if msg.is_ok() {
            self.frame_seen();
        }
        if let (Ok(ws::Message::Binary(frame)), Some(Tunnelled::Running(tunnel))) =
            (&msg, &self.tunnel)
        {
            return tunnel.do_send(FromConnector::Data(frame.clone()));
        }
        if let Some(text) = socket::incoming(msg, &mut self.fragments, ctx) {
            // What an agent answered is stored, whatever it holds: a NUL (which PostgreSQL
            // cannot store) becomes U+FFFD.
            self.on_text(&protocol::nul::replaced(&text), ctx);
        }
    }
}

impl GatewayLink {
    fn refresh_presence(&self) {
        if let Some(entry) = self.presence.clone() {
            let (presence, key) = (
                self.deps.presence.clone(),
                gateway_presence(self.gateway_id),
            );
            actix::spawn(async move { presence.set(&key, &entry, presence::ENTRY_TTL).await });
        }
    }
}

impl Handler<Control> for GatewayLink {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        match msg {
            Control::Replaced => {
                self.replaced = true;
                socket::close(ctx, Close::Replaced, "replaced by a newer connection");
            }
            Control::TooSlow => {
                socket::close(ctx, Close::TooSlow, "client too slow: reconnect and resume")
            }
            Control::Revoked(reason) => socket::close(ctx, Close::AuthFailed, &reason),
            // Wake-ups of that time were lost too: what is due goes now.
            Control::Resync => {
                self.refresh_presence();
                self.flush(ctx);
            }
        }
    }
}

impl Handler<FlushCommands> for GatewayLink {
    type Result = ();

    fn handle(&mut self, _: FlushCommands, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

impl Handler<Frame> for GatewayLink {
    type Result = ();

    fn handle(&mut self, msg: Frame, ctx: &mut Self::Context) {
        // Counted in the outbox by the sender (`SocketHandle::deliver`).
        let message = (!self.acks)
            .then(|| relay::read_chat_send(&msg.0))
            .flatten();
        if let Some(message) = message {
            if !self.written.insert(message.message_id) {
                return self.outbox.release(msg.0.len());
            }
            ctx.text(&*msg.0);
            return self.taken(vec![message.message_id], ctx);
        }
        ctx.text(&*msg.0);
    }
}

impl Handler<ToConnector> for GatewayLink {
    type Result = ();

    fn handle(&mut self, msg: ToConnector, ctx: &mut Self::Context) {
        match msg {
            ToConnector::Text(text) => ctx.text(text),
            ToConnector::Binary(bytes) => ctx.binary(bytes),
        }
    }
}

impl GatewayLink {
    /// A connector's link: the gateway is reached through the tunnel by a `GatewayClient` of
    /// this instance (which registers as the gateway's route once its handshake is done);
    /// the link itself stands for the connector being there.
    fn accept_tunnel(
        &mut self,
        identity: GatewayIdentity,
        token: Option<String>,
        ctx: &mut socket::Ctx<Self>,
    ) {
        self.identity = Some(identity.clone());
        self.last_touch = Some(Instant::now());
        let (deps, device) = (self.deps.clone(), self.device.clone());
        let prepared = async move {
            let key = crate::actors::openclaw::device_key(&deps, &device).await?;
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            let target = dialing::tunnel_target(&*conn, identity.id, token)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the gateway is gone")?;
            drop(conn);
            touch(&deps, &identity, "connector connected").await;
            announce(&deps, identity.id, AgentPresence::AgentOnline).await;
            Ok::<_, String>((
                ClientDeps {
                    link: deps,
                    device: key,
                },
                target,
            ))
        };
        ctx.wait(prepared.into_actor(self).map(move |prepared, act, ctx| {
            let (deps, target) = match prepared {
                Ok(prepared) => prepared,
                Err(e) => {
                    tracing::error!(gateway_id = %act.gateway_id, error = %e, "connector link refused");
                    return act.refuse(ctx, "authentication unavailable, retry");
                }
            };
            let (frames, control) = (ctx.address().recipient(), ctx.address().recipient());
            let tunnel = Tunnel::new(frames, control, deps, target).start();
            act.tunnel = Some(Tunnelled::Running(tunnel));
            tracing::info!(gateway_id = %act.gateway_id, link_id = %act.link_id, "connector link up");
            act.auth_ok(ctx);
        }));
    }
}
