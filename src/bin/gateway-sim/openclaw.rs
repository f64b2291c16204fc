//! `gateway-sim openclaw`: OpenClaw gateways that Mission Control dials, speaking the
//! gateway's own protocol as `../shared/contract/openclaw-gateway.md` records it: the
//! `connect.challenge`, a `connect` whose Ed25519 device signature is checked, optional
//! pairing, the methods a control plane calls, and chat runs answered with `delta` and
//! `final` events sent to every connection of the gateway. Every URL path is a gateway of
//! its own (`ws://host:port/gw-17`), so one process stands in for a thousand.
//!
//! Plain HTTP on the same port: `GET /readyz`, `GET /pairing` (pending requests) and
//! `POST /pairing/{request_id}/approve` — what `openclaw devices approve` does on a real
//! gateway host; for fault tests, `GET /stats` (calls, runs, `chat.send` calls per
//! idempotency key) and `POST /outage/{seconds}` (every connection ends and none is taken
//! for that long). `--read-delay-ms` makes a gateway that reads slowly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use ring::signature::{UnparsedPublicKey, ED25519};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use mission_control::protocol::openclaw as oc;

#[derive(Args, Clone)]
pub struct OpenClawArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18789")]
    listen: String,
    /// The gateways' shared token (`gateway.auth.token`).
    #[arg(long)]
    token: String,
    /// Protocol spoken: 4 (2026.9) or 3 (2026.4: deltas without `deltaText`).
    #[arg(long, default_value_t = 4)]
    protocol: u32,
    /// Version reported in `hello-ok` and `status`.
    #[arg(long, default_value = "2026.9.6-sim")]
    version: String,
    /// New devices must be approved (`POST /pairing/{id}/approve`) before they connect.
    #[arg(long)]
    pairing: bool,
    /// Grant only these scopes (comma separated), whatever `connect` asks for; as a
    /// gateway that accepts a connection without the scopes it needs.
    #[arg(long, value_delimiter = ',')]
    grant_scopes: Option<Vec<String>>,
    /// After `agents.create`, the agent is unknown to chat and files for this long (the
    /// real gateway's configuration hot-reload).
    #[arg(long, default_value_t = 500)]
    hot_reload_ms: u64,
    /// The first N `config.patch` calls fail as if the configuration changed meanwhile.
    #[arg(long, default_value_t = 0)]
    stale_config_patches: u32,
    /// `echo` answers "You said: <text>"; anything else is the answer.
    #[arg(long, default_value = "echo")]
    reply: String,
    /// Delay before a run's first delta.
    #[arg(long, default_value_t = 0)]
    reply_delay_ms: u64,
    /// Interval of `tick` events.
    #[arg(long, default_value_t = 30)]
    tick_secs: u64,
    /// Stop after this many seconds and print a summary (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    duration_secs: u64,
    /// Read each frame only this long after the previous one: a gateway that reads slowly.
    #[arg(long, default_value_t = 0)]
    read_delay_ms: u64,
}

/// Files a 2026.9 gateway refuses to write.
const UNSUPPORTED_FILES: [&str; 2] = ["TOOLS.md", "HEARTBEAT.md"];

struct SimAgent {
    loaded_at: Instant,
    files: BTreeMap<String, String>,
}

#[derive(Default)]
struct Gateway {
    agents: BTreeMap<String, SimAgent>,
    config_version: u64,
    heartbeats: serde_json::Map<String, Value>,
    sessions: BTreeMap<String, Vec<Value>>,
    runs: HashSet<String>,
    connections: HashMap<u64, Addr<Connection>>,
    /// `config.patch` calls refused as stale so far (`--stale-config-patches`).
    patches_refused: u32,
}

impl Gateway {
    fn hash(&self) -> String {
        format!("sim-{}", self.config_version)
    }

    fn loaded(&self, agent: &str) -> bool {
        agent == "main"
            || self
                .agents
                .get(agent)
                .is_some_and(|a| a.loaded_at <= Instant::now())
    }
}

#[derive(Default)]
struct Shared {
    gateways: HashMap<String, Gateway>,
    /// Paired device id → its device token.
    paired: HashMap<String, String>,
    /// Pending request id → device id.
    pending: BTreeMap<String, String>,
    next_connection: u64,
    calls: u64,
    runs: u64,
    /// `chat.send` calls per idempotency key (a key's run happens once, however often it is
    /// sent): what `GET /stats` reports.
    sends: HashMap<String, u32>,
    /// No connection is taken until then (`POST /outage`).
    down_until: Option<Instant>,
}

type State = Arc<Mutex<Shared>>;

/// An event frame for a connection.
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Push(Arc<str>);

/// Ends the connection (`POST /outage`).
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
struct Disconnect;

struct Connection {
    id: u64,
    path: String,
    args: Arc<OpenClawArgs>,
    state: State,
    nonce: String,
    ready: bool,
    seq: u64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn error(code: &str, message: impl Into<String>, details: Value) -> Value {
    json!({"code": code, "message": message.into(), "details": details})
}

impl Connection {
    fn send(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: Value) {
        ctx.text(frame.to_string());
    }

    fn event(&mut self, ctx: &mut ws::WebsocketContext<Self>, event: &str, payload: Value) {
        self.seq += 1;
        let frame = json!({"type": "event", "event": event, "payload": payload, "seq": self.seq});
        self.send(ctx, frame);
    }

    fn answer(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: &Value,
        outcome: Result<Value, Value>,
    ) {
        let frame = match outcome {
            Ok(payload) => json!({"type": "res", "id": id, "ok": true, "payload": payload}),
            Err(error) => json!({"type": "res", "id": id, "ok": false, "error": error}),
        };
        self.send(ctx, frame);
    }

    fn refuse(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        id: &Value,
        error: Value,
        close: u16,
    ) {
        self.answer(ctx, id, Err(error));
        ctx.close(Some(ws::CloseReason {
            code: close.into(),
            description: None,
        }));
        ctx.stop();
    }

    fn on_connect(&mut self, ctx: &mut ws::WebsocketContext<Self>, id: &Value, params: &Value) {
        let protocol = self.args.protocol;
        let (min, max) = (
            params["minProtocol"].as_u64().unwrap_or(0) as u32,
            params["maxProtocol"].as_u64().unwrap_or(0) as u32,
        );
        if protocol < min || protocol > max {
            let e = error(
                "PROTOCOL_MISMATCH",
                "protocol mismatch",
                json!({"expectedProtocol": protocol}),
            );
            return self.refuse(ctx, id, e, 1002);
        }
        let device = &params["device"];
        if !device.is_object() {
            let e = error(
                "DEVICE_IDENTITY_REQUIRED",
                "device identity required",
                Value::Null,
            );
            return self.refuse(ctx, id, e, 1008);
        }
        let device_id = device["id"].as_str().unwrap_or_default().to_string();
        let (shared_token, device_token) = (
            params["auth"]["token"].as_str(),
            params["auth"]["deviceToken"].as_str(),
        );
        let known_token = {
            let state = self.state.lock().unwrap();
            device_token
                .is_some_and(|t| state.paired.get(&device_id).map(String::as_str) == Some(t))
        };
        let secret = match (shared_token, device_token) {
            (Some(t), _) if t == self.args.token => t,
            (_, Some(t)) if known_token => t,
            _ => {
                let e = error(
                    "AUTH_TOKEN_MISMATCH",
                    "unauthorized: gateway token mismatch",
                    Value::Null,
                );
                return self.refuse(ctx, id, e, 1008);
            }
        };
        if let Err(why) = verify_device(params, secret, &self.nonce) {
            let e = error("DEVICE_AUTH_INVALID", why, Value::Null);
            return self.refuse(ctx, id, e, 1008);
        }
        let issued = {
            let mut state = self.state.lock().unwrap();
            if self.args.pairing && !state.paired.contains_key(&device_id) {
                let request = match state.pending.iter().find(|(_, d)| **d == device_id) {
                    Some((request, _)) => request.clone(),
                    None => {
                        let request = uuid::Uuid::new_v4().to_string();
                        state.pending.insert(request.clone(), device_id.clone());
                        request
                    }
                };
                drop(state);
                let e = error(
                    "NOT_PAIRED",
                    "pairing required",
                    json!({"code": "PAIRING_REQUIRED",
                    "requestId": request, "deviceId": device_id,
                    "remediationHint": format!("openclaw devices approve {request}")}),
                );
                return self.refuse(ctx, id, e, 1008);
            }
            let issued = state.paired.get(&device_id).cloned();
            let gateway = state.gateways.entry(self.path.clone()).or_default();
            gateway.connections.insert(self.id, ctx.address());
            issued
        };
        self.ready = true;
        let scopes = match &self.args.grant_scopes {
            Some(granted) => json!(granted),
            None => params["scopes"].clone(),
        };
        let mut auth = json!({"role": params["role"], "scopes": scopes});
        if let Some(token) = issued {
            auth["deviceToken"] = json!(token);
        }
        let hello = json!({"type": "hello-ok", "protocol": protocol,
            "server": {"version": self.args.version, "connId": self.id},
            "features": {"methods": METHODS, "events": ["chat", "tick", "health"]},
            "snapshot": {}, "auth": auth,
            "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800,
                       "tickIntervalMs": self.args.tick_secs * 1000}});
        self.answer(ctx, id, Ok(hello));
        let every = Duration::from_secs(self.args.tick_secs.max(1));
        ctx.run_interval(every, |act, ctx| {
            act.event(ctx, "tick", json!({"ts": now_ms()}))
        });
    }

    fn on_request(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: Value) {
        let id = frame["id"].clone();
        let method = frame["method"].as_str().unwrap_or_default();
        let params = &frame["params"];
        if method == "connect" {
            if self.ready {
                return self.answer(
                    ctx,
                    &id,
                    Err(error("INVALID_REQUEST", "already connected", Value::Null)),
                );
            }
            return self.on_connect(ctx, &id, params);
        }
        if !self.ready {
            let e = error(
                "INVALID_REQUEST",
                "first request must be connect",
                Value::Null,
            );
            return self.refuse(ctx, &id, e, 1008);
        }
        let outcome = self.call(method, params);
        self.answer(ctx, &id, outcome);
    }

    fn call(&mut self, method: &str, p: &Value) -> Result<Value, Value> {
        let invalid = |m: String| Err(error("INVALID_REQUEST", m, Value::Null));
        let args = self.args.clone();
        let mut state = self.state.lock().unwrap();
        state.calls += 1;
        if let Some(result) = pairing_call(&mut state, method, p) {
            return result;
        }
        let gateway = state.gateways.entry(self.path.clone()).or_default();
        let agent = p["agentId"]
            .as_str()
            .or(p["name"].as_str())
            .unwrap_or_default()
            .to_string();
        match method {
            "health" => Ok(json!({"ok": true, "ts": now_ms()})),
            "status" => Ok(
                json!({"runtimeVersion": args.version, "agents": gateway.agents.len(),
                                  "sessions": gateway.sessions.len()}),
            ),
            "agents.create" => {
                if gateway.agents.contains_key(&agent) || agent == "main" {
                    return invalid(format!("agent \"{agent}\" already exists"));
                }
                let loaded_at = Instant::now() + Duration::from_millis(args.hot_reload_ms);
                gateway.agents.insert(
                    agent.clone(),
                    SimAgent {
                        loaded_at,
                        files: BTreeMap::new(),
                    },
                );
                gateway.config_version += 1;
                Ok(
                    json!({"ok": true, "agentId": agent, "name": agent, "workspace": p["workspace"]}),
                )
            }
            "agents.update" => match gateway.agents.contains_key(&agent) {
                true => Ok(json!({"ok": true, "agentId": agent})),
                false => invalid(format!("agent \"{agent}\" not found")),
            },
            "agents.delete" => match gateway.agents.remove(&agent) {
                Some(_) => {
                    gateway.config_version += 1;
                    Ok(json!({"ok": true}))
                }
                None => invalid(format!("agent \"{agent}\" not found")),
            },
            "agents.files.list" => {
                if !gateway.loaded(&agent) {
                    return invalid(format!("agent \"{agent}\" not found"));
                }
                let files = gateway.agents.get(&agent).map(|a| {
                    a.files
                        .iter()
                        .map(|(name, text)| {
                            json!({"name": name, "path": name,
                        "missing": false, "size": text.len()})
                        })
                        .collect::<Vec<_>>()
                });
                Ok(json!({"agentId": agent, "files": files.unwrap_or_default()}))
            }
            "agents.files.set" => {
                let name = p["name"].as_str().unwrap_or_default();
                if UNSUPPORTED_FILES.contains(&name) {
                    return invalid(format!("unsupported file \"{name}\""));
                }
                if !gateway.loaded(&agent) {
                    return invalid(format!(
                        "agent \"{agent}\" no longer exists in configuration"
                    ));
                }
                let content = p["content"].as_str().unwrap_or_default().to_string();
                if let Some(a) = gateway.agents.get_mut(&agent) {
                    a.files.insert(name.to_string(), content);
                }
                Ok(json!({"ok": true}))
            }
            "config.get" => {
                let mut entries = serde_json::Map::new();
                for name in gateway.agents.keys() {
                    let heartbeat = gateway
                        .heartbeats
                        .get(name)
                        .cloned()
                        .unwrap_or(json!({"every": "0m"}));
                    entries.insert(name.clone(), json!({"name": name, "heartbeat": heartbeat}));
                }
                Ok(json!({"config": {"agents": {"entries": entries}}, "hash": gateway.hash()}))
            }
            "config.patch" => {
                let stale = p["baseHash"].as_str() != Some(gateway.hash().as_str());
                let raced = !stale && gateway.patches_refused < args.stale_config_patches;
                if stale || raced {
                    // Another writer got in first: the configuration moved on meanwhile.
                    if raced {
                        gateway.patches_refused += 1;
                        gateway.config_version += 1;
                    }
                    return invalid(
                        "config changed since last load; re-run config.get and retry".into(),
                    );
                }
                let patch: Value = serde_json::from_str(p["raw"].as_str().unwrap_or("{}"))
                    .map_err(|e| error("INVALID_REQUEST", e.to_string(), Value::Null))?;
                for (name, entry) in patch["agents"]["entries"].as_object().into_iter().flatten() {
                    gateway
                        .heartbeats
                        .insert(name.clone(), entry["heartbeat"].clone());
                }
                gateway.config_version += 1;
                Ok(json!({"ok": true, "hash": gateway.hash()}))
            }
            "sessions.patch" => {
                let key = p["key"].as_str().unwrap_or_default().to_string();
                gateway.sessions.entry(key.clone()).or_default();
                Ok(json!({"ok": true, "key": key, "entry": {"sessionId": uuid::Uuid::new_v4()}}))
            }
            "sessions.reset" => Ok(json!({"ok": true})),
            "sessions.list" => {
                let sessions: Vec<Value> = gateway
                    .sessions
                    .keys()
                    .map(|key| {
                        json!({"key": key,
                    "agentId": oc::agent_of_session(key), "kind": "direct",
                    "isMain": key.ends_with(":main")})
                    })
                    .collect();
                Ok(json!({"count": sessions.len(), "sessions": sessions}))
            }
            "chat.history" => {
                let key = p["sessionKey"].as_str().unwrap_or_default();
                Ok(json!({"messages": gateway.sessions.get(key).cloned().unwrap_or_default()}))
            }
            "chat.send" => {
                let key = p["sessionKey"].as_str().unwrap_or_default().to_string();
                let run = p["idempotencyKey"].as_str().unwrap_or_default().to_string();
                *state.sends.entry(run.clone()).or_default() += 1;
                let gateway = state.gateways.entry(self.path.clone()).or_default();
                let agent = oc::agent_of_session(&key).unwrap_or("main").to_string();
                // Created but not loaded yet: refused (a real gateway during its hot-reload).
                if gateway.agents.contains_key(&agent) && !gateway.loaded(&agent) {
                    return invalid(format!(
                        "agent \"{agent}\" no longer exists in configuration"
                    ));
                }
                if !gateway.runs.insert(run.clone()) {
                    return Ok(json!({"runId": run, "status": "in_flight"}));
                }
                let text = p["message"].as_str().unwrap_or_default().to_string();
                gateway.sessions.entry(key.clone()).or_default().push(
                    json!({"role": "user", "content": text, "timestamp": now_ms(), "idempotencyKey": run}));
                let known = gateway.loaded(&agent);
                state.runs += 1;
                drop(state);
                self.start_run(Run {
                    run: run.clone(),
                    key,
                    agent,
                    text,
                    known,
                });
                Ok(json!({"runId": run, "status": "started"}))
            }
            other => invalid(format!("unknown method: {other}")),
        }
    }

    /// A run: its reply goes to every connection of the gateway, as a real gateway's does,
    /// and it completes even if the connection that started it closes (the real gateway's
    /// runs do: a task of its own, not of the connection).
    fn start_run(&mut self, run: Run) {
        let (state, path, args) = (self.state.clone(), self.path.clone(), self.args.clone());
        let delay = Duration::from_millis(args.reply_delay_ms);
        actix::spawn(async move {
            actix_web::rt::time::sleep(delay).await;
            let reply = match args.reply.as_str() {
                "echo" => format!("You said: {}", run.text),
                canned => canned.to_string(),
            };
            let frames = run.frames(&reply, args.protocol);
            let recipients: Vec<_> = {
                let mut state = state.lock().unwrap();
                let gateway = state.gateways.entry(path).or_default();
                if run.known {
                    gateway.sessions.entry(run.key.clone()).or_default().push(
                        json!({"role": "assistant",
                        "content": [{"type": "text", "text": reply}], "stopReason": "stop",
                        "__openclaw": {"runId": run.run}}),
                    );
                }
                gateway.connections.values().cloned().collect()
            };
            for frame in frames {
                let frame: Arc<str> = frame.into();
                for to in &recipients {
                    to.do_send(Push(frame.clone()));
                }
            }
        });
    }
}

struct Run {
    run: String,
    key: String,
    agent: String,
    text: String,
    /// The session's agent is loaded; else the run ends in `error`.
    known: bool,
}

impl Run {
    /// The run's `chat` event payloads: two deltas and the final (protocol 3 deltas carry
    /// neither `deltaText` nor `agentId`), or an `error` for an agent the gateway lacks.
    fn frames(&self, reply: &str, protocol: u32) -> Vec<String> {
        let event = |payload: Value| {
            json!({"type": "event", "event": "chat", "payload": payload}).to_string()
        };
        let base = json!({"runId": self.run, "sessionKey": self.key});
        let with = |mut extra: Value| {
            let mut payload = base.clone();
            payload
                .as_object_mut()
                .unwrap()
                .append(extra.as_object_mut().unwrap());
            if protocol >= 4 {
                payload["agentId"] = json!(self.agent);
            }
            event(payload)
        };
        if !self.known {
            return vec![with(json!({"state": "error",
                "errorMessage": format!("agent \"{}\" no longer exists in configuration", self.agent)}))];
        }
        let half = reply
            .char_indices()
            .nth(reply.chars().count() / 2)
            .map_or(reply.len(), |(i, _)| i);
        let mut frames = Vec::new();
        for (so_far, delta) in [(&reply[..half], &reply[..half]), (reply, &reply[half..])] {
            let mut payload = json!({"state": "delta",
                "message": {"role": "assistant", "content": [{"type": "text", "text": so_far}]}});
            if protocol >= 4 {
                payload["deltaText"] = json!(delta);
            } else {
                payload["message"]["content"] = json!(so_far);
            }
            frames.push(with(payload));
        }
        frames.push(with(json!({"state": "final", "stopReason": "stop",
            "message": {"role": "assistant", "content": [{"type": "text", "text": reply}]}})));
        frames
    }
}

/// `device.pair.list` and `device.pair.approve`, as a connection with `operator.pairing`
/// calls them.
fn pairing_call(state: &mut Shared, method: &str, p: &Value) -> Option<Result<Value, Value>> {
    match method {
        "device.pair.list" => Some(Ok(json!({"pending": state.pending.iter()
            .map(|(request, device)| json!({"requestId": request, "deviceId": device}))
            .collect::<Vec<_>>()}))),
        "device.pair.approve" => Some(approve(state, p["requestId"].as_str().unwrap_or_default())),
        _ => None,
    }
}

fn approve(state: &mut Shared, request: &str) -> Result<Value, Value> {
    let Some(device) = state.pending.remove(request) else {
        return Err(error(
            "INVALID_REQUEST",
            format!("unknown request {request}"),
            Value::Null,
        ));
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    state.paired.insert(device.clone(), token);
    Ok(json!({"ok": true, "deviceId": device}))
}

/// Checks the `connect` device block as the gateway does: the id is the key's SHA-256, the
/// nonce is the challenge's, and the signature covers the v3 string.
fn verify_device(params: &Value, secret: &str, nonce: &str) -> Result<(), String> {
    let device = &params["device"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let key = URL_SAFE_NO_PAD
        .decode(text(&device["publicKey"]))
        .map_err(|_| "device publicKey is not base64url")?;
    let id: String = Sha256::digest(&key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if id != text(&device["id"]) {
        return Err("device id does not match its public key".into());
    }
    if text(&device["nonce"]) != nonce {
        return Err("device nonce does not match the challenge".into());
    }
    let scopes: Vec<String> = params["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let signed = format!(
        "v3|{id}|{}|{}|{}|{}|{}|{secret}|{nonce}|{}|{}",
        text(&params["client"]["id"]),
        text(&params["client"]["mode"]),
        text(&params["role"]),
        scopes.join(","),
        device["signedAt"],
        text(&params["client"]["platform"]).to_lowercase(),
        text(&params["client"]["deviceFamily"]).to_lowercase(),
    );
    let signature = URL_SAFE_NO_PAD
        .decode(text(&device["signature"]))
        .map_err(|_| "device signature is not base64url")?;
    UnparsedPublicKey::new(&ED25519, &key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "device signature invalid".to_string())
}

/// The methods `hello-ok` lists.
const METHODS: [&str; 18] = [
    "health",
    "status",
    "agents.create",
    "agents.update",
    "agents.delete",
    "agents.files.list",
    "agents.files.set",
    "config.get",
    "config.patch",
    "sessions.patch",
    "sessions.list",
    "sessions.reset",
    "chat.send",
    "chat.history",
    "device.pair.list",
    "device.pair.approve",
    "connect",
    "tick",
];

impl Actor for Connection {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let payload = json!({"nonce": self.nonce, "ts": now_ms(), "capabilities": []});
        self.event(ctx, oc::CHALLENGE, payload);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(gateway) = self.state.lock().unwrap().gateways.get_mut(&self.path) {
            gateway.connections.remove(&self.id);
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Connection {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        if self.args.read_delay_ms > 0 {
            // Nothing more is read meanwhile: the sender's frames back up.
            let delay = Duration::from_millis(self.args.read_delay_ms);
            ctx.wait(actix::fut::wrap_future(actix_web::rt::time::sleep(delay)));
        }
        match msg {
            Ok(ws::Message::Text(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(frame) if frame["type"] == "req" => self.on_request(ctx, frame),
                _ => {}
            },
            Ok(ws::Message::Ping(data)) => ctx.pong(&data),
            Ok(ws::Message::Close(_)) | Err(_) => ctx.stop(),
            Ok(_) => {}
        }
    }
}

impl Handler<Disconnect> for Connection {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Restart,
            description: None,
        }));
        ctx.stop();
    }
}

impl Handler<Push> for Connection {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        // The run's events are numbered per connection, like every event.
        let mut frame: Value = serde_json::from_str(&msg.0).unwrap_or(Value::Null);
        self.seq += 1;
        frame["seq"] = json!(self.seq);
        ctx.text(frame.to_string());
    }
}

async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    args: web::Data<Arc<OpenClawArgs>>,
    state: web::Data<State>,
) -> actix_web::Result<HttpResponse> {
    let id = {
        let mut state = state.lock().unwrap();
        if state.down_until.is_some_and(|until| until > Instant::now()) {
            return Ok(HttpResponse::ServiceUnavailable().finish());
        }
        state.next_connection += 1;
        state.next_connection
    };
    let connection = Connection {
        id,
        path: req.path().to_string(),
        args: args.get_ref().clone(),
        state: state.get_ref().clone(),
        nonce: uuid::Uuid::new_v4().to_string(),
        ready: false,
        seq: 0,
    };
    ws::WsResponseBuilder::new(connection, &req, stream)
        .frame_size(32 << 20)
        .start()
}

/// `GET /stats`: calls, runs, and `chat.send` calls per idempotency key.
async fn stats(state: web::Data<State>) -> HttpResponse {
    let state = state.lock().unwrap();
    HttpResponse::Ok().json(json!({"calls": state.calls, "runs": state.runs, "sends": state.sends}))
}

/// `POST /outage/{seconds}`: every connection ends, and none is taken for that long (the
/// gateway is away; what it knows stays).
async fn outage(seconds: web::Path<u64>, state: web::Data<State>) -> HttpResponse {
    let mut state = state.lock().unwrap();
    state.down_until = Some(Instant::now() + Duration::from_secs(*seconds));
    for gateway in state.gateways.values_mut() {
        for (_, connection) in gateway.connections.drain() {
            connection.do_send(Disconnect);
        }
    }
    HttpResponse::Ok().finish()
}

async fn pending(state: web::Data<State>) -> HttpResponse {
    let state = state.lock().unwrap();
    HttpResponse::Ok().json(json!({"pending": state.pending.iter()
        .map(|(request, device)| json!({"requestId": request, "deviceId": device}))
        .collect::<Vec<_>>()}))
}

async fn approve_request(path: web::Path<String>, state: web::Data<State>) -> HttpResponse {
    match approve(&mut state.lock().unwrap(), &path) {
        Ok(body) => HttpResponse::Ok().json(body),
        Err(e) => HttpResponse::NotFound().json(e),
    }
}

pub async fn run(args: OpenClawArgs) {
    let (args, state): (Arc<OpenClawArgs>, State) = (Arc::new(args), State::default());
    let listen = args.listen.clone();
    let server = {
        let (args, state) = (args.clone(), state.clone());
        HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(args.clone()))
                .app_data(web::Data::new(state.clone()))
                .route("/readyz", web::get().to(HttpResponse::Ok))
                .route("/pairing", web::get().to(pending))
                .route("/stats", web::get().to(stats))
                .route("/outage/{seconds}", web::post().to(outage))
                .route(
                    "/pairing/{request}/approve",
                    web::post().to(approve_request),
                )
                .default_service(web::get().to(upgrade))
        })
        .workers(1)
        .bind(&listen)
        .unwrap_or_else(|e| {
            eprintln!("gateway-sim: cannot listen on {listen}: {e}");
            std::process::exit(1);
        })
        .run()
    };
    eprintln!(
        "gateway-sim: OpenClaw gateways on ws://{}/<any path>",
        args.listen
    );
    if args.duration_secs == 0 {
        let _ = server.await;
        return;
    }
    let handle = server.handle();
    actix_web::rt::spawn(server);
    actix_web::rt::time::sleep(Duration::from_secs(args.duration_secs)).await;
    let summary = {
        let state = state.lock().unwrap();
        json!({"gateways": state.gateways.len(), "connections": state.next_connection,
               "calls": state.calls, "runs": state.runs})
    };
    println!("{summary}");
    handle.stop(false).await;
}
