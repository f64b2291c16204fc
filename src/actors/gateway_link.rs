//! `GatewayLink`: one per gateway relay WebSocket (`/ws/gateway/{id}/relay`).
//!
//! The first frame must be `{"type":"auth","payload":{"relay_token":…}}` within
//! WS_AUTH_TIMEOUT_SECONDS; then the link registers in the local Registry (replacing an
//! older link of the same gateway), records its presence in Redis, and marks the gateway
//! online. Every frame counts as a heartbeat (written at most every half heartbeat
//! interval). The server pings every WS_HEARTBEAT_INTERVAL_SECONDS and closes a link that
//! sent nothing, not even a pong, for WS_HEARTBEAT_TIMEOUT_SECONDS. The protocol is in
//! docs/gateway-protocol.md.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::web::Data;
use actix_web_actors::ws::{self, CloseCode};
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::gateway_rpc;
use super::presence::gateway_key;
use super::registry::{
    Control, FlushCommands, Frame, RegisterGateway, SocketHandle, ToUser, UnregisterGateway,
};
use super::socket::{self, codes, ConnectionSlot, Outbox};
use crate::domain::gateways::registry::{self as gateway_registry, GatewayIdentity, ONLINE};
use crate::domain::h5::chat as h5_chat;
use crate::domain::{agents::coordination, outbox::commands as gateway_commands};
use crate::state::AppState;

/// Held chat messages sent per flush; a full batch flushes again at once.
const HELD_BATCH: i64 = 500;

pub struct GatewayLink {
    state: Data<AppState>,
    gateway_id: Uuid,
    link_id: Uuid,
    peer: String,
    identity: Option<GatewayIdentity>,
    authenticating: bool,
    /// The presence entry this link wrote, so it removes only its own.
    presence: Option<String>,
    last_frame: Instant,
    last_touch: Option<Instant>,
    slot: Option<ConnectionSlot>,
    /// What this socket has queued for its client (see `socket::Outbox`).
    outbox: Outbox,
    /// Set when a newer link took over: this one's end is not the gateway going away.
    replaced: bool,
    /// Recorded requests are being claimed and sent; a poke meanwhile sets `flush_again`.
    flushing: bool,
    flush_again: bool,
    /// The retry timer for unanswered requests.
    retry: Option<SpawnHandle>,
}

impl GatewayLink {
    /// `slot` is `None` when the instance is at its connection limit: the socket is then
    /// closed right away with 1013.
    pub fn new(
        state: Data<AppState>,
        gateway_id: Uuid,
        peer: String,
        slot: Option<ConnectionSlot>,
        outbox: Outbox,
    ) -> GatewayLink {
        GatewayLink {
            state,
            gateway_id,
            link_id: Uuid::new_v4(),
            peer,
            identity: None,
            authenticating: false,
            presence: None,
            last_frame: Instant::now(),
            last_touch: None,
            slot,
            outbox,
            replaced: false,
            flushing: false,
            flush_again: false,
            retry: None,
        }
    }

    fn refuse(ctx: &mut socket::Ctx<Self>, reason: &str) {
        socket::send(
            ctx,
            &json!({"type": "auth_error", "payload": {"message": reason}}),
        );
        socket::close(ctx, CloseCode::Other(codes::AUTH_FAILED), reason);
    }

    fn presence_ttl(&self) -> Duration {
        self.state.settings.ws.heartbeat_timeout
    }

    fn authenticate(&mut self, token: String, ctx: &mut socket::Ctx<Self>) {
        self.authenticating = true;
        let (state, gateway_id) = (self.state.clone(), self.gateway_id);
        let check = async move {
            let conn = state.db.get().await.map_err(|e| e.to_string())?;
            gateway_registry::verify_relay(&*conn, gateway_id, &token)
                .await
                .map_err(|e| e.to_string())
        };
        // `wait` holds further frames until the check is done.
        ctx.wait(check.into_actor(self).map(|result, act, ctx| {
            act.authenticating = false;
            match result {
                Ok(Some(identity)) => act.accept(identity, ctx),
                Ok(None) => Self::refuse(ctx, "invalid credentials"),
                Err(e) => {
                    tracing::error!(gateway_id = %act.gateway_id, error = %e, "relay auth failed");
                    Self::refuse(ctx, "authentication unavailable, retry")
                }
            }
        }));
    }

    fn accept(&mut self, identity: GatewayIdentity, ctx: &mut socket::Ctx<Self>) {
        let settings = &self.state.settings;
        let entry = json!({
            "instance_id": settings.instance_id,
            "link_id": self.link_id,
            "connected_at": Utc::now(),
            "peer": self.peer,
        })
        .to_string();
        self.state.registry.do_send(RegisterGateway {
            gateway_id: self.gateway_id,
            link_id: self.link_id,
            socket: SocketHandle {
                control: ctx.address().recipient(),
                frames: ctx.address().recipient(),
                outbox: self.outbox.clone(),
                queue_limit: self.state.settings.ws.outbound_queue_bytes,
            },
            flush: ctx.address().recipient(),
        });
        let (state, key, value, ttl) = (
            self.state.clone(),
            gateway_key(self.gateway_id),
            entry.clone(),
            self.presence_ttl(),
        );
        let online = identity.clone();
        // The presence is written before `auth_ok`: a gateway that has its `auth_ok` is
        // reported connected by every instance.
        let recorded = async move {
            state.presence.set(&key, &value, ttl).await;
            actix::spawn(async move {
                touch(&state, &online, "relay link connected").await;
                announce(&state, online.id, "agent_online").await;
            });
        };
        self.presence = Some(entry);
        self.last_touch = Some(Instant::now());
        self.identity = Some(identity);
        let heartbeat = settings.gateway.heartbeat_interval.as_secs();
        ctx.wait(recorded.into_actor(self).map(move |(), act, ctx| {
            tracing::info!(gateway_id = %act.gateway_id, link_id = %act.link_id, "gateway relay link up");
            socket::send(
                ctx,
                &json!({"type": "auth_ok", "payload": {
                    "gateway_id": act.gateway_id,
                    "config": {"heartbeat_interval_seconds": heartbeat},
                }}),
            );
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
        if self.flushing {
            self.flush_again = true;
            return;
        }
        self.flushing = true;
        self.flush_again = false;
        let (state, gateway_id) = (self.state.clone(), self.gateway_id);
        let claimed = async move {
            let mut conn = state.db.get().await.map_err(|e| e.to_string())?;
            let tx = conn.transaction().await.map_err(|e| e.to_string())?;
            let settings = &state.settings;
            let claimed = gateway_commands::claim_due(
                &tx,
                gateway_id,
                settings.gateway.command_retry,
                settings.gateway.command_max_attempts,
                &settings.instance_id,
                &settings.agent_token_key.0,
            )
            .await
            .map_err(|e| e.to_string())?;
            let held = h5_chat::take_held(&tx, gateway_id, HELD_BATCH)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((claimed, held))
        };
        ctx.spawn(claimed.into_actor(self).map(|result, act, ctx| {
            act.flushing = false;
            let next_due = match result {
                Ok(((frames, next_due), held)) => {
                    for frame in frames {
                        ctx.text(frame);
                    }
                    // A full batch of held chat may have more behind it.
                    act.flush_again |= held.len() as i64 == HELD_BATCH;
                    for frame in held {
                        ctx.text(frame);
                    }
                    next_due
                }
                Err(e) => {
                    tracing::warn!(gateway_id = %act.gateway_id, error = %e, "gateway requests not sent");
                    Some(Utc::now() + act.state.settings.gateway.command_retry)
                }
            };
            if act.flush_again {
                return act.flush(ctx);
            }
            if let Some(retry) = act.retry.take() {
                ctx.cancel_future(retry);
            }
            if let Some(due) = next_due {
                let wait = (due - Utc::now()).to_std().unwrap_or_default();
                act.retry = Some(ctx.run_later(wait + Duration::from_millis(10), |act, ctx| {
                    act.retry = None;
                    act.flush(ctx);
                }));
            }
        }));
    }

    /// A frame is a sign of life; written at most every half heartbeat interval.
    fn frame_seen(&mut self) {
        self.last_frame = Instant::now();
        let Some(identity) = &self.identity else {
            return;
        };
        let every =
            (self.state.settings.gateway.heartbeat_interval / 2).max(Duration::from_secs(1));
        if self.last_touch.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last_touch = Some(Instant::now());
        let (state, identity) = (self.state.clone(), identity.clone());
        actix::spawn(async move { touch(&state, &identity, "relay frame").await });
    }

    fn on_text(&mut self, text: &str, ctx: &mut socket::Ctx<Self>) {
        if socket::too_large(ctx, text.len(), self.state.settings.ws.max_frame_bytes) {
            return;
        }
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return socket::error(ctx, None, "INVALID_JSON", "frames must be JSON objects");
        };
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if self.identity.is_none() {
            if self.authenticating {
                return;
            }
            let token = frame
                .pointer("/payload/relay_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            return match (kind, token) {
                ("auth", Some(token)) => self.authenticate(token.to_string(), ctx),
                ("auth", None) => Self::refuse(ctx, "missing relay_token"),
                _ => Self::refuse(ctx, "expected auth message"),
            };
        }
        match kind {
            "heartbeat" => socket::send(
                ctx,
                &json!({"type": "heartbeat_ack", "id": frame.get("id").cloned().unwrap_or(Value::Null)}),
            ),
            "chat.reply" | "chat_reply" => self.on_reply(frame, ctx),
            "rpc.result" => self.on_rpc_result(frame, ctx),
            "auth" => socket::error(
                ctx,
                None,
                "ALREADY_AUTHENTICATED",
                "this link is already authenticated",
            ),
            "" => socket::error(ctx, None, "MISSING_TYPE", "frames need a \"type\""),
            other => socket::error(
                ctx,
                None,
                "UNKNOWN_TYPE",
                &format!("unknown frame type {other:?}"),
            ),
        }
    }
}

impl GatewayLink {
    /// The gateway's answer to a request: `{"type":"rpc.result","id","payload":{"ok", "result"
    /// | "error"}}`. Recorded, then handed to the caller that waits for it, on any instance.
    fn on_rpc_result(&mut self, frame: Value, ctx: &mut socket::Ctx<Self>) {
        let command_id = frame["id"].as_str().and_then(|id| id.parse::<Uuid>().ok());
        let ok = frame.pointer("/payload/ok").and_then(Value::as_bool);
        let (Some(command_id), Some(ok)) = (command_id, ok) else {
            return socket::error(
                ctx,
                None,
                "MISSING_FIELDS",
                "rpc.result needs the request's id and payload.ok",
            );
        };
        let outcome = if ok {
            Ok(frame
                .pointer("/payload/result")
                .cloned()
                .unwrap_or(Value::Null))
        } else {
            Err(match frame.pointer("/payload/error") {
                Some(Value::String(e)) => e.clone(),
                Some(other) if !other.is_null() => other.to_string(),
                _ => "the gateway reported an error".to_string(),
            })
        };
        let (state, gateway_id) = (self.state.clone(), self.gateway_id);
        let recorded = async move {
            let conn = state.db.get().await.map_err(|e| e.to_string())?;
            let answered = gateway_commands::answer(
                &*conn,
                gateway_id,
                command_id,
                outcome.clone(),
                &state.settings.instance_id,
            )
            .await
            .map_err(|e| e.to_string())?;
            if let Some(answered) = &answered {
                coordination::answered(&*conn, &answered.command)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if let Some(reply_to) = answered.and_then(|a| a.reply_to) {
                gateway_rpc::route_answer(&state, &reply_to, command_id, outcome);
            }
            Ok::<_, String>(())
        };
        ctx.spawn(recorded.into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                tracing::error!(gateway_id = %act.gateway_id, error = %e, "gateway answer not recorded");
                socket::error(ctx, None, "INTERNAL", "the answer was not recorded; send it again");
            }
        }));
    }

    /// An agent's answer: stored, then delivered to every socket of the user, everywhere.
    fn on_reply(&mut self, frame: Value, ctx: &mut socket::Ctx<Self>) {
        let payload = &frame["payload"];
        let session_key = payload
            .get("session_key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        let content = payload
            .get("content")
            .filter(|c| !c.is_null() && c.as_str() != Some(""));
        let (Some(session_key), Some(content)) = (session_key, content) else {
            return socket::error(
                ctx,
                None,
                "MISSING_FIELDS",
                "chat.reply needs payload.session_key and payload.content",
            );
        };
        let reply_id = match &frame["id"] {
            Value::String(id) => Some(id.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let extra = payload.get("extra").filter(|e| e.is_object()).cloned();
        let (state, gateway_id, session_key, content) = (
            self.state.clone(),
            self.gateway_id,
            session_key.to_string(),
            content.clone(),
        );
        let stored = async move {
            let conn = state.db.get().await.map_err(|e| e.to_string())?;
            h5_chat::accept_reply(
                &*conn,
                gateway_id,
                &session_key,
                reply_id.as_deref(),
                &content,
                extra.as_ref(),
            )
            .await
            .map_err(|e| e.to_string())
        };
        // `wait`: replies of one link are stored and delivered in the order the agent sent them.
        ctx.wait(stored.into_actor(self).map(|result, act, ctx| match result {
            Ok(Some((session, message, duplicate))) => {
                if !duplicate {
                    let frame = h5_chat::reply_frame(&session, &message).to_string();
                    act.state.registry.do_send(ToUser { user_id: session.h5_user_id, frame: frame.into() });
                }
            }
            Ok(None) => socket::error(ctx, None, "SESSION_NOT_FOUND", "no chat session of this gateway has that session_key"),
            Err(e) => {
                tracing::error!(gateway_id = %act.gateway_id, error = %e, "chat reply not stored");
                socket::error(ctx, None, "INTERNAL", "the reply was not stored; send it again");
            }
        }));
    }
}

/// Tells every H5 user who chats through this gateway that its agents went offline or came
/// back (`system` frames, on every instance).
async fn announce(state: &AppState, gateway_id: Uuid, event: &str) {
    let audience = match state.db.get().await {
        Ok(conn) => h5_chat::audience_of_gateway(&*conn, gateway_id)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match audience {
        Ok(pairs) => {
            for (user_id, agent_id) in pairs {
                let frame = h5_chat::presence_frame(event, agent_id, gateway_id).to_string();
                state.registry.do_send(ToUser {
                    user_id,
                    frame: frame.into(),
                });
            }
        }
        Err(e) => tracing::warn!(%gateway_id, event, error = %e, "agent presence not announced"),
    }
}

/// Records a sign of life for the gateway (and the online transition, if any).
async fn touch(state: &AppState, identity: &GatewayIdentity, reason: &str) {
    let result = async {
        let mut conn = state.db.get().await.map_err(|e| e.to_string())?;
        let tx = conn.transaction().await.map_err(|e| e.to_string())?;
        gateway_registry::heartbeat(
            &tx,
            identity,
            ONLINE,
            None,
            reason,
            &state.settings.instance_id,
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
        if socket::refuse_over_capacity(ctx, &self.slot) {
            return;
        }
        let ws = &self.state.settings.ws;
        ctx.run_later(ws.auth_timeout, |act, ctx| {
            if act.identity.is_none() {
                Self::refuse(ctx, "auth timeout");
            }
        });
        socket::keep_alive(
            ctx,
            ws,
            |act| act.last_frame,
            |act, _| {
                if let Some(entry) = act.presence.clone() {
                    let (state, key, ttl) = (
                        act.state.clone(),
                        gateway_key(act.gateway_id),
                        act.presence_ttl(),
                    );
                    actix::spawn(async move { state.presence.set(&key, &entry, ttl).await });
                }
            },
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.identity.is_none() {
            return;
        }
        self.state.registry.do_send(UnregisterGateway {
            gateway_id: self.gateway_id,
            link_id: self.link_id,
        });
        if let Some(entry) = self.presence.take() {
            let (state, key, gateway_id, replaced) = (
                self.state.clone(),
                gateway_key(self.gateway_id),
                self.gateway_id,
                self.replaced,
            );
            actix::spawn(async move {
                state.presence.clear_if(&key, &entry).await;
                if !replaced {
                    announce(&state, gateway_id, "agent_offline").await;
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
        if let Some(ws::Message::Text(text)) = socket::incoming(msg, ctx) {
            self.on_text(&text, ctx);
        }
    }
}

impl Handler<Control> for GatewayLink {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        match msg {
            Control::Replaced => {
                self.replaced = true;
                socket::close(
                    ctx,
                    CloseCode::Other(codes::REPLACED),
                    "replaced by a newer connection",
                );
            }
            Control::GoingAway => socket::close(ctx, CloseCode::Away, "server shutting down"),
            Control::TooSlow => socket::close(
                ctx,
                CloseCode::Other(codes::TOO_SLOW),
                "client too slow: reconnect and resume",
            ),
            Control::Revoked(reason) => {
                socket::close(ctx, CloseCode::Other(codes::AUTH_FAILED), &reason)
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
        ctx.text(&*msg.0);
    }
}
