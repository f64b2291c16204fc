//! The board-sync socket, `/ws/board/{id}/sync` (docs/board-sync-protocol.md): what the admin
//! console sends (`Request`) and what it receives (`BoardState`, `Numbered` task events,
//! `Outbound`, and the two `error` shapes). Unlike the H5 and relay frames, these carry their
//! fields at the top level (the reference's `api/ws_board.py`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::codes::{BoardErrorCode, Close};
use super::{fields, loose};

#[derive(Debug)]
pub enum Request {
    /// `{"type":"heartbeat","id"}`: `id` is echoed (`null` when absent).
    Heartbeat {
        id: Value,
    },
    Move(TaskMove),
    Create(TaskCreate),
    /// Any other `type`, a missing one included (`""`).
    Unknown(String),
}

/// `{"type":"task.move","task_id","status"}`; the status is the domain's to read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskMove {
    /// As sent: a refusal echoes it.
    pub task_id: Value,
    #[serde(deserialize_with = "loose")]
    pub status: Option<String>,
}

impl TaskMove {
    pub fn task_uuid(&self) -> Option<Uuid> {
        self.task_id.as_str().and_then(|id| id.parse().ok())
    }
}

/// `{"type":"task.create","title","status"?,"assignee_id"?}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TaskCreate {
    #[serde(deserialize_with = "loose")]
    pub title: Option<String>,
    #[serde(deserialize_with = "loose")]
    pub status: Option<String>,
    #[serde(deserialize_with = "loose")]
    pub assignee_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Head {
    #[serde(rename = "type", deserialize_with = "loose")]
    kind: Option<String>,
    id: Value,
}

/// Reads a text frame; `None` when it is not a JSON object (`invalid_json`).
pub fn parse(text: &str) -> Option<Request> {
    let frame = serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)?;
    let head = Head::deserialize(&frame).unwrap_or_default();
    Some(match head.kind.as_deref().unwrap_or_default() {
        "heartbeat" => Request::Heartbeat { id: head.id },
        "task.move" => Request::Move(fields(frame)),
        "task.create" => Request::Create(fields(frame)),
        other => Request::Unknown(other.to_string()),
    })
}

/// The first frame, and the answer to a gap: every task of the board and the sync number
/// it reflects.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "board.state")]
pub struct BoardState<T> {
    pub timestamp: DateTime<Utc>,
    pub seq: i64,
    /// Newest first.
    pub tasks: Vec<T>,
}

/// A committed task change with the board's sync number, as stored in
/// `board_sync_events` and sent to every socket of the board.
#[derive(Debug, Serialize)]
pub struct Numbered<'a> {
    #[serde(flatten)]
    pub event: TaskEvent<'a>,
    pub timestamp: DateTime<Utc>,
    pub seq: i64,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum TaskEvent<'a> {
    /// `task` is a full `TaskRead`.
    #[serde(rename = "task.created")]
    Created { task: &'a Value },
    #[serde(rename = "task.updated")]
    Updated {
        task_id: Uuid,
        changes: &'a Value,
        updated_by: &'a Value,
    },
    #[serde(rename = "task.deleted")]
    Deleted { task_id: Uuid },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum Outbound<'a> {
    #[serde(rename = "heartbeat.ack")]
    HeartbeatAck { id: Value },
    /// An `AgentSuggestionRead` (also the `data` of the suggestions SSE stream); not
    /// numbered, it is no task change.
    #[serde(rename = "suggestion.new")]
    SuggestionNew { suggestion: &'a Value },
}

/// `{"type":"error","code":<close code>,"message"}`, sent right before that close.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "error")]
pub struct Closing<'a> {
    code: u16,
    message: &'a str,
}

impl<'a> Closing<'a> {
    pub fn new(code: Close, message: &'a str) -> Closing<'a> {
        Closing {
            code: code.code(),
            message,
        }
    }
}

/// `{"type":"error","code","message","status"?,"task_id"?}`: a refused frame, to its sender
/// only; the socket stays. `message` is a text, or the REST `detail` of a refusal.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "error")]
pub struct RequestError {
    pub code: BoardErrorCode,
    pub message: Value,
    /// The REST status of a `refused` write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The task the refused frame was about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Value>,
}

impl RequestError {
    pub fn new(code: BoardErrorCode, message: impl Into<Value>) -> RequestError {
        RequestError {
            code,
            message: message.into(),
            status: None,
            task_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_keep_their_shape() {
        let task_id = Uuid::new_v4();
        let timestamp = Utc::now();
        let event = Numbered {
            event: TaskEvent::Deleted { task_id },
            timestamp,
            seq: 4,
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"type": "task.deleted", "task_id": task_id, "timestamp": timestamp, "seq": 4})
        );
        assert_eq!(
            serde_json::to_value(Closing::new(Close::BoardNotFound, "board not found")).unwrap(),
            json!({"type": "error", "code": 4004, "message": "board not found"})
        );
        let mut refused = RequestError::new(BoardErrorCode::InvalidFrame, "no");
        refused.task_id = Some(Value::Null);
        assert_eq!(
            serde_json::to_value(&refused).unwrap(),
            json!({"type": "error", "code": "invalid_frame", "message": "no", "task_id": null})
        );
    }

    #[test]
    fn requests_are_read_as_before() {
        let Some(Request::Move(task_move)) = parse(r#"{"type":"task.move","task_id":3}"#) else {
            panic!()
        };
        assert_eq!((task_move.task_uuid(), task_move.task_id), (None, json!(3)));
        let Some(Request::Create(create)) = parse(r#"{"type":"task.create","title":5}"#) else {
            panic!()
        };
        assert!(create.title.is_none());
        assert!(matches!(parse(r#"{"id":1}"#), Some(Request::Unknown(k)) if k.is_empty()));
        assert!(parse("[]").is_none());
    }
}
