//! `GatewayClient`: the one operator connection to a gateway we dial, on the instance that
//! holds the gateway's lease.
//!
//! Life of a connection: dial → the gateway's `connect.challenge` → our `connect` (shared
//! token or device token, the device block signed over the challenge) → `hello-ok`, whose
//! granted scopes are checked → registered in the local registry as the gateway's link,
//! presence written, recorded requests and held chat sent. A refusal is a visible state of
//! the gateway (pairing, token, protocol, scopes), never a silent "offline"; every failure
//! reconnects with backoff and jitter (a pending pairing is retried until approved).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::{Item, ProtocolError};
use awc::ws;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::commands;
use crate::actors::gateway_flush::{self, Flushes};
use crate::actors::gateway_link::LinkDeps;
use crate::actors::presence;
use crate::actors::registry::{
    Address, Control, FlushCommands, Frame, RegisterGateway, SocketHandle, UnregisterGateway,
};
use crate::actors::socket::Outbox;
use crate::domain::gateways::dialing::{self, ChatTarget, ConnectionState, DialTarget, Report};
use crate::domain::gateways::registry::GatewayIdentity;
use crate::domain::h5::chat as h5_chat;
use crate::domain::h5::delivery::{self, Taken};
use crate::domain::outbox::commands as gateway_commands;
use crate::protocol::bus::{GatewayPresence, RouteMessage};
use crate::protocol::channels::gateway_presence;
use crate::protocol::codes::ErrorCode;
use crate::protocol::openclaw::{self as oc, Challenge, ChatEvent, Credential, Inbound, Refusal};
use crate::protocol::{relay, text, ErrorFrame};
use crate::secrets::device::DeviceKey;

/// What a client uses: a relay link's dependencies and the deployment's device key.
#[derive(Clone)]
pub struct ClientDeps {
    pub link: LinkDeps,
    pub device: Arc<DeviceKey>,
}

/// The largest frame we take from a gateway (its own `policy.maxPayload` is 25 MiB).
const MAX_FRAME: usize = 32 << 20;
/// A message to an agent still being provisioned is tried again after this.
const PROVISIONING_WAIT: Duration = Duration::from_secs(2);
/// A gateway that sends nothing (not even its 30 s `tick`) for this long is gone.
const SILENCE: Duration = Duration::from_secs(75);
const HANDSHAKE: Duration = Duration::from_secs(15);

/// Why a call did not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The gateway answered with an error.
    Gateway(oc::GatewayError),
    /// The gateway cannot take calls for the moment (`UNAVAILABLE`: it is restarting).
    Unavailable(oc::GatewayError),
    /// There is no connection (yet), or it went away before the answer.
    NotConnected,
    Timeout,
}

impl CallError {
    fn of(error: oc::GatewayError) -> CallError {
        match oc::is_unavailable(&error) {
            true => CallError::Unavailable(error),
            false => CallError::Gateway(error),
        }
    }

    /// Worth trying again later as it is: nothing was refused.
    pub fn is_transient(&self) -> bool {
        !matches!(self, CallError::Gateway(_))
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Gateway(e) | CallError::Unavailable(e) => f.write_str(&e.describe()),
            CallError::NotConnected => f.write_str("the gateway is not connected"),
            CallError::Timeout => f.write_str("the gateway did not answer in time"),
        }
    }
}

/// A call on the gateway: `method` with `params`, answered within `timeout`.
#[derive(Message)]
#[rtype(result = "Result<Value, CallError>")]
pub struct Call {
    pub method: &'static str,
    pub params: Value,
    pub timeout: Duration,
}

/// Stops the client (its lease is gone, or the instance shuts down).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// What a client is for: holding a gateway (reconnecting for ever), or one check of a URL
/// and token whose outcome goes to `ready`.
pub enum Purpose {
    Hold,
    /// Holding a gateway through a connector's tunnel (`Tunnel`): as `Hold`, and a
    /// revocation (the gateway was deleted) goes to the connector's link, which closes.
    Tunnelled(Recipient<Control>),
    Probe(Option<oneshot::Sender<Result<oc::Hello, Report>>>),
}

enum Incoming {
    Frame(u64, Result<ws::Frame, ProtocolError>),
    End(u64),
}

enum Phase {
    /// Waiting for the challenge.
    Dialled,
    /// `connect` sent with this request id.
    Connecting(String),
    Ready,
}

struct Connection {
    generation: u64,
    out: mpsc::UnboundedSender<ws::Message>,
    reader: SpawnHandle,
    phase: Phase,
    /// A text message arriving in fragments.
    partial: Option<BytesMut>,
}

pub struct GatewayClient {
    deps: ClientDeps,
    target: DialTarget,
    purpose: Purpose,
    link_id: Uuid,
    connection: Option<Connection>,
    generation: u64,
    failures: u32,
    last_frame: Instant,
    pending: HashMap<String, oneshot::Sender<Result<Value, CallError>>>,
    /// The registry entry and presence of this client, once ready.
    presence: Option<String>,
    outbox: Outbox,
    /// Recorded requests and held messages being claimed and carried out.
    flushes: Flushes,
    /// Gateway agent ids of our agents that took a message.
    agents: HashMap<Uuid, String>,
    /// To the reply writer (`store_replies`), started with the actor.
    replies: mpsc::UnboundedSender<Answer>,
    reply_writer: Option<mpsc::UnboundedReceiver<Answer>>,
    /// The connection's state as last reported, whether a report is being written, and the
    /// one to write after it (`report`).
    last_report: Option<Report>,
    reporting: bool,
    queued_report: Option<Report>,
    stopping: bool,
}

impl GatewayClient {
    pub fn new(deps: ClientDeps, target: DialTarget, purpose: Purpose) -> GatewayClient {
        let (replies, reply_writer) = mpsc::unbounded_channel();
        GatewayClient {
            deps,
            target,
            purpose,
            link_id: Uuid::new_v4(),
            connection: None,
            generation: 0,
            failures: 0,
            last_frame: Instant::now(),
            pending: HashMap::new(),
            presence: None,
            outbox: Outbox::default(),
            flushes: Flushes::default(),
            agents: HashMap::new(),
            replies,
            reply_writer: Some(reply_writer),
            last_report: None,
            reporting: false,
            queued_report: None,
            stopping: false,
        }
    }

    fn identity(&self) -> GatewayIdentity {
        GatewayIdentity {
            id: self.target.id,
            organization_id: self.target.organization_id,
        }
    }

    fn gateway_id(&self) -> Uuid {
        self.target.id
    }

    fn is_ready(&self) -> bool {
        matches!(
            self.connection,
            Some(Connection {
                phase: Phase::Ready,
                ..
            })
        )
    }

    fn dial(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.generation += 1;
        let generation = self.generation;
        let url = self.target.url.clone();
        let timeout = HANDSHAKE;
        let dialled = async move {
            let client = crate::outbound::client(timeout);
            client
                .ws(url.as_str())
                .max_frame_size(MAX_FRAME)
                .connect()
                .await
                .map(|(_, framed)| framed)
                .map_err(|e| e.to_string())
        };
        self.report(Report::new(ConnectionState::Connecting, None), ctx);
        ctx.spawn(dialled.into_actor(self).map(move |result, act, ctx| {
            if act.stopping || generation != act.generation {
                return;
            }
            let framed = match result {
                Ok(framed) => framed,
                Err(e) => {
                    return act.failed(Report::new(ConnectionState::Unreachable, Some(e)), ctx)
                }
            };
            let (mut sink, stream) = framed.split();
            let (out, mut queue) = mpsc::unbounded_channel::<ws::Message>();
            actix::spawn(async move {
                while let Some(message) = queue.recv().await {
                    if sink.send(message).await.is_err() {
                        break;
                    }
                }
                let _ = sink.close().await;
            });
            let frames = stream
                .map(move |frame| Incoming::Frame(generation, frame))
                .chain(futures_util::stream::once(async move {
                    Incoming::End(generation)
                }));
            let reader = ctx.add_stream(frames);
            act.last_frame = Instant::now();
            act.connection = Some(Connection {
                generation,
                out,
                reader,
                phase: Phase::Dialled,
                partial: None,
            });
            ctx.run_later(HANDSHAKE, move |act, ctx| {
                let waiting = act.connection.as_ref().is_some_and(|c| {
                    c.generation == generation && !matches!(c.phase, Phase::Ready)
                });
                if waiting {
                    act.failed(
                        Report::new(
                            ConnectionState::Unreachable,
                            Some("no handshake from the gateway in time".into()),
                        ),
                        ctx,
                    );
                }
            });
        }));
    }

    fn send(&self, frame: String) -> bool {
        match &self.connection {
            Some(connection) => connection.out.send(ws::Message::Text(frame.into())).is_ok(),
            None => false,
        }
    }

    /// Drops the connection (if any) and fails what waited on it.
    fn drop_connection(&mut self, ctx: &mut Context<Self>) {
        if let Some(connection) = self.connection.take() {
            let _ = connection.out.send(ws::Message::Close(None));
            ctx.cancel_future(connection.reader);
        }
        for (_, waiting) in self.pending.drain() {
            let _ = waiting.send(Err(CallError::NotConnected));
        }
        self.unregister();
    }

    /// The connection failed (or was refused): say so, and try again later.
    fn failed(&mut self, report: Report, ctx: &mut Context<Self>) {
        let state = report.state;
        tracing::info!(gateway_id = %self.gateway_id(), state = state.as_str(),
            message = report.message.as_deref().unwrap_or(""), "gateway connection failed");
        self.drop_connection(ctx);
        if let Purpose::Probe(ready) = &mut self.purpose {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Err(report));
            }
            return ctx.stop();
        }
        self.report(report, ctx);
        self.failures += 1;
        let max = self.deps.link.settings.gateway.reconnect_max;
        // A refusal will not change by itself soon: wait the longest; else double per failure.
        let base = match state {
            ConnectionState::Unreachable | ConnectionState::Error | ConnectionState::Connecting => {
                Duration::from_millis(500) * 2u32.pow(self.failures.min(8))
            }
            _ => max,
        };
        let wait = jitter(base.min(max));
        ctx.run_later(wait, |act, ctx| act.dial(ctx));
    }

    /// Records the connection's state, one report at a time and in order (a later report
    /// written first would leave the gateway shown as it no longer is); a report equal to
    /// the last one is not written again, and "connecting" only before anything else was.
    fn report(&mut self, report: Report, ctx: &mut Context<Self>) {
        if matches!(self.purpose, Purpose::Probe(_)) {
            return;
        }
        let repeated = match &self.last_report {
            Some(last) => *last == report || report.state == ConnectionState::Connecting,
            None => false,
        };
        if repeated {
            return;
        }
        self.last_report = Some(report.clone());
        if self.reporting {
            self.queued_report = Some(report);
            return;
        }
        self.write_report(report, ctx);
    }

    /// The connected gateway's sign of life (its `status` and last heartbeat), written in
    /// turn with the reports: one still being written says as much.
    fn alive(&mut self, ctx: &mut Context<Self>) {
        if self.reporting {
            return;
        }
        self.reporting = true;
        let (db, identity, instance) = (
            self.deps.link.db.clone(),
            self.identity(),
            self.deps.link.settings.instance_id.clone(),
        );
        let written = async move {
            if let Ok(conn) = db.get().await {
                if let Err(e) = dialing::alive(&*conn, &identity, &instance).await {
                    tracing::warn!(gateway_id = %identity.id, error = %e, "gateway heartbeat not recorded");
                }
            }
        };
        ctx.spawn(
            written
                .into_actor(self)
                .map(|(), act, ctx| act.reported(ctx)),
        );
    }

    /// A write of the state ended: the next one queued meanwhile, if any.
    fn reported(&mut self, ctx: &mut Context<Self>) {
        self.reporting = false;
        if let Some(next) = self.queued_report.take() {
            self.write_report(next, ctx);
        }
    }

    fn write_report(&mut self, report: Report, ctx: &mut Context<Self>) {
        self.reporting = true;
        let (db, identity, instance) = (
            self.deps.link.db.clone(),
            self.identity(),
            self.deps.link.settings.instance_id.clone(),
        );
        let written = async move {
            let result = async {
                let mut conn = db.get().await.map_err(|e| e.to_string())?;
                let tx = conn.transaction().await.map_err(|e| e.to_string())?;
                dialing::report(&tx, &identity, &report, &instance)
                    .await
                    .map_err(|e| e.to_string())?;
                tx.commit().await.map_err(|e| e.to_string())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(gateway_id = %identity.id, error = %e, "gateway connection state not recorded");
            }
        };
        ctx.spawn(
            written
                .into_actor(self)
                .map(|(), act, ctx| act.reported(ctx)),
        );
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match oc::parse(text) {
            Inbound::Event { event, payload } if event == oc::CHALLENGE => {
                self.on_challenge(payload, ctx)
            }
            Inbound::Event { event, payload } if event == oc::CHAT => {
                if let Some(chat) = ChatEvent::read(&payload) {
                    self.on_chat(chat);
                }
            }
            Inbound::Event { .. } | Inbound::Other => {}
            Inbound::Res { id, outcome } => {
                let connecting = matches!(&self.connection, Some(Connection { phase: Phase::Connecting(c), .. }) if *c == id);
                if connecting {
                    return self.on_hello(outcome, ctx);
                }
                if let Some(waiting) = self.pending.remove(&id) {
                    let _ = waiting.send(outcome.map_err(CallError::of));
                }
            }
        }
    }

    fn on_challenge(&mut self, payload: Value, ctx: &mut Context<Self>) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        if !matches!(connection.phase, Phase::Dialled) {
            return;
        }
        let Ok(challenge) = serde_json::from_value::<Challenge>(payload) else {
            return self.failed(
                Report::new(
                    ConnectionState::Error,
                    Some("the gateway sent a challenge without nonce and ts".into()),
                ),
                ctx,
            );
        };
        let device = &self.deps.device;
        let token = self.target.token.clone().unwrap_or_default();
        let credential = match &self.target.device_token {
            Some(device_token) => Credential::DeviceToken(device_token),
            None => Credential::Token(&token),
        };
        let signature = device.sign(&oc::signing_string(device.id(), &credential, &challenge));
        let params = oc::connect_params(
            env!("CARGO_PKG_VERSION"),
            &credential,
            &oc::Device {
                id: device.id(),
                public_key: device.public_key(),
            },
            &challenge,
            &signature,
        );
        let id = Uuid::new_v4().to_string();
        let frame = text(&oc::Req::new(&id, "connect", &params));
        connection.phase = Phase::Connecting(id);
        self.send(frame);
    }

    fn on_hello(&mut self, outcome: Result<Value, oc::GatewayError>, ctx: &mut Context<Self>) {
        let hello = match outcome {
            Ok(payload) => oc::Hello::read(&payload),
            Err(error) => return self.refused(error, ctx),
        };
        let missing = hello.missing_scopes();
        if !missing.is_empty() {
            let message = format!(
                "the gateway granted scopes [{}]; missing {}",
                hello.scopes.join(", "),
                missing.join(", ")
            );
            return self.failed(
                Report::new(ConnectionState::MissingScopes, Some(message)),
                ctx,
            );
        }
        self.failures = 0;
        tracing::info!(gateway_id = %self.gateway_id(), protocol = hello.protocol,
            version = hello.version.as_deref().unwrap_or("?"), "gateway connected");
        if let Purpose::Probe(ready) = &mut self.purpose {
            if let Some(ready) = ready.take() {
                let _ = ready.send(Ok(hello));
            }
        } else {
            if let Some(device_token) = &hello.device_token {
                self.keep_device_token(device_token.clone());
            }
            self.report(
                Report {
                    protocol: Some(hello.protocol as i32),
                    version: hello.version.clone(),
                    ..Report::new(ConnectionState::Connected, None)
                },
                ctx,
            );
            self.register(ctx);
        }
        if let Some(connection) = &mut self.connection {
            connection.phase = Phase::Ready;
        }
        self.flushes.reconnected();
        self.recover(ctx);
        self.flush(ctx);
    }

    fn refused(&mut self, error: oc::GatewayError, ctx: &mut Context<Self>) {
        let message = Some(error.describe());
        let report = match oc::Refusal::of(&error) {
            Refusal::PairingRequired => Report {
                pairing_request_id: oc::pairing_request_id(&error),
                ..Report::new(ConnectionState::PairingRequired, message)
            },
            Refusal::AuthFailed if self.target.device_token.is_some() => {
                // The gateway forgot our device token (the device was removed or re-paired):
                // the shared token tries next, at once.
                self.target.device_token = None;
                let (db, gateway_id) = (self.deps.link.db.clone(), self.gateway_id());
                actix::spawn(async move {
                    if let Ok(conn) = db.get().await {
                        let _ = dialing::forget_device_token(&*conn, gateway_id).await;
                    }
                });
                self.drop_connection(ctx);
                return self.dial(ctx);
            }
            Refusal::AuthFailed => Report::new(ConnectionState::AuthFailed, message),
            Refusal::ProtocolMismatch => Report::new(ConnectionState::ProtocolMismatch, message),
            Refusal::Other => Report::new(ConnectionState::Error, message),
        };
        self.failed(report, ctx);
    }

    fn keep_device_token(&mut self, device_token: String) {
        if self.target.device_token.as_deref() == Some(&device_token) {
            return;
        }
        self.target.device_token = Some(device_token.clone());
        let (db, gateway_id) = (self.deps.link.db.clone(), self.gateway_id());
        actix::spawn(async move {
            let kept = match db.get().await {
                Ok(conn) => dialing::keep_device_token(&*conn, gateway_id, &device_token)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = kept {
                tracing::warn!(%gateway_id, error = %e, "device token not kept");
            }
        });
    }

    /// Registers as the gateway's link (the router then reaches this client from every
    /// instance) and writes the gateway's presence.
    fn register(&mut self, ctx: &mut Context<Self>) {
        let link = &self.deps.link;
        let entry = text(&GatewayPresence {
            instance_id: &link.settings.instance_id,
            link_id: self.link_id,
            connected_at: Utc::now(),
            peer: &self.target.url,
        });
        link.router.registry().do_send(RegisterGateway {
            gateway_id: self.gateway_id(),
            link_id: self.link_id,
            socket: SocketHandle {
                control: ctx.address().recipient(),
                frames: ctx.address().recipient(),
                outbox: self.outbox.clone(),
                queue_limit: link.settings.ws.outbound_queue_bytes,
            },
            flush: ctx.address().recipient(),
        });
        self.presence = Some(entry);
        self.refresh_presence();
    }

    fn refresh_presence(&self) {
        let Some(entry) = self.presence.clone() else {
            return;
        };
        let (presence, key) = (
            self.deps.link.presence.clone(),
            gateway_presence(self.gateway_id()),
        );
        actix::spawn(async move { presence.set(&key, &entry, presence::ENTRY_TTL).await });
    }

    fn unregister(&mut self) {
        let Some(entry) = self.presence.take() else {
            return;
        };
        self.deps.link.router.registry().do_send(UnregisterGateway {
            gateway_id: self.gateway_id(),
            link_id: self.link_id,
        });
        let (presence, key) = (
            self.deps.link.presence.clone(),
            gateway_presence(self.gateway_id()),
        );
        actix::spawn(async move { presence.clear_if(&key, &entry).await });
    }

    /// A handle other tasks call the gateway through.
    fn calls(&self, ctx: &Context<Self>) -> Calls {
        Calls {
            client: ctx.address(),
            timeout: self.deps.link.settings.gateway.rpc_timeout,
        }
    }

    /// Claims the gateway's due requests and held chat and carries them out; then arms a
    /// timer for the next request that falls due (as a relay link does).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.is_ready() || matches!(self.purpose, Purpose::Probe(_)) {
            return;
        }
        let Some(connected) = self.flushes.start() else {
            return;
        };
        let (link, gateway_id) = (self.deps.link.clone(), self.gateway_id());
        let claimed =
            async move { gateway_flush::claim_due(&link, gateway_id, connected, false).await };
        ctx.spawn(claimed.into_actor(self).map(move |result, act, ctx| {
            let next_due = match result {
                Ok(due) => {
                    if due.more_chat {
                        act.flushes.again();
                    }
                    let chat = due.chat.into_iter().map(|(_, frame)| frame).collect();
                    act.carry_out(due.commands, chat, ctx);
                    due.next_due
                }
                Err(e) => {
                    tracing::warn!(gateway_id = %act.gateway_id(), error = %e, "gateway requests not sent");
                    // A wake-up meanwhile waits for the retry armed below.
                    act.flushes.done();
                    act.flushes.claim_failed(connected);
                    Some(Utc::now() + act.deps.link.settings.gateway.command_retry)
                }
            };
            act.flushes.arm(ctx, next_due, Self::flush);
        }));
    }

    /// Reads answer at once, each on its own; changes run one after another in the order
    /// they were recorded (an agent's files go after its creation); H5 messages go last, to
    /// agents that exist by then.
    fn carry_out(
        &mut self,
        claimed: Vec<gateway_commands::Command>,
        held: Vec<String>,
        ctx: &mut Context<Self>,
    ) {
        let (reads, changes): (Vec<_>, Vec<_>) = claimed.into_iter().partition(commands::is_read);
        let calls = self.calls(ctx);
        let (link, workspace_root) = (self.deps.link.clone(), self.target.workspace_root.clone());
        for command in reads {
            let (calls, link, root) = (calls.clone(), link.clone(), workspace_root.clone());
            actix::spawn(async move { execute(&calls, &link, &root, command).await });
        }
        let sequential = async move {
            for command in changes {
                execute(&calls, &link, &workspace_root, command).await;
            }
        };
        ctx.spawn(sequential.into_actor(self).map(move |(), act, ctx| {
            for frame in held {
                act.on_route_frame(&frame, ctx);
            }
            if act.flushes.done() {
                act.flush(ctx);
            }
        }));
    }

    /// A frame the router handed us: an H5 user's message (`chat.send` of the relay
    /// protocol) becomes the gateway's `chat.send` in the agent's session for that user, with
    /// our message id as the idempotency key (a resend never runs twice). A message to an
    /// agent whose provisioning is still open waits for it.
    fn on_route_frame(&mut self, frame: &str, ctx: &mut Context<Self>) {
        let Some(message) = relay::read_chat_send(frame) else {
            return;
        };
        let calls = self.calls(ctx);
        let (link, gateway_id) = (self.deps.link.clone(), self.gateway_id());
        let known = self.agents.get(&message.agent_id).cloned();
        let sent = async move {
            let target = match known {
                Some(agent) => ChatTarget::Ready(agent),
                None => {
                    let conn = link.db.get().await.map_err(|e| e.to_string())?;
                    dialing::chat_target(&*conn, gateway_id, message.agent_id)
                        .await
                        .map_err(|e| e.to_string())?
                }
            };
            let ChatTarget::Ready(agent) = &target else {
                return Ok((message, target, None));
            };
            let session_key = oc::h5_session_key(agent, &message.h5_user_id.to_string());
            let content = match &message.content {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let outcome = calls
                .call(
                    "chat.send",
                    json!({"sessionKey": session_key, "message": content, "deliver": false,
                           "idempotencyKey": message.message_id.to_string()}),
                )
                .await;
            Ok::<_, String>((message, target, Some(outcome)))
        };
        ctx.spawn(sent.into_actor(self).map(|result, act, ctx| {
            let (message, target, outcome) = match result {
                Ok(sent) => sent,
                Err(e) => {
                    tracing::error!(gateway_id = %act.gateway_id(), error = %e, "chat message not sent");
                    return;
                }
            };
            let refused = |error: &oc::GatewayError| {
                format!("the gateway refused the message: {}", error.describe())
            };
            match (target, outcome) {
                (ChatTarget::Ready(agent), Some(Ok(answer))) => {
                    act.agents.insert(message.agent_id, agent);
                    // `in_flight`: the gateway had this run already, from a connection now
                    // gone (an instance that drained or died after sending it, before
                    // recording that): its answer may have gone to that connection, so it
                    // is read back from the history once recorded as taken.
                    let repeated = answer["status"] == "in_flight";
                    act.taken(message.message_id, repeated, ctx);
                }
                (ChatTarget::Provisioning, _) => act.after_provisioning(message.message_id, ctx),
                // Still pending: sent again when due, or by the next connection.
                (_, Some(Err(
                    CallError::NotConnected | CallError::Timeout | CallError::Unavailable(_),
                ))) => {}
                // The gateway does not have the agent (yet): it waits if a provisioning is
                // under way, else the user hears why.
                (_, Some(Err(CallError::Gateway(error)))) if oc::is_not_loaded_yet(&error) => {
                    act.agents.remove(&message.agent_id);
                    let why = refused(&error);
                    act.hold_while_provisioning(message, why, ctx);
                }
                (_, Some(Err(CallError::Gateway(error)))) => {
                    act.tell_user(message.message_id, refused(&error))
                }
                (ChatTarget::Missing, _) | (ChatTarget::Ready(_), None) => act.tell_user(
                    message.message_id,
                    "the agent has no session on this gateway".into(),
                ),
            }
        }));
    }

    /// The gateway took the message (its run started): it stays pending until the run's
    /// answer is stored, and its user hears it was delivered.
    fn taken(&mut self, message_id: Uuid, then_recover: bool, ctx: &mut Context<Self>) {
        let (link, gateway_id) = (self.deps.link.clone(), self.gateway_id());
        let recorded = async move {
            let conn = link.db.get().await.map_err(|e| e.to_string())?;
            let acks = delivery::taken(&*conn, gateway_id, &[message_id], Taken::AnswerAwaited)
                .await
                .map_err(|e| e.to_string())?;
            for (user, text) in acks {
                link.router
                    .tell(Address::User(user), RouteMessage::Frame { text });
            }
            Ok::<_, String>(())
        };
        ctx.spawn(recorded.into_actor(self).map(move |result, act, ctx| match result {
            Ok(()) if then_recover => act.recover(ctx),
            Ok(()) => {}
            // Still pending: sent again later, and the gateway runs it once.
            Err(e) => {
                tracing::warn!(gateway_id = %act.gateway_id(), error = %e, "taken message not recorded")
            }
        }));
    }

    /// Reads back what the gateway answered while nobody listened: the runs of messages it
    /// took before this connection (on a connection of this or of a dead instance) whose
    /// answer is not stored are looked up in their sessions' history. A message taken long
    /// ago and answered nowhere is told to its user as unanswered.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.purpose, Purpose::Probe(_)) {
            return;
        }
        let (calls, link, gateway_id, replies) = (
            self.calls(ctx),
            self.deps.link.clone(),
            self.gateway_id(),
            self.replies.clone(),
        );
        actix::spawn(async move {
            if let Err(e) = recover(&calls, &link, gateway_id, &replies).await {
                tracing::warn!(%gateway_id, error = %e, "answers not read back from the gateway");
            }
        });
    }

    /// The message's agent is still being provisioned: it is sent again shortly after (by
    /// the flush that follows the provisioning under way, or its retry timer), not before.
    fn after_provisioning(&mut self, message_id: Uuid, ctx: &mut Context<Self>) {
        let db = self.deps.link.db.clone();
        let deferred = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            delivery::retry_in(&*conn, message_id, PROVISIONING_WAIT)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(deferred.into_actor(self).map(|result, act, _| match result {
            Ok(()) => act.flushes.again_if_running(),
            Err(e) => {
                tracing::warn!(gateway_id = %act.gateway_id(), error = %e, "chat message not deferred")
            }
        }));
    }

    /// `after_provisioning`, if a provisioning of the message's agent is open; else the
    /// user is told `why` (the gateway's refusal).
    fn hold_while_provisioning(
        &mut self,
        message: relay::ChatSendRead,
        why: String,
        ctx: &mut Context<Self>,
    ) {
        let (db, gateway_id) = (self.deps.link.db.clone(), self.gateway_id());
        let agent_id = message.agent_id;
        let target = async move {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            dialing::chat_target(&*conn, gateway_id, agent_id)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(target.into_actor(self).map(move |result, act, ctx| match result {
            Ok(ChatTarget::Provisioning) => act.after_provisioning(message.message_id, ctx),
            Ok(_) => act.tell_user(message.message_id, why),
            Err(e) => {
                tracing::error!(gateway_id = %act.gateway_id(), error = %e, "chat message not held for the gateway")
            }
        }));
    }

    /// Tells the user an H5 message got no answer from its agent (`why`), as a reply
    /// (`store_reply`).
    fn tell_user(&self, message_id: Uuid, why: String) {
        let _ = self.replies.send(Answer::Failed {
            message_id,
            why,
            gateway_session_key: None,
        });
    }

    /// A run's end goes to the reply writer (`store_replies`); only H5 messages' runs are
    /// stored (a request's `chat.send` runs under the request's id, which is no message).
    fn on_chat(&mut self, chat: ChatEvent) {
        if !chat.is_terminal() {
            return;
        }
        let Ok(run) = Uuid::parse_str(&chat.run_id) else {
            return;
        };
        let answer = if chat.state == "final" {
            Answer::Reply {
                message_id: run,
                text: chat.text,
                gateway_session_key: chat.session_key,
            }
        } else {
            Answer::Failed {
                message_id: run,
                why: format!(
                    "the agent's run ended {}: {}",
                    chat.state,
                    chat.error.as_deref().unwrap_or("no details")
                ),
                gateway_session_key: Some(chat.session_key),
            }
        };
        let _ = self.replies.send(answer);
    }
}

/// A message the gateway took this long ago and answered nowhere (not even in its history)
/// is given up: its user is told.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 60);

async fn recover(
    calls: &Calls,
    link: &LinkDeps,
    gateway_id: Uuid,
    replies: &mpsc::UnboundedSender<Answer>,
) -> Result<(), String> {
    let unanswered = {
        let conn = link.db.get().await.map_err(|e| e.to_string())?;
        delivery::unanswered(&*conn, gateway_id, Duration::ZERO, 500)
            .await
            .map_err(|e| e.to_string())?
    };
    // One history read per session.
    let mut sessions: HashMap<(Uuid, Uuid), Vec<(Uuid, bool)>> = HashMap::new();
    for waiting in unanswered {
        let old = waiting.accepted_for >= GIVE_UP_AFTER;
        sessions
            .entry((waiting.agent_id, waiting.h5_user_id))
            .or_default()
            .push((waiting.message_id, old));
    }
    for ((agent_id, h5_user_id), messages) in sessions {
        let target = {
            let conn = link.db.get().await.map_err(|e| e.to_string())?;
            dialing::chat_target(&*conn, gateway_id, agent_id)
                .await
                .map_err(|e| e.to_string())?
        };
        let mut answered = HashMap::new();
        if let ChatTarget::Ready(agent) = target {
            let session_key = oc::h5_session_key(&agent, &h5_user_id.to_string());
            let history = calls
                .call(
                    "chat.history",
                    json!({"sessionKey": session_key, "limit": 200}),
                )
                .await
                .map_err(|e| e.to_string())?;
            for message in history["messages"].as_array().into_iter().flatten() {
                let run: Option<Uuid> = message["__openclaw"]["runId"]
                    .as_str()
                    .and_then(|r| r.parse().ok());
                if let (Some(run), "assistant") = (run, message["role"].as_str().unwrap_or("")) {
                    answered.insert(run, (oc::message_text(message), session_key.clone()));
                }
            }
        }
        for (message_id, old) in messages {
            let answer = match answered.remove(&message_id) {
                Some((text, gateway_session_key)) => Answer::Reply {
                    message_id,
                    text,
                    gateway_session_key,
                },
                None if old => Answer::Failed {
                    message_id,
                    why: "the agent did not answer".into(),
                    gateway_session_key: None,
                },
                // Its run may still be going: its end reaches this connection.
                None => continue,
            };
            let _ = replies.send(answer);
        }
    }
    Ok(())
}

/// What came back for an H5 message: the agent's reply, or why there is none.
enum Answer {
    Reply {
        message_id: Uuid,
        text: String,
        gateway_session_key: String,
    },
    Failed {
        message_id: Uuid,
        why: String,
        gateway_session_key: Option<String>,
    },
}

/// Stores the answers to H5 messages and delivers them to the users' sockets on every
/// instance, one after another in the order they came (a user reads an agent's replies in
/// the order it gave them), beside the client actor, which keeps reading the gateway's
/// frames and answering calls meanwhile. Ends when the client goes.
async fn store_replies(
    link: LinkDeps,
    gateway_id: Uuid,
    mut answers: mpsc::UnboundedReceiver<Answer>,
) {
    let mut batch = Vec::with_capacity(REPLY_BATCH);
    while answers.recv_many(&mut batch, REPLY_BATCH).await > 0 {
        // One connection for the batch: its statements are pipelined, and run in the order
        // they were sent.
        let stored = match link.db.get().await {
            Ok(conn) => {
                let stores = batch
                    .drain(..)
                    .map(|answer| store_reply(&*conn, gateway_id, answer));
                futures_util::future::join_all(stores).await
            }
            Err(e) => {
                tracing::error!(%gateway_id, error = %e, "chat replies not stored: no database connection");
                batch.clear();
                continue;
            }
        };
        for frames in stored {
            match frames {
                Ok(frames) => {
                    for (user, frame) in frames {
                        link.router
                            .tell(Address::User(user), RouteMessage::Frame { text: frame });
                    }
                }
                Err(e) => tracing::error!(%gateway_id, error = %e, "chat reply not stored"),
            }
        }
    }
}

/// Answers stored per database round trip at most.
const REPLY_BATCH: usize = 64;

/// Stores one answer (once: the run id, or `error:<message id>`, is its key) in the session
/// of the message it answers, and returns the frames that deliver it (to whom). A failure
/// also goes out as an `error` frame about the message (`AGENT_ERROR`, for clients that read
/// them), while its stored reply says why, because the shipped app shows only replies.
async fn store_reply(
    client: &impl crate::db::GenericClient,
    gateway_id: Uuid,
    answer: Answer,
) -> Result<Vec<(Uuid, String)>, String> {
    let (message_id, key, content, extra, failure) = match answer {
        Answer::Reply {
            message_id,
            text,
            gateway_session_key,
        } => (
            message_id,
            message_id.to_string(),
            text,
            json!({"run_id": message_id, "gateway_session_key": gateway_session_key}),
            None,
        ),
        Answer::Failed {
            message_id,
            why,
            gateway_session_key,
        } => (
            message_id,
            format!("error:{message_id}"),
            format!("The agent could not answer: {why}"),
            json!({"error": why, "reply_to": message_id, "gateway_session_key": gateway_session_key}),
            Some(why),
        ),
    };
    let stored = h5_chat::accept_reply(
        client,
        gateway_id,
        h5_chat::ReplyTo::Message(message_id),
        Some(&key),
        &Value::String(content),
        Some(&extra),
    )
    .await
    .map_err(|e| e.to_string())?;
    let Some((session, message, duplicate)) = stored else {
        return Ok(Vec::new());
    };
    let mut frames = Vec::new();
    if let Some(why) = failure {
        let frame = ErrorFrame::about(ErrorCode::AgentError, &why, message_id);
        frames.push((session.h5_user_id, text(&frame)));
    }
    if !duplicate {
        let frame = h5_chat::reply_frame(&session, &message);
        frames.push((session.h5_user_id, text(&frame)));
    }
    Ok(frames)
}

/// Carries out one claimed request and records its answer (handing it to a waiting caller).
/// A request the gateway could not take now (no connection, no answer in time) stays sent and
/// is retried with backoff.
async fn execute(
    calls: &Calls,
    link: &LinkDeps,
    workspace_root: &str,
    command: gateway_commands::Command,
) {
    let base_url = link
        .settings
        .base_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string());
    let outcome = match commands::run(calls, workspace_root, base_url.as_deref(), &command).await {
        Ok(result) => Ok(result),
        Err(e) if e.is_transient() => return,
        Err(e) => Err(e.to_string()),
    };
    let recorded =
        gateway_flush::record_answer(link, command.gateway_id, command.id, outcome).await;
    if let Err(e) = recorded {
        tracing::error!(gateway_id = %command.gateway_id, error = %e, "gateway answer not recorded");
    }
}

/// How tasks call the gateway through its client.
#[derive(Clone)]
pub struct Calls {
    client: Addr<GatewayClient>,
    timeout: Duration,
}

impl Calls {
    pub fn new(client: Addr<GatewayClient>, timeout: Duration) -> Calls {
        Calls { client, timeout }
    }

    pub async fn call(&self, method: &'static str, params: Value) -> Result<Value, CallError> {
        self.call_within(method, params, self.timeout).await
    }

    pub async fn call_within(
        &self,
        method: &'static str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        self.client
            .send(Call {
                method,
                params,
                timeout,
            })
            .await
            .unwrap_or(Err(CallError::NotConnected))
    }
}

/// Between `base / 2` and `base`: instances that lost a gateway together do not dial it in
/// step.
fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    base / 2 + base.mul_f64(f64::from(byte[0]) / 510.0)
}

impl Actor for GatewayClient {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(presence::REFRESH_EVERY, |act, _| act.refresh_presence());
        if let Some(answers) = self.reply_writer.take() {
            actix::spawn(store_replies(
                self.deps.link.clone(),
                self.gateway_id(),
                answers,
            ));
        }
        self.dial(ctx);
        let every = self.deps.link.settings.ws.heartbeat_interval;
        ctx.run_interval(every, |act, ctx| {
            if act.connection.is_some() && act.last_frame.elapsed() > SILENCE {
                return act.failed(
                    Report::new(
                        ConnectionState::Unreachable,
                        Some("the gateway went silent".into()),
                    ),
                    ctx,
                );
            }
            if act.is_ready() {
                act.alive(ctx);
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.stopping = true;
        self.drop_connection(ctx);
    }
}

impl StreamHandler<Incoming> for GatewayClient {
    fn handle(&mut self, item: Incoming, ctx: &mut Context<Self>) {
        let current = self.connection.as_ref().map(|c| c.generation);
        match item {
            Incoming::End(generation) if Some(generation) == current => self.failed(
                Report::new(
                    ConnectionState::Unreachable,
                    Some("the gateway closed the connection".into()),
                ),
                ctx,
            ),
            Incoming::Frame(generation, frame) if Some(generation) == current => {
                self.last_frame = Instant::now();
                match frame {
                    Ok(ws::Frame::Text(bytes)) => self.on_bytes(bytes, ctx),
                    Ok(ws::Frame::Continuation(item)) => self.on_fragment(item, ctx),
                    Ok(ws::Frame::Ping(data)) => {
                        if let Some(c) = &self.connection {
                            let _ = c.out.send(ws::Message::Pong(data));
                        }
                    }
                    Ok(ws::Frame::Close(reason)) => {
                        let said = reason
                            .map(|r| format!("{:?} {}", r.code, r.description.unwrap_or_default()))
                            .unwrap_or_default();
                        self.failed(
                            Report::new(
                                ConnectionState::Unreachable,
                                Some(
                                    format!("the gateway closed the connection {said}")
                                        .trim()
                                        .to_string(),
                                ),
                            ),
                            ctx,
                        );
                    }
                    Ok(_) => {}
                    Err(e) => self.failed(
                        Report::new(ConnectionState::Error, Some(e.to_string())),
                        ctx,
                    ),
                }
            }
            _ => {}
        }
    }

    /// Each connection's stream ends with `Incoming::End`; the actor outlives its streams.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl GatewayClient {
    fn on_bytes(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        match std::str::from_utf8(&bytes) {
            Ok(text) => self.on_text(text, ctx),
            Err(_) => {
                tracing::warn!(gateway_id = %self.gateway_id(), "a gateway frame was not UTF-8")
            }
        }
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut Context<Self>) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        match item {
            Item::FirstText(part) => connection.partial = Some(BytesMut::from(&part[..])),
            Item::FirstBinary(_) => connection.partial = None,
            Item::Continue(part) => {
                if let Some(partial) = &mut connection.partial {
                    partial.extend_from_slice(&part);
                }
            }
            Item::Last(part) => {
                if let Some(mut partial) = connection.partial.take() {
                    partial.extend_from_slice(&part);
                    self.on_bytes(partial.freeze(), ctx);
                }
            }
        }
    }
}

impl Handler<Call> for GatewayClient {
    type Result = ResponseActFuture<Self, Result<Value, CallError>>;

    fn handle(&mut self, call: Call, _: &mut Context<Self>) -> Self::Result {
        let id = Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        let sent =
            self.is_ready() && self.send(text(&oc::Req::new(&id, call.method, &call.params)));
        if sent {
            self.pending.insert(id.clone(), tx);
        } else {
            let _ = tx.send(Err(CallError::NotConnected));
        }
        let timeout = call.timeout;
        Box::pin(
            async move {
                match tokio::time::timeout(timeout, rx).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err(CallError::NotConnected),
                    Err(_) => Err(CallError::Timeout),
                }
            }
            .into_actor(self)
            .map(move |outcome, act, _| {
                act.pending.remove(&id);
                outcome
            }),
        )
    }
}

impl Handler<Stop> for GatewayClient {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.stopping = true;
        ctx.stop();
    }
}

impl Handler<Control> for GatewayClient {
    type Result = ();

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) {
        match msg {
            // Another holder registered (a lease race): the lease decides, next renewal.
            Control::Replaced => self.unregister(),
            // Wake-ups of that time were lost too: what is due goes now.
            Control::Resync => {
                self.refresh_presence();
                self.flush(ctx);
            }
            Control::Revoked(reason) => {
                if let Purpose::Tunnelled(link) = &self.purpose {
                    link.do_send(Control::Revoked(reason));
                }
            }
            Control::TooSlow => {}
        }
    }
}

impl Handler<FlushCommands> for GatewayClient {
    type Result = ();

    fn handle(&mut self, _: FlushCommands, ctx: &mut Context<Self>) {
        self.flush(ctx);
    }
}

impl Handler<Frame> for GatewayClient {
    type Result = ();

    fn handle(&mut self, msg: Frame, ctx: &mut Context<Self>) {
        // Counted in the outbox by the sender (`SocketHandle::deliver`).
        self.outbox.release(msg.0.len());
        self.on_route_frame(&msg.0, ctx);
    }
}
