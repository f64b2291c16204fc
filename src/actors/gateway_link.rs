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
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use super::presence::gateway_key;
use super::registry::{Control, RegisterGateway, UnregisterGateway};
use crate::domain::gateway_registry::{self, GatewayIdentity, ONLINE};
use crate::state::AppState;

/// Close codes of the relay protocol.
pub mod close {
    pub const AUTH_FAILED: u16 = 4001;
    pub const REPLACED: u16 = 4000;
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
}

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
}

impl GatewayLink {
    pub fn new(state: Data<AppState>, gateway_id: Uuid, peer: String) -> GatewayLink {
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
        }
    }

    fn send(ctx: &mut ws::WebsocketContext<Self>, frame: Value) {
        ctx.text(frame.to_string());
    }

    fn error(ctx: &mut ws::WebsocketContext<Self>, code: &str, message: &str) {
        Self::send(
            ctx,
            json!({"type": "error", "payload": {"code": code, "message": message}}),
        );
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, reason: &str) {
        ctx.close(Some(CloseReason {
            code,
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    fn refuse(ctx: &mut ws::WebsocketContext<Self>, reason: &str) {
        Self::send(
            ctx,
            json!({"type": "auth_error", "payload": {"message": reason}}),
        );
        Self::close(ctx, CloseCode::Other(close::AUTH_FAILED), reason);
    }

    fn presence_ttl(&self) -> Duration {
        self.state.settings.ws.heartbeat_timeout
    }

    fn authenticate(&mut self, token: String, ctx: &mut ws::WebsocketContext<Self>) {
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

    fn accept(&mut self, identity: GatewayIdentity, ctx: &mut ws::WebsocketContext<Self>) {
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
            control: ctx.address().recipient(),
        });
        let (state, key, value, ttl) = (
            self.state.clone(),
            gateway_key(self.gateway_id),
            entry.clone(),
            self.presence_ttl(),
        );
        let online = identity.clone();
        actix::spawn(async move {
            state.presence.set(&key, &value, ttl).await;
            touch(&state, &online, "relay link connected").await;
        });
        self.presence = Some(entry);
        self.last_touch = Some(Instant::now());
        tracing::info!(gateway_id = %self.gateway_id, link_id = %self.link_id, "gateway relay link up");
        Self::send(
            ctx,
            json!({"type": "auth_ok", "payload": {
                "gateway_id": self.gateway_id,
                "config": {"heartbeat_interval_seconds": settings.gateway.heartbeat_interval.as_secs()},
            }}),
        );
        self.identity = Some(identity);
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

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return Self::error(ctx, "INVALID_JSON", "frames must be JSON objects");
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
            "heartbeat" => Self::send(
                ctx,
                json!({"type": "heartbeat_ack", "id": frame.get("id").cloned().unwrap_or(Value::Null)}),
            ),
            "auth" => Self::error(
                ctx,
                "ALREADY_AUTHENTICATED",
                "this link is already authenticated",
            ),
            "" => Self::error(ctx, "MISSING_TYPE", "frames need a \"type\""),
            other => Self::error(
                ctx,
                "UNKNOWN_TYPE",
                &format!("unknown frame type {other:?}"),
            ),
        }
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
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let ws = self.state.settings.ws.clone();
        ctx.run_later(ws.auth_timeout, |act, ctx| {
            if act.identity.is_none() {
                Self::refuse(ctx, "auth timeout");
            }
        });
        ctx.run_interval(ws.heartbeat_interval, move |act, ctx| {
            if act.last_frame.elapsed() > ws.heartbeat_timeout {
                tracing::info!(gateway_id = %act.gateway_id, "gateway relay link timed out");
                return Self::close(
                    ctx,
                    CloseCode::Other(close::HEARTBEAT_TIMEOUT),
                    "heartbeat timeout",
                );
            }
            ctx.ping(b"");
            if let Some(entry) = act.presence.clone() {
                let (state, key, ttl) = (
                    act.state.clone(),
                    gateway_key(act.gateway_id),
                    act.presence_ttl(),
                );
                actix::spawn(async move { state.presence.set(&key, &entry, ttl).await });
            }
        });
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
            let (state, key) = (self.state.clone(), gateway_key(self.gateway_id));
            actix::spawn(async move { state.presence.clear_if(&key, &entry).await });
        }
        tracing::info!(gateway_id = %self.gateway_id, link_id = %self.link_id, "gateway relay link down");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for GatewayLink {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(ws::ProtocolError::Overflow) => {
                return Self::close(ctx, CloseCode::Size, "frame larger than WS_MAX_FRAME_BYTES");
            }
            Err(e) => {
                tracing::debug!(gateway_id = %self.gateway_id, error = %e, "relay protocol error");
                return Self::close(ctx, CloseCode::Protocol, "protocol error");
            }
        };
        self.frame_seen();
        match msg {
            ws::Message::Text(text) => self.on_text(&text, ctx),
            ws::Message::Ping(bytes) => ctx.pong(&bytes),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                Self::error(ctx, "BINARY_NOT_SUPPORTED", "send JSON text frames")
            }
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl Handler<Control> for GatewayLink {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) {
        match msg {
            Control::Replaced => Self::close(
                ctx,
                CloseCode::Other(close::REPLACED),
                "replaced by a newer connection",
            ),
            Control::GoingAway => Self::close(ctx, CloseCode::Away, "server shutting down"),
        }
    }
}
