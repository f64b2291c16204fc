//! What instances tell each other on the bus (inside the bridge's instance envelope). Only
//! instances of the same build read these, so the encoding is ours to choose: JSON, one
//! typed message per publication.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A message for the sockets behind a user's or a gateway's route channel
/// (`Channel::UserRoute`, `Channel::GatewayRoute`); the registry delivers the same values
/// to its local sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteMessage {
    /// A text frame for the socket(s), as it goes on the wire.
    Frame { text: String },
    /// The user's account was suspended or deleted: its sockets answer `auth_error` with
    /// this reason and close.
    Close { reason: String },
    /// Link `link_id` of the gateway came up on another instance: only one link per
    /// gateway is kept, so the older one closes.
    Replaced { link_id: Uuid },
    /// Requests wait for the gateway in `gateway_commands`: its link claims and sends them.
    Flush,
}

impl RouteMessage {
    pub fn encode(&self) -> String {
        super::text(self)
    }

    /// `None` for a publication that is not a `RouteMessage` (it is dropped).
    pub fn decode(payload: &str) -> Option<RouteMessage> {
        serde_json::from_str(payload).ok()
    }
}

/// A board's sync events as one write committed them, on `Channel::BoardSync`: its rooms on
/// every instance hand them on without reading PostgreSQL, which they read only for a gap
/// (events of writers on other instances may arrive out of order, or a publication may be
/// lost). `[[seq, "frame"], ...]`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncNews(pub Vec<(i64, String)>);

impl SyncNews {
    pub fn encode(&self) -> String {
        super::text(self)
    }

    /// `None` for a plain poke (an empty payload) or anything else that is not news.
    pub fn decode(payload: &str) -> Option<SyncNews> {
        serde_json::from_str(payload).ok()
    }
}

/// A gateway's answer to a request, on `Channel::RpcAnswers` of the instance whose caller
/// waits for it: `{"id", "result"}` or `{"id", "error"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcAnswer {
    pub id: Uuid,
    #[serde(flatten)]
    pub outcome: RpcOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcOutcome {
    Result(Value),
    Error(String),
}

impl From<Result<Value, String>> for RpcOutcome {
    fn from(outcome: Result<Value, String>) -> RpcOutcome {
        match outcome {
            Ok(result) => RpcOutcome::Result(result),
            Err(error) => RpcOutcome::Error(error),
        }
    }
}

impl From<RpcOutcome> for Result<Value, String> {
    fn from(outcome: RpcOutcome) -> Result<Value, String> {
        match outcome {
            RpcOutcome::Result(result) => Ok(result),
            RpcOutcome::Error(error) => Err(error),
        }
    }
}

/// The value of a gateway's presence key (`channels::gateway_presence`): which instance
/// holds its link; shown as is by `GET /gateways/{id}/connections`.
#[derive(Debug, Serialize)]
pub struct GatewayPresence<'a> {
    pub instance_id: &'a str,
    pub link_id: Uuid,
    pub connected_at: DateTime<Utc>,
    pub peer: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_round_trip() {
        for message in [
            RouteMessage::Frame {
                text: "{\"type\":\"x\"}".into(),
            },
            RouteMessage::Close {
                reason: "suspended".into(),
            },
            RouteMessage::Replaced {
                link_id: Uuid::new_v4(),
            },
            RouteMessage::Flush,
        ] {
            assert_eq!(RouteMessage::decode(&message.encode()), Some(message));
        }
        assert_eq!(RouteMessage::decode("hello"), None);
    }

    #[test]
    fn sync_news_round_trips() {
        let news = SyncNews(vec![
            (7, r#"{"type":"task.deleted","seq":7}"#.into()),
            (8, "{\"title\":\"a \\\"quoted\\\" line\\n\"}".into()),
        ]);
        assert_eq!(SyncNews::decode(&news.encode()), Some(news));
        assert_eq!(SyncNews::decode(""), None);
    }

    #[test]
    fn answers_keep_their_shape() {
        let id = Uuid::new_v4();
        let answer = RpcAnswer {
            id,
            outcome: Ok(json!({"sessions": []})).into(),
        };
        let wire = serde_json::to_value(&answer).unwrap();
        assert_eq!(wire, json!({"id": id, "result": {"sessions": []}}));
        assert_eq!(serde_json::from_value::<RpcAnswer>(wire).unwrap(), answer);
        let failed = RpcAnswer {
            id,
            outcome: Err("boom".to_string()).into(),
        };
        assert_eq!(
            serde_json::to_value(failed).unwrap(),
            json!({"id": id, "error": "boom"})
        );
    }
}
