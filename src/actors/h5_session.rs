//! `H5Session`: one per H5 chat WebSocket (`/ws/h5/chat`).
//!
//! The first frame must be `{"type":"auth","payload":{"token":<access token>}}` within
//! WS_AUTH_TIMEOUT_SECONDS (optionally with `last_seq` or `last_message_id` to resume). A
//! chat message is checked against the user's assignments, stored, then sent to the agent's
//! gateway link, here or on another instance, and acknowledged. Replies arrive through the
//! Registry from whichever instance holds the gateway's link.
//!
//! The user's stored messages reach the socket in `seq` order without gaps
//! (`domain::h5::stream`): at auth it is sent what it missed (after what the client says it
//! saw, else after what any socket of the user was handed); a frame that arrives past a gap
//! (a publication lost while Redis restarted) is preceded by what is missing, read from
//! PostgreSQL; and when the bridge reconnects the socket reads what it may have missed. The
//! protocol is in docs/relay-protocol.md.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web_actors::ws;
use serde_json::Value;
use uuid::Uuid;

use super::chat_writes::ChatWrites;
use super::delivered::{DeliveredMarks, Handed};
use super::group_commit::submit;
use super::registry::{
    Address, Control, Delivery, Frame, RegisterH5, Router, SocketHandle, UnregisterH5,
};
use super::socket::{self, Outbox};
use crate::config::Settings;
use crate::db::PgPool;
use crate::domain::h5::chat::{
    self as h5_chat, Accepted, ChatSession, Refusal, Resend, UserMessageIn,
};
use crate::domain::h5::stream::{self, After};
use crate::domain::h5::users as h5_users;
use crate::protocol::bus::RouteMessage;
use crate::protocol::codes::{Close, ErrorCode};
use crate::protocol::h5::{self, AckStatus, Chat, Outbound, Request, ResumeFrom};
use crate::protocol::{self, ErrorFrame};
use crate::secrets::jwt as tokens;

/// How many stored messages one resume replays at most; a client further behind pages the
/// rest from the history API.
const RESUME_LIMIT: i64 = 500;
/// How long after handing a stored message to its client the socket records it
/// (`stream::delivered`, through `DeliveredMarks`). A client that says nothing on reconnect
/// (the shipped app) is sent again what came after the record: what an instance handed in
/// its last `DELIVERED_AFTER` before a crash is sent twice (with the same `id`), so the
/// window is short; one mark per window per socket, and one write per
/// `delivered::LINGER` at most per instance for all of them, keep it to a few writes a
/// second under load.
const DELIVERED_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// What an H5 socket uses, handed over at the upgrade: the user's row and messages, the
/// router to reach gateways, and its settings (token key, socket limits).
#[derive(Clone)]
pub struct H5Deps {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub router: Router,
    pub delivered: Addr<DeliveredMarks>,
    /// Messages in sessions the socket knows, stored in group commits.
    pub chat_writes: Addr<ChatWrites>,
}

#[derive(Clone, Copy)]
struct Caller {
    user_id: Uuid,
    organization_id: Uuid,
}

pub struct H5Session {
    deps: H5Deps,
    socket_id: Uuid,
    caller: Option<Caller>,
    authenticating: bool,
    last_frame: Instant,
    slot: socket::Slot,
    /// A text message arriving in fragments.
    fragments: socket::Fragments,
    /// What this socket has queued for its client (see `socket::Outbox`).
    outbox: Outbox,
    /// The chat session with each agent, once known: later messages take the one-statement
    /// path (`h5_chat::store_user_message`).
    sessions: HashMap<Uuid, ChatSession>,
    /// The `seq` of the last of the user's messages this socket was sent (or sent itself);
    /// `None` until the socket knows where it starts.
    last_seq: Option<i64>,
    /// The highest `seq` handed to the client and not yet recorded.
    handed: Option<i64>,
    /// A record of `handed` is due.
    recording: bool,
    /// The client fell too far behind: what was queued for it never reaches it, so nothing
    /// more is recorded as delivered (its next socket is sent it again).
    unwritten: bool,
}

enum Routed {
    Delivered(Accepted),
    Duplicate(Accepted),
    GatewayOffline(Accepted),
    Refused(Refusal),
}

impl H5Session {
    /// `slot` is `None` when the instance is at its connection limit: the socket is then
    /// closed right away with 1013.
    pub fn new(deps: H5Deps, slot: socket::Slot, outbox: Outbox) -> H5Session {
        H5Session {
            deps,
            socket_id: Uuid::new_v4(),
            caller: None,
            authenticating: false,
            last_frame: Instant::now(),
            slot,
            fragments: socket::Fragments::default(),
            outbox,
            sessions: HashMap::new(),
            last_seq: None,
            handed: None,
            recording: false,
            unwritten: false,
        }
    }

    fn refuse(ctx: &mut socket::Ctx<Self>, reason: &str) {
        socket::send(
            ctx,
            &Outbound::AuthError {
                payload: h5::AuthError {
                    reason: reason.to_string(),
                },
            },
        );
        socket::close(ctx, Close::AuthFailed, reason);
    }

    fn authenticate(&mut self, token: &str, from: Option<ResumeFrom>, ctx: &mut socket::Ctx<Self>) {
        let Some(claims) = tokens::verify(&self.deps.settings.h5.jwt_secret, token) else {
            return Self::refuse(ctx, "invalid or expired token");
        };
        self.authenticating = true;
        let db = self.deps.db.clone();
        let check = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            h5_users::find(&*conn, claims.sub)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.wait(check.into_actor(self).map(move |found, act, ctx| {
            act.authenticating = false;
            match found {
                Ok(Some(user)) if user.is_active() && user.organization_id == claims.org => {
                    act.accept(
                        Caller {
                            user_id: user.id,
                            organization_id: user.organization_id,
                        },
                        ctx,
                    );
                    // What the client missed: after what it says it saw, else after what
                    // any socket of the user was handed (the shipped app says nothing).
                    match from {
                        Some(from) => act.resume(After::Client(from), ctx),
                        None => act.catch_up(After::Delivered, None, ctx),
                    }
                }
                Ok(_) => Self::refuse(ctx, "invalid or expired token"),
                Err(e) => {
                    tracing::error!(error = %e, "H5 auth check failed");
                    Self::refuse(ctx, "authentication unavailable, retry")
                }
            }
        }));
    }

    fn accept(&mut self, caller: Caller, ctx: &mut socket::Ctx<Self>) {
        tracing::info!(h5_user_id = %caller.user_id, socket_id = %self.socket_id, "H5 socket authenticated");
        self.caller = Some(caller);
        self.deps.router.registry().do_send(RegisterH5 {
            user_id: caller.user_id,
            socket_id: self.socket_id,
            socket: SocketHandle {
                control: ctx.address().recipient(),
                frames: ctx.address().recipient(),
                outbox: self.outbox.clone(),
                queue_limit: self.deps.settings.ws.outbound_queue_bytes,
            },
        });
        socket::send(
            ctx,
            &Outbound::AuthOk {
                payload: h5::AuthOk {
                    h5_user_id: caller.user_id,
                    organization_id: caller.organization_id,
                },
            },
        );
    }

    /// Sends the user's stored messages after `after`, oldest first, then `resume_done`: a
    /// client's explicit resume.
    fn resume(&mut self, after: After, ctx: &mut socket::Ctx<Self>) {
        self.replay(after, None, true, ctx);
    }

    /// Sends what the socket has not seen (after `after`, and before `then` if given), then
    /// `then` itself: an auth without a resume point, a gap, a reconnected bridge.
    fn catch_up(&mut self, after: After, then: Option<Arc<str>>, ctx: &mut socket::Ctx<Self>) {
        self.replay(after, then, false, ctx);
    }

    fn replay(
        &mut self,
        after: After,
        then: Option<Arc<str>>,
        explicit: bool,
        ctx: &mut socket::Ctx<Self>,
    ) {
        let Some(caller) = self.caller else { return };
        let db = self.deps.db.clone();
        let replay = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            let frames = stream::frames(&*conn, caller.user_id, after, RESUME_LIMIT)
                .await
                .map_err(|e| e.to_string())?;
            // A socket that starts with nothing to catch up on starts at the latest number.
            let latest = match frames.is_empty() {
                true => Some(
                    stream::latest(&*conn, caller.user_id)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
                false => None,
            };
            Ok::<_, String>((frames, latest))
        };
        // `wait`: live frames queue behind the replay, and are sent after it in order.
        ctx.wait(
            replay
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((frames, latest)) => {
                        let count = frames.len();
                        for (seq, frame) in frames {
                            if act.last_seq.is_some_and(|last| seq <= last) {
                                continue;
                            }
                            socket::send(ctx, &frame);
                            act.sent(seq, ctx);
                        }
                        if act.last_seq.is_none() {
                            act.last_seq = latest;
                        }
                        if explicit {
                            let payload = h5::ResumeDone {
                                count,
                                last_seq: act.last_seq,
                            };
                            socket::send(ctx, &Outbound::ResumeDone { payload });
                        }
                        if let Some(frame) = then {
                            act.deliver(frame, ctx);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "H5 replay failed");
                        socket::error(
                            ctx,
                            None,
                            ErrorCode::Internal,
                            "could not load missed messages; send resume again",
                        );
                        // Live frames still go out: the next gap check tries again.
                        if let Some(frame) = then {
                            ctx.text(&*frame);
                        }
                    }
                }),
        );
    }

    /// The user's message `seq` was handed to the client.
    fn sent(&mut self, seq: i64, ctx: &mut socket::Ctx<Self>) {
        self.last_seq = Some(self.last_seq.map_or(seq, |last| last.max(seq)));
        self.handed = Some(self.handed.map_or(seq, |h| h.max(seq)));
        self.record_soon(ctx);
    }

    fn record_soon(&mut self, ctx: &mut socket::Ctx<Self>) {
        if !self.recording && self.handed.is_some() {
            self.recording = true;
            ctx.run_later(DELIVERED_AFTER, |act, _| act.record_delivered());
        }
    }

    /// A live frame for the user: a stored message's frame goes out in `seq` order (one
    /// already sent is dropped, one past a gap waits for what is missing); anything else
    /// (acks, presence, errors) at once.
    fn deliver(&mut self, frame: Arc<str>, ctx: &mut socket::Ctx<Self>) {
        let Some(seq) = frame_seq(&frame) else {
            return ctx.text(&*frame);
        };
        match self.last_seq {
            Some(last) if seq <= last => {}
            Some(last) if seq > last + 1 => self.catch_up(After::Seq(last), Some(frame), ctx),
            _ => {
                ctx.text(&*frame);
                self.sent(seq, ctx);
            }
        }
    }

    /// Records the highest number handed to the client (through the instance's
    /// `DeliveredMarks`); a number handed later is recorded `DELIVERED_AFTER` after it.
    fn record_delivered(&mut self) {
        self.recording = false;
        self.hand_over_mark();
    }

    /// Passes on what was handed and not yet recorded, if anything (and the client was not
    /// too slow to be sent it).
    fn hand_over_mark(&mut self) {
        let (Some(caller), Some(seq)) = (self.caller, self.handed.take()) else {
            return;
        };
        if !self.unwritten {
            self.deps.delivered.do_send(Handed {
                user_id: caller.user_id,
                seq,
            });
        }
    }

    fn on_chat(&mut self, id: Value, chat: Chat, ctx: &mut socket::Ctx<Self>) {
        let Some(caller) = self.caller else { return };
        let Chat {
            agent_id,
            content,
            client_id,
        } = chat;
        let deps = self.deps.clone();
        let cached = self.sessions.get(&agent_id).cloned();
        let frame_id = id.clone();
        let route =
            async move { route(&deps, caller, agent_id, cached, client_id, content, id).await };
        // `wait`: the next frame of this socket is handled after this one is stored, so a
        // client's messages keep their order.
        ctx.wait(
            route
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(routed) => {
                        match routed.session() {
                            Some(session) => act.sessions.insert(agent_id, session.clone()),
                            None => act.sessions.remove(&agent_id),
                        };
                        // The socket's own message is not sent back to it: it counts as
                        // seen, unless messages before it are still to come.
                        if let Some(seq) = routed.seq() {
                            if act.last_seq == Some(seq - 1) {
                                act.last_seq = Some(seq);
                            }
                        }
                        answer(ctx, &frame_id, routed)
                    }
                    Err(e) => {
                        // Not stored (the database failed): the same frame may be sent again.
                        tracing::error!(error = %e, "H5 chat message not stored");
                        socket::error(
                            ctx,
                            Some(&frame_id),
                            ErrorCode::Internal,
                            "the message was not stored; send it again",
                        );
                    }
                }),
        );
    }

    fn on_text(&mut self, text: &str, ctx: &mut socket::Ctx<Self>) {
        if socket::too_large(ctx, text.len(), self.deps.settings.ws.max_frame_bytes)
            || socket::refuse_nul(ctx, text)
        {
            return;
        }
        let Some(h5::Inbound { id, request }) = h5::parse(text) else {
            return socket::error(ctx, None, ErrorCode::InvalidJson, "invalid JSON");
        };
        if self.caller.is_none() {
            if self.authenticating {
                return socket::error(ctx, Some(&id), ErrorCode::AuthPending, "wait for auth_ok");
            }
            // Anything but auth is refused and the socket keeps waiting for it (until the
            // auth deadline), so a client bug does not cost the connection.
            let Request::Auth { token, from } = request else {
                return socket::error(
                    ctx,
                    Some(&id),
                    ErrorCode::AuthRequired,
                    "send the auth frame first",
                );
            };
            let Some(token) = token else {
                return Self::refuse(ctx, "missing token");
            };
            return self.authenticate(&token, from, ctx);
        }
        match request {
            Request::Heartbeat => socket::send(ctx, &Outbound::HeartbeatAck { id }),
            Request::Chat(Ok(chat)) => self.on_chat(id, chat, ctx),
            Request::Chat(Err(invalid)) => {
                socket::error(ctx, Some(&id), invalid.code, invalid.message)
            }
            Request::Resume { from: Some(from) } => self.resume(After::Client(from), ctx),
            Request::Resume { from: None } => socket::error(
                ctx,
                Some(&id),
                ErrorCode::MissingFields,
                "resume needs payload.last_seq or payload.last_message_id",
            ),
            Request::Auth { .. } => socket::error(
                ctx,
                Some(&id),
                ErrorCode::AlreadyAuthenticated,
                "this socket is already authenticated",
            ),
            Request::Untyped => socket::error(
                ctx,
                Some(&id),
                ErrorCode::MissingType,
                "frames need a \"type\"",
            ),
            Request::Unknown(kind) => socket::error(
                ctx,
                Some(&id),
                ErrorCode::UnknownType,
                &protocol::unknown_type(&kind),
            ),
        }
    }
}

/// Stores the message (pending until its gateway takes it: `domain::h5::delivery`) and hands
/// it to the gateway's sender, wherever it is; one nobody took now is sent by the gateway's
/// next connection. `cached` is the socket's session with the agent, if it has one.
async fn route(
    deps: &H5Deps,
    caller: Caller,
    agent_id: Uuid,
    cached: Option<ChatSession>,
    client_id: Option<String>,
    content: Value,
    id: Value,
) -> Result<Routed, String> {
    let resend = Resend::of(
        client_id.as_deref(),
        &content,
        deps.settings.h5.resend_window,
    );
    let fast = match cached {
        Some(session) => {
            let message = UserMessageIn {
                session: session.clone(),
                client_message_id: client_id.clone(),
                resend: resend.clone(),
                content: content.clone(),
            };
            submit(&deps.chat_writes, message)
                .await
                .ok_or("the chat writer stopped")??
                .map(|(message, duplicate)| Accepted {
                    session,
                    message,
                    duplicate,
                })
        }
        None => None,
    };
    let accepted = match fast {
        Some(accepted) => accepted,
        None => {
            let conn = deps.db.get().await.map_err(|e| e.to_string())?;
            match h5_chat::accept_user_message(
                &*conn,
                caller.user_id,
                caller.organization_id,
                agent_id,
                client_id.as_deref(),
                resend.as_ref(),
                &content,
            )
            .await
            .map_err(|e| e.to_string())?
            {
                Ok(accepted) => accepted,
                Err(refusal) => return Ok(Routed::Refused(refusal)),
            }
        }
    };
    if accepted.duplicate {
        return Ok(Routed::Duplicate(accepted));
    }
    let session = &accepted.session;
    let text = protocol::text(&h5_chat::chat_send_frame(session, &accepted.message, &id));
    let gateway = Address::Gateway(session.gateway_id);
    match deps
        .router
        .send(gateway, RouteMessage::Frame { text })
        .await
    {
        Delivery::Local | Delivery::Published => return Ok(Routed::Delivered(accepted)),
        Delivery::Offline => {}
    }
    // No live link took it: it is pending (as every message until its gateway takes it),
    // and the gateway's sender is woken in case it came up since.
    deps.router.tell(gateway, RouteMessage::Flush);
    Ok(Routed::GatewayOffline(accepted))
}

/// The `seq` of a stored message's frame (`payload.seq`), if the frame is one.
fn frame_seq(frame: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Peek {
        payload: Option<PeekPayload>,
    }
    #[derive(serde::Deserialize)]
    struct PeekPayload {
        seq: Option<i64>,
    }
    serde_json::from_str::<Peek>(frame).ok()?.payload?.seq
}

impl Routed {
    /// The stored message's `seq`, unless it was refused or is a resend.
    fn seq(&self) -> Option<i64> {
        match self {
            Routed::Delivered(a) | Routed::GatewayOffline(a) => Some(a.message.user_seq),
            Routed::Duplicate(_) | Routed::Refused(_) => None,
        }
    }

    /// The session the message went into (to cache it), unless it was refused.
    fn session(&self) -> Option<&ChatSession> {
        match self {
            Routed::Delivered(a) | Routed::Duplicate(a) | Routed::GatewayOffline(a) => {
                Some(&a.session)
            }
            Routed::Refused(_) => None,
        }
    }
}

fn answer(ctx: &mut socket::Ctx<H5Session>, id: &Value, routed: Routed) {
    let ack = |accepted: &Accepted, duplicate: bool| Outbound::ChatAck {
        id: id.clone(),
        payload: h5::ChatAck {
            message_id: accepted.message.id,
            session_id: accepted.session.id,
            session_key: accepted.session.session_key.clone(),
            duplicate,
            status: AckStatus::Stored,
        },
    };
    match routed {
        Routed::Delivered(accepted) => socket::send(ctx, &ack(&accepted, false)),
        Routed::Duplicate(accepted) => socket::send(ctx, &ack(&accepted, true)),
        Routed::GatewayOffline(accepted) => socket::send(
            ctx,
            &ErrorFrame::gateway_offline(id.clone(), accepted.message.id),
        ),
        Routed::Refused(refusal) => {
            let message = match refusal {
                Refusal::AssignmentNotFound => "you are not assigned to this agent",
                Refusal::AgentUnavailable => "the agent is not available",
            };
            socket::error(ctx, Some(id), refusal.code(), message);
        }
    }
}

impl Actor for H5Session {
    type Context = socket::Ctx<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !socket::admit(ctx, &self.slot) {
            return;
        }
        let ws = &self.deps.settings.ws;
        ctx.run_later(ws.auth_timeout, |act, ctx| {
            if act.caller.is_none() {
                Self::refuse(ctx, "auth timeout");
            }
        });
        socket::keep_alive(ctx, ws, |act| act.last_frame, |_, _| {});
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.hand_over_mark();
        if let Some(caller) = self.caller {
            self.deps.router.registry().do_send(UnregisterH5 {
                user_id: caller.user_id,
                socket_id: self.socket_id,
            });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for H5Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        if let Some(text) = socket::incoming(msg, &mut self.fragments, ctx) {
            self.on_text(&text, ctx);
        }
    }
}

impl Handler<Control> for H5Session {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        match msg {
            Control::Replaced => {
                socket::close(ctx, Close::Replaced, "replaced by a newer connection")
            }
            Control::TooSlow => {
                self.unwritten = true;
                socket::close(ctx, Close::TooSlow, "client too slow: reconnect and resume")
            }
            Control::Revoked(reason) => Self::refuse(ctx, &reason),
            Control::Resync => {
                if let Some(last) = self.last_seq {
                    self.catch_up(After::Seq(last), None, ctx);
                }
            }
        }
    }
}

impl Handler<Frame> for H5Session {
    type Result = ();

    fn handle(&mut self, msg: Frame, ctx: &mut Self::Context) {
        // Counted in the outbox by the sender (`SocketHandle::deliver`).
        self.deliver(msg.0, ctx);
    }
}
