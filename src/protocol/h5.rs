//! The H5 chat socket, `/ws/h5/chat` (docs/relay-protocol.md, "H5 side"): what the H5 app
//! sends (`Inbound`) and what it receives (`Outbound`). The shapes are the reference's, which
//! the shipped app (`h5-app/src/lib/ws-client.ts`) reads unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::codes::ErrorCode;
use super::{content, fields, idempotency_key, loose, non_empty, Envelope, Invalid};

/// A client frame: its `id` (echoed in the answer, `null` when absent) and what it asks.
#[derive(Debug)]
pub struct Inbound {
    pub id: Value,
    pub request: Request,
}

#[derive(Debug)]
pub enum Request {
    /// `{"type":"auth","payload":{"token","last_message_id"?,"last_seq"?}}`; `token` is
    /// `None` when it is missing or empty.
    Auth {
        token: Option<String>,
        from: Option<ResumeFrom>,
    },
    Heartbeat,
    /// `{"type":"chat","id","payload":{"agent_id","content","session_id"?}}`, or why it is
    /// refused.
    Chat(Result<Chat, Invalid>),
    /// `{"type":"resume","payload":{"last_seq"|"last_message_id"}}`.
    Resume {
        from: Option<ResumeFrom>,
    },
    /// No `type`.
    Untyped,
    Unknown(String),
}

/// A chat message as the user sent it (`session_id` is ignored: the session is the user's
/// with that agent).
#[derive(Debug)]
pub struct Chat {
    pub agent_id: Uuid,
    /// Any JSON but `null` and `""`, stored as sent.
    pub content: Value,
    /// The frame's id as the message's idempotency key.
    pub client_id: Option<String>,
}

/// Where a client resumes: after the last `seq` it saw (every stored message's frame carries
/// its `seq`), or after a message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    Seq(i64),
    Message(Uuid),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuthPayload {
    #[serde(deserialize_with = "loose")]
    token: Option<String>,
    #[serde(flatten)]
    from: ResumePayload,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResumePayload {
    #[serde(deserialize_with = "loose")]
    last_message_id: Option<Uuid>,
    #[serde(deserialize_with = "loose")]
    last_seq: Option<i64>,
}

impl ResumePayload {
    fn from(self) -> Option<ResumeFrom> {
        match (self.last_seq, self.last_message_id) {
            (Some(seq), _) => Some(ResumeFrom::Seq(seq)),
            (None, Some(id)) => Some(ResumeFrom::Message(id)),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatPayload {
    agent_id: Value,
    content: Value,
}

/// Reads a text frame; `None` when it is not a JSON object (`INVALID_JSON`).
pub fn parse(text: &str) -> Option<Inbound> {
    let frame = serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)?;
    let envelope = Envelope::of(frame);
    let request = match envelope.kind() {
        "auth" => {
            let auth: AuthPayload = fields(envelope.payload);
            Request::Auth {
                token: non_empty(auth.token),
                from: auth.from.from(),
            }
        }
        "heartbeat" => Request::Heartbeat,
        "chat" => Request::Chat(chat(&envelope.id, fields(envelope.payload))),
        "resume" => Request::Resume {
            from: fields::<ResumePayload>(envelope.payload).from(),
        },
        "" => Request::Untyped,
        other => Request::Unknown(other.to_string()),
    };
    Some(Inbound {
        id: envelope.id,
        request,
    })
}

fn chat(id: &Value, payload: ChatPayload) -> Result<Chat, Invalid> {
    const MISSING: Invalid = Invalid {
        code: ErrorCode::MissingFields,
        message: "missing agent_id or content",
    };
    const INVALID_AGENT: Invalid = Invalid {
        code: ErrorCode::InvalidAgentId,
        message: "invalid agent_id",
    };
    let content = content(payload.content).ok_or(MISSING)?;
    let agent_id = match payload.agent_id {
        Value::String(agent) => agent.parse().map_err(|_| INVALID_AGENT)?,
        Value::Null => return Err(MISSING),
        _ => return Err(INVALID_AGENT),
    };
    Ok(Chat {
        agent_id,
        content,
        client_id: idempotency_key(id),
    })
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// What the server sends an H5 client (besides `ErrorFrame`).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    AuthOk {
        payload: AuthOk,
    },
    /// Then the socket closes with 4001.
    AuthError {
        payload: AuthError,
    },
    HeartbeatAck {
        id: Value,
    },
    /// The message is stored (`status: "stored"`, and handed on), or its gateway took it
    /// (a second ack with the same id, `status: "delivered"`).
    ChatAck {
        id: Value,
        payload: ChatAck,
    },
    ResumeDone {
        payload: ResumeDone,
    },
    /// An agent's answer; `id` is the stored message's.
    ChatReply {
        id: Uuid,
        payload: ChatReply,
    },
    /// A message the user sent (from any device), in a resume.
    ChatMessage {
        id: Uuid,
        payload: UserMessage,
    },
    /// An agent's gateway link went down (not replaced) or came up.
    System {
        payload: SystemEvent,
    },
}

#[derive(Debug, Serialize)]
pub struct AuthOk {
    pub h5_user_id: Uuid,
    pub organization_id: Uuid,
}

#[derive(Debug, Serialize)]
pub struct AuthError {
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct ChatAck {
    pub message_id: Uuid,
    pub session_id: Uuid,
    pub session_key: String,
    pub duplicate: bool,
    pub status: AckStatus,
}

/// What an ack says is true of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    /// Written to the database; the gateway will get it (at least once).
    Stored,
    /// The agent's gateway took it.
    Delivered,
}

#[derive(Debug, Serialize)]
pub struct ResumeDone {
    pub count: usize,
    /// The `seq` of the last message sent (the one to resume after next time).
    pub last_seq: Option<i64>,
}

/// What every frame of a stored chat message says about it (`chat_reply`, `chat_message`,
/// and the gateway's `chat.send`).
#[derive(Debug, Serialize)]
pub struct MessageFields {
    pub session_key: String,
    pub session_id: Uuid,
    pub agent_id: Uuid,
    pub content: Value,
    pub role: Role,
    pub message_id: Uuid,
    /// The message's number among the user's messages (`user_seq`): consecutive, so a client
    /// sees a gap, and resumes after the last one it saw (`last_seq`).
    pub seq: i64,
}

#[derive(Debug, Serialize)]
pub struct ChatReply {
    #[serde(flatten)]
    pub message: MessageFields,
    pub created_at: DateTime<Utc>,
    /// The reply's `extra` fields, passed on to the user.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reply's `extra` fields without the ones the client relies on (`session_key`,
/// `content`, the ids…): a gateway cannot override those.
#[derive(Debug, Default, Serialize)]
pub struct Extra(Map<String, Value>);

impl Extra {
    /// The fields of `extra`, if it is an object.
    pub fn new(extra: Option<&Value>) -> Extra {
        const RESERVED: [&str; 8] = [
            "session_key",
            "session_id",
            "agent_id",
            "content",
            "role",
            "message_id",
            "created_at",
            "seq",
        ];
        let mut fields = match extra {
            Some(Value::Object(fields)) => fields.clone(),
            _ => Map::new(),
        };
        fields.retain(|key, _| !RESERVED.contains(&key.as_str()));
        Extra(fields)
    }
}

#[derive(Debug, Serialize)]
pub struct UserMessage {
    #[serde(flatten)]
    pub message: MessageFields,
    /// The client's id of the message (`null` when it sent none).
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct SystemEvent {
    pub event: AgentPresence,
    pub agent_id: Uuid,
    pub gateway_id: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentPresence {
    AgentOnline,
    AgentOffline,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat_of(payload: Value) -> Result<Chat, Invalid> {
        let text = json!({"type": "chat", "id": 7, "payload": payload}).to_string();
        match parse(&text).unwrap().request {
            Request::Chat(chat) => chat,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chat_frames_are_checked_as_before() {
        let agent = Uuid::new_v4();
        let chat = chat_of(json!({"agent_id": agent, "content": {"text": "hi"}})).unwrap();
        assert_eq!(
            (chat.agent_id, chat.client_id.as_deref()),
            (agent, Some("7"))
        );
        let code = |p| chat_of(p).unwrap_err().code;
        assert_eq!(code(json!({"agent_id": agent})), ErrorCode::MissingFields);
        assert_eq!(
            code(json!({"agent_id": agent, "content": ""})),
            ErrorCode::MissingFields
        );
        assert_eq!(code(json!({"content": "x"})), ErrorCode::MissingFields);
        assert_eq!(
            code(json!({"agent_id": null, "content": "x"})),
            ErrorCode::MissingFields
        );
        assert_eq!(
            code(json!({"agent_id": "nope", "content": "x"})),
            ErrorCode::InvalidAgentId
        );
        assert_eq!(
            code(json!({"agent_id": 5, "content": "x"})),
            ErrorCode::InvalidAgentId
        );
        assert_eq!(code(json!([agent, "x"])), ErrorCode::MissingFields);
    }

    #[test]
    fn other_frames() {
        assert!(parse("[]").is_none());
        assert!(parse("nope").is_none());
        let auth = parse(r#"{"type":"auth","payload":{"token":"","last_message_id":"x"}}"#);
        assert!(matches!(
            auth.unwrap().request,
            Request::Auth {
                token: None,
                from: None
            }
        ));
        let auth = parse(r#"{"type":"auth","payload":{"token":"t","last_seq":7}}"#);
        assert!(matches!(
            auth.unwrap().request,
            Request::Auth {
                from: Some(ResumeFrom::Seq(7)),
                ..
            }
        ));
        let frame = parse(r#"{"type":7,"id":"a"}"#).unwrap();
        assert!(matches!(frame.request, Request::Untyped));
        assert_eq!(frame.id, json!("a"));
    }

    #[test]
    fn replies_keep_their_fields_over_extra() {
        let (id, session_id, agent_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let created_at = Utc::now();
        let frame = Outbound::ChatReply {
            id,
            payload: ChatReply {
                message: MessageFields {
                    session_key: "h5:a:b".into(),
                    session_id,
                    agent_id,
                    content: json!("hi"),
                    role: Role::Assistant,
                    message_id: id,
                    seq: 3,
                },
                created_at,
                extra: Extra::new(Some(&json!({"content": "evil", "seq": 99, "tokens": 3}))),
            },
        };
        assert_eq!(
            serde_json::from_str::<Value>(&super::super::text(&frame)).unwrap(),
            json!({"type": "chat_reply", "id": id, "payload": {
                "session_key": "h5:a:b", "session_id": session_id, "agent_id": agent_id,
                "content": "hi", "role": "assistant", "message_id": id, "created_at": created_at,
                "seq": 3, "tokens": 3,
            }})
        );
    }
}
