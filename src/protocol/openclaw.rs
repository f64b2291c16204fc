//! The OpenClaw gateway protocol, as we speak it to a real gateway (protocol 3 and 4; what a
//! gateway does frame by frame is in `../shared/contract/openclaw-gateway.md`, what we send
//! in docs/gateway-protocol.md §8).
//!
//! Three frame kinds: our `req`, the gateway's `res` (correlated by id) and `event`. The
//! first frame on a connection is the gateway's `connect.challenge`; our `connect` request
//! answers it with the shared token and a device block signed over the challenge.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The protocols we speak: 2026.4.x answers 3, 2026.9.x answers 4.
pub const MIN_PROTOCOL: u32 = 3;
pub const MAX_PROTOCOL: u32 = 4;
pub const ROLE: &str = "operator";
/// What the control plane needs: read and write sessions, administer agents and config,
/// and approve pairings of other devices.
pub const SCOPES: [&str; 5] = [
    "operator.read",
    "operator.write",
    "operator.admin",
    "operator.approvals",
    "operator.pairing",
];
pub const CLIENT_ID: &str = "gateway-client";
pub const CLIENT_MODE: &str = "backend";
pub const PLATFORM: &str = "linux";

/// `{"type":"req","id","method","params"}`.
#[derive(Debug, Serialize)]
pub struct Req<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    pub id: &'a str,
    pub method: &'a str,
    pub params: &'a Value,
}

impl<'a> Req<'a> {
    pub fn new(id: &'a str, method: &'a str, params: &'a Value) -> Req<'a> {
        Req {
            kind: "req",
            id,
            method,
            params,
        }
    }
}

/// A gateway error: `{"code","message","details"}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct GatewayError {
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl GatewayError {
    /// The code that says what to do: `details.code` when the gateway nests a more precise
    /// one (`NOT_PAIRED` → `PAIRING_REQUIRED`), else `code`.
    pub fn reason(&self) -> &str {
        self.details
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or(&self.code)
    }

    pub fn describe(&self) -> String {
        match (self.message.is_empty(), self.code.is_empty()) {
            (false, false) => format!("{}: {}", self.reason(), self.message),
            (false, true) => self.message.clone(),
            (true, false) => self.reason().to_string(),
            (true, true) => "the gateway refused the request".to_string(),
        }
    }
}

/// What the gateway sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Res {
        id: String,
        outcome: Result<Value, GatewayError>,
    },
    Event {
        event: String,
        payload: Value,
    },
    /// Anything else (it is ignored).
    Other,
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    error: Option<GatewayError>,
    #[serde(default)]
    event: Option<String>,
}

/// Reads one frame; anything that is not a `res` with an id or an `event` is `Other`.
pub fn parse(text: &str) -> Inbound {
    let Ok(raw) = serde_json::from_str::<RawFrame>(text) else {
        return Inbound::Other;
    };
    match raw.kind.as_str() {
        "res" => {
            let id = match raw.id {
                Some(Value::String(id)) => id,
                Some(Value::Number(n)) => n.to_string(),
                _ => return Inbound::Other,
            };
            let outcome = if raw.ok == Some(true) {
                Ok(raw.payload)
            } else {
                Err(raw.error.unwrap_or_default())
            };
            Inbound::Res { id, outcome }
        }
        "event" => match raw.event {
            Some(event) => Inbound::Event {
                event,
                payload: raw.payload,
            },
            None => Inbound::Other,
        },
        _ => Inbound::Other,
    }
}

/// The challenge the gateway opens with (`connect.challenge`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Challenge {
    pub nonce: String,
    pub ts: i64,
}

pub const CHALLENGE: &str = "connect.challenge";

/// The device half of `connect`: who signs, and what.
pub struct Device<'a> {
    /// Hex SHA-256 of the raw public key.
    pub id: &'a str,
    /// Unpadded base64url of the raw 32-byte public key.
    pub public_key: &'a str,
}

/// The credential `connect` carries: the gateway's shared token, or the device token a
/// pairing returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential<'a> {
    Token(&'a str),
    DeviceToken(&'a str),
}

impl Credential<'_> {
    fn secret(&self) -> &str {
        match self {
            Credential::Token(t) | Credential::DeviceToken(t) => t,
        }
    }
}

/// The exact string a device signs for `connect` (v3 of the gateway's scheme): every field
/// of the request that the gateway must trust, and the challenge, joined by `|`.
pub fn signing_string(
    device_id: &str,
    credential: &Credential<'_>,
    challenge: &Challenge,
) -> String {
    format!(
        "v3|{device_id}|{CLIENT_ID}|{CLIENT_MODE}|{ROLE}|{scopes}|{ts}|{secret}|{nonce}|{platform}|",
        scopes = SCOPES.join(","),
        ts = challenge.ts,
        secret = credential.secret(),
        nonce = challenge.nonce,
        platform = PLATFORM.to_lowercase(),
    )
}

/// The `connect` params; `signature` is the device's signature over `signing_string`.
pub fn connect_params(
    version: &str,
    credential: &Credential<'_>,
    device: &Device<'_>,
    challenge: &Challenge,
    signature: &str,
) -> Value {
    let auth = match credential {
        Credential::Token(token) => json!({"token": token}),
        Credential::DeviceToken(token) => json!({"deviceToken": token}),
    };
    json!({
        "minProtocol": MIN_PROTOCOL,
        "maxProtocol": MAX_PROTOCOL,
        "role": ROLE,
        "scopes": SCOPES,
        "client": {"id": CLIENT_ID, "version": version, "platform": PLATFORM, "mode": CLIENT_MODE},
        "auth": auth,
        "device": {
            "id": device.id,
            "publicKey": device.public_key,
            "signature": signature,
            "signedAt": challenge.ts,
            "nonce": challenge.nonce,
        },
    })
}

/// What `hello-ok` tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol: u32,
    pub version: Option<String>,
    pub scopes: Vec<String>,
    pub device_token: Option<String>,
    pub tick_interval_ms: Option<u64>,
}

impl Hello {
    pub fn read(payload: &Value) -> Hello {
        let auth = &payload["auth"];
        Hello {
            protocol: payload["protocol"].as_u64().unwrap_or(0) as u32,
            version: payload["server"]["version"].as_str().map(str::to_string),
            scopes: auth["scopes"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            device_token: auth["deviceToken"].as_str().map(str::to_string),
            tick_interval_ms: payload["policy"]["tickIntervalMs"].as_u64(),
        }
    }

    /// The scopes we asked for and were not granted (a gateway may accept a connection
    /// with none).
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        SCOPES
            .into_iter()
            .filter(|s| !self.scopes.iter().any(|g| g == s))
            .collect()
    }
}

/// Why a `connect` was refused, in the terms an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The device must be approved on the gateway (`requestId` in the details).
    PairingRequired,
    /// The shared token (or device token) is wrong.
    AuthFailed,
    /// The gateway speaks no protocol in our range.
    ProtocolMismatch,
    /// Anything else the gateway said.
    Other,
}

impl Refusal {
    pub fn of(error: &GatewayError) -> Refusal {
        match error.reason() {
            "PAIRING_REQUIRED" | "NOT_PAIRED" => Refusal::PairingRequired,
            "PROTOCOL_MISMATCH" => Refusal::ProtocolMismatch,
            reason if reason.starts_with("AUTH_") || reason.contains("TOKEN") => {
                Refusal::AuthFailed
            }
            "DEVICE_IDENTITY_REQUIRED" | "UNAUTHORIZED" => Refusal::AuthFailed,
            _ => Refusal::Other,
        }
    }
}

/// The pairing request the gateway opened for our device.
pub fn pairing_request_id(error: &GatewayError) -> Option<String> {
    error.details["requestId"].as_str().map(str::to_string)
}

/// A `chat` event: one step of a run (`delta`, `final`, `error`, `aborted`, `status`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatEvent {
    pub run_id: String,
    pub session_key: String,
    pub state: String,
    /// The text of `message.content` (all text parts), for `final`.
    pub text: String,
    pub error: Option<String>,
}

pub const CHAT: &str = "chat";

impl ChatEvent {
    /// Both protocols' shapes (protocol 3 deltas lack `deltaText` and `agentId`, which we
    /// do not read).
    pub fn read(payload: &Value) -> Option<ChatEvent> {
        Some(ChatEvent {
            run_id: payload["runId"].as_str()?.to_string(),
            session_key: payload["sessionKey"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            state: payload["state"].as_str()?.to_string(),
            text: message_text(&payload["message"]),
            error: payload["errorMessage"]
                .as_str()
                .or_else(|| payload["error"].as_str())
                .or_else(|| payload["error"]["message"].as_str())
                .map(str::to_string),
        })
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.state.as_str(), "final" | "error" | "aborted")
    }
}

/// The text of a message: a string, or the `text` of its `content` parts.
pub fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The gateway agent id inside a session key `agent:<agentId>:<rest>`.
pub fn agent_of_session(session_key: &str) -> Option<&str> {
    let rest = session_key.strip_prefix("agent:")?;
    let (agent, _) = rest.split_once(':')?;
    (!agent.is_empty()).then_some(agent)
}

/// The session of H5 user `h5_user` with gateway agent `agent`: a key the gateway routes to
/// that agent (a key not starting with `agent:` would go to the gateway's default agent).
pub fn h5_session_key(agent: &str, h5_user: &str) -> String {
    format!("agent:{agent}:h5-{h5_user}")
}

/// The errors that mean "this agent is not (yet) in the gateway's configuration": after
/// `agents.create` the gateway hot-reloads for a few seconds.
pub fn is_not_loaded_yet(error: &GatewayError) -> bool {
    let m = error.message.to_lowercase();
    m.contains("no longer exists in configuration")
        || m.contains("not found")
        || m.contains("unknown agent")
}

/// The gateway cannot take calls for the moment (it is draining for a restart).
pub fn is_unavailable(error: &GatewayError) -> bool {
    error.code == "UNAVAILABLE"
}

pub fn is_already_exists(error: &GatewayError) -> bool {
    error.message.contains("already exists")
}

pub fn is_stale_config(error: &GatewayError) -> bool {
    error.message.contains("config changed since last load")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_string_is_the_gateways_v3() {
        let challenge = Challenge {
            nonce: "n-1".into(),
            ts: 1700000000000,
        };
        assert_eq!(
            signing_string("abc", &Credential::Token("tok"), &challenge),
            "v3|abc|gateway-client|backend|operator|operator.read,operator.write,operator.admin,operator.approvals,operator.pairing|1700000000000|tok|n-1|linux|"
        );
        assert!(
            signing_string("abc", &Credential::DeviceToken("dev"), &challenge)
                .contains("|dev|n-1|")
        );
    }

    #[test]
    fn frames_parse() {
        assert_eq!(
            parse(r#"{"type":"res","id":"1","ok":true,"payload":{"a":1}}"#),
            Inbound::Res {
                id: "1".into(),
                outcome: Ok(json!({"a": 1}))
            }
        );
        let Inbound::Res {
            outcome: Err(e), ..
        } = parse(
            r#"{"type":"res","id":"2","ok":false,"error":{"code":"NOT_PAIRED","message":"pairing required","details":{"code":"PAIRING_REQUIRED","requestId":"r-9"}}}"#,
        )
        else {
            panic!("an error answer")
        };
        assert_eq!(Refusal::of(&e), Refusal::PairingRequired);
        assert_eq!(pairing_request_id(&e).as_deref(), Some("r-9"));
        assert_eq!(
            parse(r#"{"type":"event","event":"tick","payload":{},"seq":3}"#),
            Inbound::Event {
                event: "tick".into(),
                payload: json!({})
            }
        );
        assert_eq!(parse("[1]"), Inbound::Other);
        assert_eq!(parse(r#"{"type":"res","ok":true}"#), Inbound::Other);
    }

    #[test]
    fn refusals_are_told_apart() {
        let e = |code: &str| GatewayError {
            code: code.into(),
            ..Default::default()
        };
        assert_eq!(Refusal::of(&e("AUTH_TOKEN_MISMATCH")), Refusal::AuthFailed);
        assert_eq!(
            Refusal::of(&e("PROTOCOL_MISMATCH")),
            Refusal::ProtocolMismatch
        );
        assert_eq!(
            Refusal::of(&e("DEVICE_IDENTITY_REQUIRED")),
            Refusal::AuthFailed
        );
        assert_eq!(Refusal::of(&e("INVALID_REQUEST")), Refusal::Other);
    }

    #[test]
    fn chat_events_of_both_protocols() {
        let v4 = json!({"runId": "r", "sessionKey": "agent:mc-x:h5-u", "agentId": "mc-x", "state": "final",
            "message": {"role": "assistant", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}});
        let event = ChatEvent::read(&v4).unwrap();
        assert_eq!(
            (event.state.as_str(), event.text.as_str()),
            ("final", "hi there")
        );
        assert!(event.is_terminal());
        let v3 = json!({"runId": "r", "sessionKey": "agent:mc-x:h5-u", "state": "delta",
            "message": {"role": "assistant", "content": "partial"}});
        let event = ChatEvent::read(&v3).unwrap();
        assert_eq!(event.text, "partial");
        assert!(!event.is_terminal());
        assert!(ChatEvent::read(&json!({"state": "final"})).is_none());
    }

    #[test]
    fn session_keys() {
        assert_eq!(agent_of_session("agent:mc-1:main"), Some("mc-1"));
        assert_eq!(agent_of_session("h5:u:a"), None);
        assert_eq!(agent_of_session("agent::main"), None);
        assert_eq!(h5_session_key("mc-1", "u"), "agent:mc-1:h5-u");
    }

    #[test]
    fn hello_reads_scopes_and_tokens() {
        let hello = Hello::read(
            &json!({"type": "hello-ok", "protocol": 4, "server": {"version": "2026.9.6"},
            "auth": {"role": "operator", "scopes": ["operator.read"], "deviceToken": "dt"},
            "policy": {"tickIntervalMs": 30000}}),
        );
        assert_eq!(hello.protocol, 4);
        assert_eq!(hello.version.as_deref(), Some("2026.9.6"));
        assert_eq!(hello.device_token.as_deref(), Some("dt"));
        assert_eq!(hello.missing_scopes().len(), 4);
    }
}
