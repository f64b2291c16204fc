//! Requests to gateways over their relay links, from any instance.
//!
//! A request is first recorded (`domain::outbox::commands`), then the gateway's link is
//! poked wherever it is (`PokeGateway`); the link claims what is due and sends it. The
//! gateway's `rpc.result` is recorded by the link, which hands the answer to the instance
//! whose caller waits for it: its own `RpcReplies`, or another instance's through the
//! bridge channel `gateway:rpc:answers:{instance_id}`.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::bridge::{Bridge, BusMessage, Publish, Subscribe};
use super::presence::gateway_key;
use super::registry::PokeGateway;
use crate::domain::outbox::commands::{self as gateway_commands, NewCommand, Target};
use crate::state::AppState;

pub fn answers_channel(instance_id: &str) -> String {
    format!("gateway:rpc:answers:{instance_id}")
}

/// The answer of a gateway to one request.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Answer {
    pub command_id: Uuid,
    pub outcome: Result<Value, String>,
}

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
            channel: answers_channel(&self.instance_id),
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

impl Handler<Answer> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: Answer, _: &mut Context<Self>) {
        if let Some(reply) = self.waiting.remove(&msg.command_id) {
            let _ = reply.send(msg.outcome);
        }
    }
}

/// Answers relayed by the instance that holds the gateway's link.
impl Handler<BusMessage> for RpcReplies {
    type Result = ();

    fn handle(&mut self, msg: BusMessage, ctx: &mut Context<Self>) {
        let Ok(answer) = serde_json::from_str::<Value>(&msg.payload) else {
            return;
        };
        let Some(command_id) = answer["id"].as_str().and_then(|id| id.parse().ok()) else {
            return;
        };
        let outcome = match answer["error"].as_str() {
            Some(error) => Err(error.to_string()),
            None => Ok(answer["result"].clone()),
        };
        self.handle(
            Answer {
                command_id,
                outcome,
            },
            ctx,
        );
    }
}

/// Hands an answer to the instance whose caller waits for it.
pub fn route_answer(
    state: &AppState,
    reply_to: &str,
    command_id: Uuid,
    outcome: Result<Value, String>,
) {
    if reply_to == state.settings.instance_id {
        state.rpc.do_send(Answer {
            command_id,
            outcome,
        });
        return;
    }
    let payload = match outcome {
        Ok(result) => json!({"id": command_id, "result": result}),
        Err(error) => json!({"id": command_id, "error": error}),
    };
    state.bridge.do_send(Publish {
        channel: answers_channel(reply_to),
        payload: payload.to_string(),
    });
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

/// Sends a request to a connected gateway and waits for its answer (GATEWAY_RPC_TIMEOUT_SECONDS).
/// The request is recorded like every other; it is not queued for a gateway that is not
/// connected.
pub async fn call(
    state: &AppState,
    target: Target,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let instance = state.settings.instance_id.as_str();
    let connected = state
        .presence
        .get(&gateway_key(target.gateway_id))
        .await
        .is_some();
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
    if !connected {
        let why = RpcError::NotConnected;
        let _ = gateway_commands::abandon(&*conn, command.id, &why.to_string(), instance).await;
        return Err(why);
    }
    drop(conn);
    let (reply, answer) = oneshot::channel();
    let _ = state
        .rpc
        .send(Await {
            command_id: command.id,
            reply,
        })
        .await;
    state.registry.do_send(PokeGateway(target.gateway_id));
    let timeout = state.settings.gateway.rpc_timeout;
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(Ok(result))) => Ok(result),
        Ok(Ok(Err(error))) => Err(RpcError::Gateway(error)),
        Ok(Err(_)) | Err(_) => {
            state.rpc.do_send(Forget(command.id));
            let why = RpcError::Timeout(timeout);
            if let Ok(conn) = state.db.get().await {
                let _ =
                    gateway_commands::abandon(&*conn, command.id, &why.to_string(), instance).await;
            }
            Err(why)
        }
    }
}

/// Wakes the links of the gateways that requests were just committed for.
pub fn poke(state: &AppState, gateway_ids: impl IntoIterator<Item = Uuid>) {
    let mut seen = std::collections::HashSet::new();
    for gateway_id in gateway_ids {
        if seen.insert(gateway_id) {
            state.registry.do_send(PokeGateway(gateway_id));
        }
    }
}
