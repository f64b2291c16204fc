//! `H5Session`: one per H5 chat WebSocket (`/ws/h5/chat`).
//!
//! The first frame must be `{"type":"auth","payload":{"token":<access token>}}` within
//! WS_AUTH_TIMEOUT_SECONDS (optionally with `last_message_id` to resume). A chat message is
//! checked against the user's assignments, stored, then sent to the agent's gateway link,
//! here or on another instance, and acknowledged. Replies arrive through the Registry from
//! whichever instance holds the gateway's link. The protocol is in docs/relay-protocol.md.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;
use actix_web::web::Data;
use actix_web_actors::ws::{self, CloseCode};
use serde_json::{json, Value};
use uuid::Uuid;

use super::bridge::Publish;
use super::gateway_rpc;
use super::presence::gateway_key;
use super::registry::{
    gateway_channel, Control, Frame, RegisterH5, SocketHandle, ToLocalGateway, UnregisterH5,
};
use super::socket::{self, codes, ConnectionSlot, Outbox};
use crate::auth::h5 as tokens;
use crate::domain::h5::chat::{self as h5_chat, Accepted, ChatSession, Refusal};
use crate::domain::h5::users as h5_users;
use crate::state::AppState;

/// How many stored messages one resume replays at most; a client further behind pages the
/// rest from the history API.
const RESUME_LIMIT: i64 = 500;

#[derive(Clone, Copy)]
struct Caller {
    user_id: Uuid,
    organization_id: Uuid,
}

pub struct H5Session {
    state: Data<AppState>,
    socket_id: Uuid,
    caller: Option<Caller>,
    authenticating: bool,
    last_frame: Instant,
    slot: Option<ConnectionSlot>,
    /// What this socket has queued for its client (see `socket::Outbox`).
    outbox: Outbox,
    /// The chat session with each agent, once known: later messages take the one-statement
    /// path (`h5_chat::store_user_message`).
    sessions: HashMap<Uuid, ChatSession>,
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
    pub fn new(state: Data<AppState>, slot: Option<ConnectionSlot>, outbox: Outbox) -> H5Session {
        H5Session {
            state,
            socket_id: Uuid::new_v4(),
            caller: None,
            authenticating: false,
            last_frame: Instant::now(),
            slot,
            outbox,
            sessions: HashMap::new(),
        }
    }

    fn refuse(ctx: &mut socket::Ctx<Self>, reason: &str) {
        socket::send(
            ctx,
            &json!({"type": "auth_error", "payload": {"reason": reason}}),
        );
        socket::close(ctx, CloseCode::Other(codes::AUTH_FAILED), reason);
    }

    fn authenticate(
        &mut self,
        token: &str,
        last_message_id: Option<Uuid>,
        ctx: &mut socket::Ctx<Self>,
    ) {
        let Some(claims) = tokens::verify(&self.state.settings.h5.jwt_secret, token) else {
            return Self::refuse(ctx, "invalid or expired token");
        };
        self.authenticating = true;
        let state = self.state.clone();
        let check = async move {
            let conn = state.db.get().await.map_err(|e| e.to_string())?;
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
                    if let Some(last) = last_message_id {
                        act.resume(last, ctx);
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
        self.state.registry.do_send(RegisterH5 {
            user_id: caller.user_id,
            socket_id: self.socket_id,
            socket: SocketHandle {
                control: ctx.address().recipient(),
                frames: ctx.address().recipient(),
                outbox: self.outbox.clone(),
                queue_limit: self.state.settings.ws.outbound_queue_bytes,
            },
        });
        socket::send(
            ctx,
            &json!({"type": "auth_ok", "payload": {"h5_user_id": caller.user_id, "organization_id": caller.organization_id}}),
        );
    }

    /// Sends every stored message after `last_message_id`, oldest first.
    fn resume(&mut self, last_message_id: Uuid, ctx: &mut socket::Ctx<Self>) {
        let Some(caller) = self.caller else { return };
        let state = self.state.clone();
        let replay = async move {
            let conn = state.db.get().await.map_err(|e| e.to_string())?;
            h5_chat::frames_after(&*conn, caller.user_id, last_message_id, RESUME_LIMIT)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.wait(replay.into_actor(self).map(|frames, _, ctx| match frames {
            Ok(frames) => {
                let count = frames.len();
                for frame in &frames {
                    socket::send(ctx, frame);
                }
                socket::send(
                    ctx,
                    &json!({"type": "resume_done", "payload": {"count": count}}),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "H5 resume failed");
                socket::error(
                    ctx,
                    None,
                    "INTERNAL",
                    "could not load missed messages; send resume again",
                );
            }
        }));
    }

    fn on_chat(&mut self, frame: Value, ctx: &mut socket::Ctx<Self>) {
        let Some(caller) = self.caller else { return };
        let id = frame.get("id").cloned().unwrap_or(Value::Null);
        let payload = &frame["payload"];
        let content = payload
            .get("content")
            .filter(|c| !c.is_null() && c.as_str() != Some(""))
            .cloned();
        let (agent_id, content) = match (payload.get("agent_id"), content) {
            (Some(Value::String(agent)), Some(content)) => match agent.parse::<Uuid>() {
                Ok(agent) => (agent, content),
                Err(_) => {
                    return socket::error(ctx, Some(&id), "INVALID_AGENT_ID", "invalid agent_id")
                }
            },
            (Some(agent), Some(_)) if !agent.is_null() => {
                return socket::error(ctx, Some(&id), "INVALID_AGENT_ID", "invalid agent_id")
            }
            _ => {
                return socket::error(
                    ctx,
                    Some(&id),
                    "MISSING_FIELDS",
                    "missing agent_id or content",
                )
            }
        };
        let client_id = match &id {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let state = self.state.clone();
        let cached = self.sessions.get(&agent_id).cloned();
        let route = async move {
            route(
                &state,
                caller,
                agent_id,
                cached,
                client_id,
                content,
                id.clone(),
            )
            .await
            .map(|r| (r, id))
        };
        // `wait`: the next frame of this socket is handled after this one is stored, so a
        // client's messages keep their order.
        ctx.wait(
            route
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok((routed, id)) => {
                        match routed.session() {
                            Some(session) => act.sessions.insert(agent_id, session.clone()),
                            None => act.sessions.remove(&agent_id),
                        };
                        answer(ctx, &id, routed)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "H5 chat message not stored");
                        socket::error(
                            ctx,
                            None,
                            "INTERNAL",
                            "the message was not stored; send it again",
                        );
                    }
                }),
        );
    }

    fn on_text(&mut self, text: &str, ctx: &mut socket::Ctx<Self>) {
        if socket::too_large(ctx, text.len(), self.state.settings.ws.max_frame_bytes) {
            return;
        }
        let Some(frame) = serde_json::from_str::<Value>(text)
            .ok()
            .filter(Value::is_object)
        else {
            return socket::error(ctx, None, "INVALID_JSON", "invalid JSON");
        };
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.caller.is_none() {
            if self.authenticating {
                return socket::error(ctx, frame.get("id"), "AUTH_PENDING", "wait for auth_ok");
            }
            // Anything but auth is refused and the socket keeps waiting for it (until the
            // auth deadline), so a client bug does not cost the connection.
            if kind != "auth" {
                return socket::error(
                    ctx,
                    frame.get("id"),
                    "AUTH_REQUIRED",
                    "send the auth frame first",
                );
            }
            let Some(token) = frame
                .pointer("/payload/token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                return Self::refuse(ctx, "missing token");
            };
            let last = last_message_id(&frame);
            return self.authenticate(token, last, ctx);
        }
        match kind {
            "heartbeat" => socket::send(
                ctx,
                &json!({"type": "heartbeat_ack", "id": frame.get("id").cloned().unwrap_or(Value::Null)}),
            ),
            "chat" => self.on_chat(frame, ctx),
            "resume" => match last_message_id(&frame) {
                Some(last) => self.resume(last, ctx),
                None => socket::error(
                    ctx,
                    frame.get("id"),
                    "MISSING_FIELDS",
                    "resume needs payload.last_message_id",
                ),
            },
            "auth" => socket::error(
                ctx,
                frame.get("id"),
                "ALREADY_AUTHENTICATED",
                "this socket is already authenticated",
            ),
            "" => socket::error(
                ctx,
                frame.get("id"),
                "MISSING_TYPE",
                "frames need a \"type\"",
            ),
            other => socket::error(
                ctx,
                frame.get("id"),
                "UNKNOWN_TYPE",
                &format!("unknown frame type {other:?}"),
            ),
        }
    }
}

fn last_message_id(frame: &Value) -> Option<Uuid> {
    frame
        .pointer("/payload/last_message_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok())
}

/// Stores the message and hands it to the agent's gateway link, wherever it is. `cached`
/// is the socket's session with the agent, if it has one.
async fn route(
    state: &AppState,
    caller: Caller,
    agent_id: Uuid,
    cached: Option<ChatSession>,
    client_id: Option<String>,
    content: Value,
    id: Value,
) -> Result<Routed, String> {
    let conn = state.db.get().await.map_err(|e| e.to_string())?;
    let fast = match &cached {
        Some(session) => {
            h5_chat::store_user_message(&*conn, session, client_id.as_deref(), &content)
                .await
                .map_err(|e| e.to_string())?
                .map(|(message, duplicate)| Accepted {
                    session: session.clone(),
                    message,
                    duplicate,
                })
        }
        None => None,
    };
    let accepted = match fast {
        Some(accepted) => accepted,
        None => match h5_chat::accept_user_message(
            &*conn,
            caller.user_id,
            caller.organization_id,
            agent_id,
            client_id.as_deref(),
            &content,
        )
        .await
        .map_err(|e| e.to_string())?
        {
            Ok(accepted) => accepted,
            Err(refusal) => return Ok(Routed::Refused(refusal)),
        },
    };
    drop(conn);
    if accepted.duplicate {
        return Ok(Routed::Duplicate(accepted));
    }
    let session = &accepted.session;
    let frame: std::sync::Arc<str> = h5_chat::chat_send_frame(session, &accepted.message, &id)
        .to_string()
        .into();
    let gateway_id = session.gateway_id;
    let local = state
        .registry
        .send(ToLocalGateway {
            gateway_id,
            frame: frame.clone(),
        })
        .await
        .unwrap_or(false);
    if local {
        return Ok(Routed::Delivered(accepted));
    }
    if state.presence.get(&gateway_key(gateway_id)).await.is_some() {
        let published = state
            .bridge
            .send(Publish {
                channel: gateway_channel(gateway_id),
                payload: frame.to_string(),
            })
            .await;
        if let Ok(Ok(())) = published {
            return Ok(Routed::Delivered(accepted));
        }
    }
    // No live link took it: kept for the gateway's next link, which is poked in case it
    // came up since (its flush on connect may have run before the message was kept).
    let conn = state.db.get().await.map_err(|e| e.to_string())?;
    h5_chat::hold_for_gateway(&*conn, accepted.message.id)
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    gateway_rpc::poke(state, [gateway_id]);
    Ok(Routed::GatewayOffline(accepted))
}

impl Routed {
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
    let ack = |accepted: &Accepted, duplicate: bool| {
        json!({"type": "chat_ack", "id": id, "payload": {
            "message_id": accepted.message.id, "session_id": accepted.session.id,
            "session_key": accepted.session.session_key, "duplicate": duplicate,
        }})
    };
    match routed {
        Routed::Delivered(accepted) => socket::send(ctx, &ack(&accepted, false)),
        Routed::Duplicate(accepted) => socket::send(ctx, &ack(&accepted, true)),
        Routed::GatewayOffline(accepted) => {
            let message =
                "the agent's gateway is offline; the message is stored and will be sent when it reconnects";
            let mut frame = json!({"type": "error", "id": id, "payload": {"code": "GATEWAY_OFFLINE", "reason": message, "message": message}});
            frame["payload"]["message_id"] = json!(accepted.message.id);
            socket::send(ctx, &frame);
        }
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
        if socket::refuse_over_capacity(ctx, &self.slot) {
            return;
        }
        let ws = &self.state.settings.ws;
        ctx.run_later(ws.auth_timeout, |act, ctx| {
            if act.caller.is_none() {
                Self::refuse(ctx, "auth timeout");
            }
        });
        socket::keep_alive(ctx, ws, |act| act.last_frame, |_, _| {});
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(caller) = self.caller {
            self.state.registry.do_send(UnregisterH5 {
                user_id: caller.user_id,
                socket_id: self.socket_id,
            });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for H5Session {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_frame = Instant::now();
        if let Some(ws::Message::Text(text)) = socket::incoming(msg, ctx) {
            self.on_text(&text, ctx);
        }
    }
}

impl Handler<Control> for H5Session {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        match msg {
            Control::Replaced => socket::close(
                ctx,
                CloseCode::Other(codes::REPLACED),
                "replaced by a newer connection",
            ),
            Control::GoingAway => socket::close(ctx, CloseCode::Away, "server shutting down"),
            Control::TooSlow => socket::close(
                ctx,
                CloseCode::Other(codes::TOO_SLOW),
                "client too slow: reconnect and resume",
            ),
            Control::Revoked(reason) => {
                socket::send(
                    ctx,
                    &json!({"type": "auth_error", "payload": {"reason": reason}}),
                );
                socket::close(ctx, CloseCode::Other(codes::AUTH_FAILED), &reason);
            }
        }
    }
}

impl Handler<Frame> for H5Session {
    type Result = ();

    fn handle(&mut self, msg: Frame, ctx: &mut Self::Context) {
        // Counted in the outbox by the sender (`SocketHandle::deliver`).
        ctx.text(&*msg.0);
    }
}
