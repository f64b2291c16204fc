//! Requests to gateways over their relay links, from any instance.
//!
//! A request is first recorded (`domain::outbox::commands`), then the gateway's link is
//! woken wherever it is (a `RouteMessage::Flush` through the registry's `Router`); the link
//! claims what is due and sends it. The gateway's `rpc.result` is recorded by the link,
//! which hands the answer (`RouteAnswer`) to its instance's `RpcReplies`; that delivers it
//! to the caller waiting there, or publishes it on `Channel::RpcAnswers` of the caller's
//! instance.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe};
use super::registry::{Address, Delivery, Router};
use crate::config::Settings;
use crate::db::PgPool;
use crate::domain::outbox::commands::{self as gateway_commands, NewCommand, Target};
use crate::protocol::bus::{RouteMessage, RpcAnswer};
use crate::protocol::channels::Channel;

#[derive(Message)]
#[rtype(result = "()")]
struct Await {
    command_id: Uuid,
    reply: oneshot::Sender<Result<Value, String>>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Forget(Uuid);

/// The callers of this instance that wait for a gateway's answer.
pub struct RpcReplies {
    bridge: Addr<Bridge>,
    instance_id: String,
    waiting: HashMap<Uuid, oneshot::Sender<Result<Value, String>>>,
}

impl RpcReplies {
    pub fn new(bridge: Addr<Bridge>, instance_id: String) -> RpcReplies {
        RpcReplies {
            bridge,
            instance_id,
            waiting: HashMap::new(),
        }
    }
}

impl Actor for RpcReplies {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.bridge.do_send(Subscribe {
            channel: Channel::RpcAnswers(self.instance_id.clone()).to_string(),
            subscriber: ctx.address().recipient(),
        });
    }
}

impl Supervised for RpcReplies {}

impl Handler<Await> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: Await, _: &mut Context<Self>) {
        self.waiting.insert(msg.command_id, msg.reply);
    }
}

impl Handler<Forget> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: Forget, _: &mut Context<Self>) {
        self.waiting.remove(&msg.0);
    }
}

impl RpcReplies {
    /// The gateway's answer to request `command_id`, for its caller here if one still waits.
    fn answered(&mut self, command_id: Uuid, outcome: Result<Value, String>) {
        if let Some(reply) = self.waiting.remove(&command_id) {
            let _ = reply.send(outcome);
        }
    }
}

/// Answers relayed by the instance that holds the gateway's link.
impl Handler<BusMessage> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, _: &mut Context<Self>) {
        if let Ok(answer) = serde_json::from_str::<RpcAnswer>(&msg.payload) {
            self.answered(answer.id, answer.outcome.into());
        }
    }
}

/// An answer recorded by this instance's link, for the caller on instance `reply_to`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RouteAnswer {
    pub reply_to: String,
    pub command_id: Uuid,
    pub outcome: Result<Value, String>,
}

impl Handler<RouteAnswer> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: RouteAnswer, _: &mut Context<Self>) {
        if msg.reply_to == self.instance_id {
            return self.answered(msg.command_id, msg.outcome);
        }
        let answer = RpcAnswer {
            id: msg.command_id,
            outcome: msg.outcome.into(),
        };
        self.bridge.do_send(Publish {
            channel: Channel::RpcAnswers(msg.reply_to).to_string(),
            payload: crate::protocol::text(&answer),
        });
    }
}

/// Why a gateway did not answer a read.
#[derive(Debug)]
pub enum RpcError {
    /// No instance holds the gateway's relay link.
    NotConnected,
    /// The link is up but the gateway did not answer in time.
    Timeout(Duration),
    /// The gateway answered with an error.
    Gateway(String),
    /// Recording the request failed.
    Internal(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::NotConnected => write!(f, "Gateway is not connected."),
            RpcError::Timeout(after) => {
                write!(f, "Gateway did not answer within {} s.", after.as_secs())
            }
            RpcError::Gateway(e) => write!(f, "Gateway error: {e}"),
            RpcError::Internal(e) => write!(f, "Gateway request failed: {e}"),
        }
    }
}

/// What a request to a gateway needs (`AppState::gateway_caller`).
#[derive(Clone, Copy)]
pub struct Caller<'a> {
    pub settings: &'a Settings,
    pub db: &'a PgPool,
    pub router: &'a Router,
    pub rpc: &'a Addr<RpcReplies>,
}

/// Sends a request to a connected gateway and waits for its answer (GATEWAY_RPC_TIMEOUT_SECONDS).
/// The request is recorded like every other; it is not queued for a gateway that is not
/// connected: the registry finds no link for it, and the request is abandoned.
pub async fn call(
    state: Caller<'_>,
    target: Target,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let instance = state.settings.instance_id.as_str();
    let conn = state
        .db
        .get()
        .await
        .map_err(|e| RpcError::Internal(e.to_string()))?;
    let command = gateway_commands::record(
        &*conn,
        NewCommand {
            target,
            method,
            params,
            reply_to: Some(instance),
        },
    )
    .await
    .map_err(|e| RpcError::Internal(e.to_string()))?;
    drop(conn);
    // Waited for before the link is woken, so an answer cannot come first.
    let (reply, answer) = oneshot::channel();
    let _ = state
        .rpc
        .send(Await {
            command_id: command.id,
            reply,
        })
        .await;
    let woken = state
        .router
        .send(Address::Gateway(target.gateway_id), RouteMessage::Flush)
        .await;
    let timeout = state.settings.gateway.rpc_timeout;
    let why = match woken {
        Delivery::Offline => RpcError::NotConnected,
        Delivery::Local | Delivery::Published => {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Ok(result))) => return Ok(result),
                Ok(Ok(Err(error))) => return Err(RpcError::Gateway(error)),
                Ok(Err(_)) | Err(_) => RpcError::Timeout(timeout),
            }
        }
    };
    state.rpc.do_send(Forget(command.id));
    if let Ok(conn) = state.db.get().await {
        let _ = gateway_commands::abandon(&*conn, command.id, &why.to_string(), instance).await;
    }
    Err(why)
}

/// Wakes the links of the gateways that requests were just committed for.
pub fn poke(router: &Router, gateway_ids: impl IntoIterator<Item = Uuid>) {
    let mut seen = std::collections::HashSet::new();
    for gateway_id in gateway_ids {
        if seen.insert(gateway_id) {
            router.tell(Address::Gateway(gateway_id), RouteMessage::Flush);
        }
    }
}
