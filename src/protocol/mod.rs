//! The wire, typed: the frames of every socket (`h5`, `relay`, `board`), every Redis bus
//! channel and presence key (`channels`), what travels on the bus between instances
//! (`bus`), and the close and error codes (`codes`).
//!
//! Why one module: a frame's fields used to be spelled by hand in the actor that parsed
//! it and again in every `json!` that built it, so a field renamed in one place silently
//! broke a client. Here each frame is one type, and the actors and the domain build and
//! read those types. This module depends on nothing else in the crate (only serde, uuid,
//! chrono), so any layer may use it.
//!
//! Inbound frames are read leniently, exactly as the sockets always read them: a field of
//! the wrong JSON type counts as absent (it is then answered as missing), and unknown
//! fields are ignored.

pub mod board;
pub mod bus;
pub mod channels;
pub mod codes;
pub mod h5;
pub mod nul;
pub mod openclaw;
pub mod relay;
pub mod tunnel;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use codes::ErrorCode;

/// The text of a frame. Our frames hold only string-keyed maps, so serializing cannot fail;
/// should it ever, the empty string is sent rather than a panic in a socket actor.
pub fn text(frame: &impl Serialize) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        tracing::error!(error = %e, "a frame could not be serialized");
        String::new()
    })
}

/// `{"type":"error","id"?,"payload":{"code","reason","message"}}`: a refused frame on the
/// H5 chat socket and the relay link; the socket stays open. `reason` repeats `message`
/// for the shipped H5 app, which reads `reason`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "error")]
pub struct ErrorFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    payload: ErrorPayload,
}

#[derive(Debug, Serialize)]
struct ErrorPayload {
    code: ErrorCode,
    reason: String,
    message: String,
    /// The stored message the error is about (`GATEWAY_OFFLINE`: it waits for the gateway;
    /// `AGENT_ERROR`: the agent's run for it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<uuid::Uuid>,
}

impl ErrorFrame {
    /// The error answering the frame with id `id` (`null` or no id: no `id` field).
    pub fn new(id: Option<&Value>, code: ErrorCode, message: &str) -> ErrorFrame {
        ErrorFrame {
            id: id.filter(|id| !id.is_null()).cloned(),
            payload: ErrorPayload {
                code,
                reason: message.to_string(),
                message: message.to_string(),
                message_id: None,
            },
        }
    }

    /// An error about stored message `message_id` (a run of the agent that failed).
    pub fn about(code: ErrorCode, message: &str, message_id: uuid::Uuid) -> ErrorFrame {
        let mut frame = ErrorFrame::new(None, code, message);
        frame.payload.message_id = Some(message_id);
        frame
    }

    /// `GATEWAY_OFFLINE` for chat frame `id`: the message is stored as `message_id`. This one
    /// error always carries `id`, `null` included, as it always has.
    pub fn gateway_offline(id: Value, message_id: uuid::Uuid) -> ErrorFrame {
        let message = "the agent's gateway is offline; the message is stored and will be sent when it reconnects";
        let mut frame = ErrorFrame::new(None, ErrorCode::GatewayOffline, message);
        frame.id = Some(id);
        frame.payload.message_id = Some(message_id);
        frame
    }
}

/// A frame refused for its fields: answered with an `error` frame, the socket stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    pub code: ErrorCode,
    pub message: &'static str,
}

/// The text of an `UNKNOWN_TYPE` (or board `unknown_type`) refusal.
pub fn unknown_type(kind: &str) -> String {
    format!("unknown frame type {kind:?}")
}

/// `{"type", "id", "payload"}`, the shape of every H5 and relay frame; what is missing or of
/// another JSON type reads as absent (`type` as "", `id` and `payload` as `null`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    #[serde(rename = "type", deserialize_with = "loose")]
    kind: Option<String>,
    id: Value,
    payload: Value,
}

impl Envelope {
    /// A JSON value that is not an object has none of the fields.
    fn of(frame: Value) -> Envelope {
        fields(frame)
    }

    fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or_default()
    }
}

/// The fields of `object` as `T` (whose fields are all optional); a value that is not an
/// object has none of them.
fn fields<T: DeserializeOwned + Default>(object: Value) -> T {
    if !object.is_object() {
        return T::default();
    }
    serde_json::from_value(object).unwrap_or_default()
}

/// A field read only when it has the expected type; anything else counts as absent.
fn loose<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(serde_json::from_value(Value::deserialize(deserializer)?).ok())
}

/// A non-empty string field (an empty one counts as absent).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// A content field: anything but absent, `null` or `""`.
fn content(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(other),
    }
}

/// A client-chosen id as the idempotency key it is stored under: a non-empty string, or a
/// number's digits.
fn idempotency_key(id: &Value) -> Option<String> {
    match id {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn error_frames_keep_their_shape() {
        let frame = ErrorFrame::new(Some(&json!("m1")), ErrorCode::MissingFields, "no");
        assert_eq!(
            serde_json::to_value(frame).unwrap(),
            json!({"type": "error", "id": "m1", "payload": {"code": "MISSING_FIELDS", "reason": "no", "message": "no"}})
        );
        let frame = ErrorFrame::new(Some(&Value::Null), ErrorCode::Internal, "x");
        assert!(serde_json::to_value(frame).unwrap().get("id").is_none());
        let id = uuid::Uuid::new_v4();
        let frame = serde_json::to_value(ErrorFrame::gateway_offline(Value::Null, id)).unwrap();
        assert_eq!(frame["id"], Value::Null);
        assert!(frame.as_object().unwrap().contains_key("id"));
        assert_eq!(frame["payload"]["message_id"], json!(id));
        assert_eq!(frame["payload"]["code"], "GATEWAY_OFFLINE");
    }

    #[test]
    fn envelopes_read_wrong_types_as_absent() {
        let e = Envelope::of(json!({"type": 5, "payload": {"a": 1}}));
        assert_eq!(e.kind(), "");
        assert_eq!(e.id, Value::Null);
        let e = Envelope::of(json!(["auth"]));
        assert_eq!((e.kind(), &e.payload), ("", &Value::Null));
    }
}
