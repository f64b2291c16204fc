//! The gateway relay link, `/ws/gateway/{id}/relay` (docs/gateway-protocol.md §4 and §7,
//! docs/relay-protocol.md "Gateway side"): what a gateway sends (`Request`) and what it
//! receives (`Outbound`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::codes::ErrorCode;
use super::h5::MessageFields;
use super::{content, fields, idempotency_key, loose, non_empty, Envelope, Invalid};

#[derive(Debug)]
pub enum Request {
    /// `{"type":"auth","payload":{"relay_token","capabilities"?,"gateway_token"?}}`; `None`
    /// when the token is missing or empty. `acks`: the gateway listed `chat.ack` among its
    /// capabilities; `tunnel`: `openclaw.tunnel` (a connector, `protocol::tunnel`), whose
    /// `gateway_token` is the local gateway's shared token, used for this link only.
    Auth {
        relay_token: Option<String>,
        acks: bool,
        tunnel: bool,
        gateway_token: Option<String>,
    },
    /// `tunnel.close` from a connector: its end of a tunnelled connection is gone.
    TunnelClose(u32),
    /// `{"type":"chat.ack","payload":{"message_ids":[...]}}` (or one `message_id`): the
    /// gateway took these H5 messages and runs each once.
    ChatAck(Result<Vec<Uuid>, Invalid>),
    /// `{"type":"heartbeat","id"}`: `id` is echoed (`null` when absent).
    Heartbeat {
        id: Value,
    },
    /// `chat.reply` (or its synonym `chat_reply`), or why it is refused.
    ChatReply(Result<ChatReply, Invalid>),
    /// `rpc.result`, or why it is refused.
    RpcResult(Result<RpcResult, Invalid>),
    /// No `type`.
    Untyped,
    Unknown(String),
}

/// An agent's answer in an H5 chat session.
#[derive(Debug)]
pub struct ChatReply {
    pub session_key: String,
    /// Any JSON but `null` and `""`.
    pub content: Value,
    /// The frame's id: the idempotency key of the answer.
    pub reply_id: Option<String>,
    /// `payload.extra`, when it is an object.
    pub extra: Option<Value>,
}

/// The gateway's answer to the request with id `command_id`.
#[derive(Debug)]
pub struct RpcResult {
    pub command_id: Uuid,
    pub outcome: Result<Value, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthPayload {
    #[serde(deserialize_with = "loose")]
    relay_token: Option<String>,
    capabilities: Value,
    #[serde(deserialize_with = "loose")]
    gateway_token: Option<String>,
}

/// What a gateway that acknowledges H5 messages lists among its `capabilities`.
pub const ACKS: &str = "chat.ack";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AckPayload {
    message_id: Value,
    message_ids: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplyPayload {
    #[serde(deserialize_with = "loose")]
    session_key: Option<String>,
    content: Value,
    extra: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResultPayload {
    #[serde(deserialize_with = "loose")]
    ok: Option<bool>,
    result: Value,
    error: Value,
}

/// Reads a text frame; `None` when it is not JSON (`INVALID_JSON`). JSON that is not an
/// object has no fields, so it reads as a frame without `type`.
pub fn parse(text: &str) -> Option<Request> {
    let envelope = Envelope::of(serde_json::from_str::<Value>(text).ok()?);
    Some(match envelope.kind() {
        "auth" => {
            let auth = fields::<AuthPayload>(envelope.payload);
            let listed = |capability: &str| {
                auth.capabilities
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == capability))
            };
            Request::Auth {
                acks: listed(ACKS),
                tunnel: listed(super::tunnel::CAPABILITY),
                relay_token: non_empty(auth.relay_token),
                gateway_token: non_empty(auth.gateway_token),
            }
        }
        "tunnel.close" => match super::tunnel::Control::read(text) {
            Some(super::tunnel::Control::Close { payload }) => Request::TunnelClose(payload.stream),
            _ => Request::Unknown("tunnel.close".into()),
        },
        "chat.ack" => Request::ChatAck(chat_ack(fields(envelope.payload))),
        "heartbeat" => Request::Heartbeat { id: envelope.id },
        "chat.reply" | "chat_reply" => {
            Request::ChatReply(chat_reply(&envelope.id, fields(envelope.payload)))
        }
        "rpc.result" => Request::RpcResult(rpc_result(&envelope.id, fields(envelope.payload))),
        "" => Request::Untyped,
        other => Request::Unknown(other.to_string()),
    })
}

fn chat_reply(id: &Value, payload: ReplyPayload) -> Result<ChatReply, Invalid> {
    let (Some(session_key), Some(content)) =
        (non_empty(payload.session_key), content(payload.content))
    else {
        return Err(Invalid {
            code: ErrorCode::MissingFields,
            message: "chat.reply needs payload.session_key and payload.content",
        });
    };
    Ok(ChatReply {
        session_key,
        content,
        reply_id: idempotency_key(id),
        extra: Some(payload.extra).filter(Value::is_object),
    })
}

fn chat_ack(payload: AckPayload) -> Result<Vec<Uuid>, Invalid> {
    let ids: Option<Vec<Uuid>> = match (payload.message_ids, payload.message_id) {
        (Value::Array(ids), _) => ids.iter().map(|id| id.as_str()?.parse().ok()).collect(),
        (Value::Null, Value::String(id)) => id.parse().ok().map(|id| vec![id]),
        _ => None,
    };
    ids.filter(|ids| !ids.is_empty()).ok_or(Invalid {
        code: ErrorCode::MissingFields,
        message: "chat.ack needs payload.message_ids (or payload.message_id): message ids",
    })
}

fn rpc_result(id: &Value, payload: ResultPayload) -> Result<RpcResult, Invalid> {
    let command_id = id.as_str().and_then(|id| id.parse::<Uuid>().ok());
    let (Some(command_id), Some(ok)) = (command_id, payload.ok) else {
        return Err(Invalid {
            code: ErrorCode::MissingFields,
            message: "rpc.result needs the request's id and payload.ok",
        });
    };
    let outcome = if ok {
        Ok(payload.result)
    } else {
        Err(match payload.error {
            Value::String(e) => e,
            Value::Null => "the gateway reported an error".to_string(),
            other => other.to_string(),
        })
    };
    Ok(RpcResult {
        command_id,
        outcome,
    })
}

/// What the server sends a gateway (besides `ErrorFrame`).
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Outbound {
    #[serde(rename = "auth_ok")]
    AuthOk { payload: AuthOk },
    /// Then the link closes with 4001.
    #[serde(rename = "auth_error")]
    AuthError { payload: AuthError },
    #[serde(rename = "heartbeat_ack")]
    HeartbeatAck { id: Value },
    /// A user's chat message for an agent; `id` is the user's frame id (the stored client
    /// id for a message that waited for the gateway).
    #[serde(rename = "chat.send")]
    ChatSend { id: Value, payload: ChatSend },
    /// A reply (`id`: the gateway's reply id) is stored as `message_id`: the gateway may
    /// forget it (it resends replies it has no ack for after a reconnect).
    #[serde(rename = "chat.reply.ack")]
    ChatReplyAck { id: Value, payload: ReplyAck },
    /// A recorded request; `attempt` counts its sends.
    #[serde(rename = "rpc.request")]
    RpcRequest {
        id: Uuid,
        attempt: i32,
        payload: RpcCall,
    },
}

#[derive(Debug, Serialize)]
pub struct ReplyAck {
    pub message_id: Uuid,
}

#[derive(Debug, Serialize)]
pub struct AuthOk {
    pub gateway_id: Uuid,
    pub config: LinkConfig,
}

#[derive(Debug, Serialize)]
pub struct LinkConfig {
    pub heartbeat_interval_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct AuthError {
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct ChatSend {
    #[serde(flatten)]
    pub message: MessageFields,
    pub h5_user_id: Uuid,
}

/// A `chat.send` frame read back: a gateway we dial is not a relay link, so its client turns
/// the frame the router hands it into the gateway's own call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatSendRead {
    pub message_id: Uuid,
    pub agent_id: Uuid,
    pub h5_user_id: Uuid,
    pub content: Value,
}

pub fn read_chat_send(text: &str) -> Option<ChatSendRead> {
    #[derive(Deserialize)]
    struct Frame {
        #[serde(rename = "type")]
        kind: String,
        payload: ChatSendRead,
    }
    serde_json::from_str::<Frame>(text)
        .ok()
        .filter(|frame| frame.kind == "chat.send")
        .map(|frame| frame.payload)
}

#[derive(Debug, Serialize)]
pub struct RpcCall {
    pub method: String,
    pub params: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_and_replies_are_read_as_before() {
        let id = Uuid::new_v4();
        let frame =
            json!({"type": "rpc.result", "id": id, "payload": {"ok": false, "error": {"x": 1}}});
        let Some(Request::RpcResult(Ok(result))) = parse(&frame.to_string()) else {
            panic!()
        };
        assert_eq!(
            (result.command_id, result.outcome),
            (id, Err(r#"{"x":1}"#.to_string()))
        );
        let frame = json!({"type": "rpc.result", "id": id, "payload": {"ok": "yes"}});
        assert!(matches!(
            parse(&frame.to_string()),
            Some(Request::RpcResult(Err(_)))
        ));
        let frame = json!({"type": "chat_reply", "id": 3, "payload": {"session_key": "k", "content": 1, "extra": [1]}});
        let Some(Request::ChatReply(Ok(reply))) = parse(&frame.to_string()) else {
            panic!()
        };
        assert_eq!((reply.reply_id.as_deref(), reply.extra), (Some("3"), None));
        let acked = json!({"type": "chat.ack", "payload": {"message_ids": [id]}});
        assert!(
            matches!(parse(&acked.to_string()), Some(Request::ChatAck(Ok(ids))) if ids == vec![id])
        );
        let bad = json!({"type": "chat.ack", "payload": {"message_ids": ["x"]}});
        assert!(matches!(
            parse(&bad.to_string()),
            Some(Request::ChatAck(Err(_)))
        ));
        let auth =
            json!({"type": "auth", "payload": {"relay_token": "t", "capabilities": ["chat.ack"]}});
        assert!(matches!(
            parse(&auth.to_string()),
            Some(Request::Auth { acks: true, .. })
        ));
        assert!(matches!(parse("[1]"), Some(Request::Untyped)));
        assert!(parse("{").is_none());
    }
}
