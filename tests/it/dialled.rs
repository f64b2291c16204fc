//! What the tests of gateways we dial share, whatever the gateway (the real OpenClaw
//! gateway of `openclaw.rs`, the simulator of `openclaw_sim.rs`): the console's requests,
//! waiting for a connection state, an H5 user chatting, and an operator connection of the
//! test's own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::Method;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::fixtures::{create_board, send};
use crate::harness::{free_port, Server, ServerBuilder, WsClient, WsEvent};
use mission_control::protocol::openclaw as oc;
use mission_control::secrets::device::DeviceKey;

/// Short leases and reconnects, so take-overs and restarts are quick to see.
pub fn builder() -> ServerBuilder {
    Server::builder()
        .env("GATEWAY_LEASE_SECONDS", "3")
        .env("GATEWAY_RECONNECT_MAX_SECONDS", "2")
        .env("GATEWAY_RPC_TIMEOUT_SECONDS", "30")
}

/// `GET /api/v1/gateways/status` as the console's gateway form calls it.
pub async fn status(server: &Server, url: &str, token: &str) -> Value {
    let path = format!(
        "/api/v1/gateways/status?gateway_url={}&gateway_token={}",
        urlencode(url),
        urlencode(token)
    );
    let reply = server.admin_get(&path).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Creates the gateway as the console does (by URL and token).
pub async fn create_gateway(server: &Server, url: &str, token: &str, root: &str) -> Value {
    let created = send(
        server,
        Method::POST,
        "/api/v1/gateways",
        json!({"name": "Office", "url": url, "token": token, "workspace_root": root}),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text);
    created.json
}

pub async fn wait_state(server: &Server, id: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let gateway = server
            .admin_get(&format!("/api/v1/gateways/{id}"))
            .await
            .json;
        if gateway["connection_state"] == state {
            return gateway;
        }
        assert!(
            Instant::now() < deadline,
            "gateway never {state}: {gateway}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A board on `gateway` with one agent.
pub async fn agent_on(server: &Server, gateway: &Value) -> (Value, Value) {
    let board = create_board(server, gateway, "Ops", json!({})).await;
    let agent = send(
        server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "Ada", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(agent.status, 200, "{}", agent.text);
    (board, agent.json)
}

/// The request `method` of the agent, once the gateway has answered it.
pub async fn answered(server: &Server, gateway_id: &str, agent_id: &str, method: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let requests = server
            .admin_get(&format!("/api/v1/gateways/{gateway_id}/requests"))
            .await
            .json;
        let done = requests
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                r["method"] == method
                    && r["agent_id"] == agent_id
                    && r["status"] != "pending"
                    && r["status"] != "sent"
            })
            .cloned();
        if let Some(done) = done {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{method} never answered: {requests}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends a chat frame as the H5 app does and waits for the agent's reply (or an error).
/// `GATEWAY_OFFLINE` is not an end: the message is stored and goes out when the gateway is
/// connected again.
pub async fn chat(ws: &mut WsClient, agent: &Value, id: &str, text: &str) -> (Value, Duration) {
    let started = Instant::now();
    ws.send(
        json!({"type": "chat", "id": id, "payload": {"agent_id": agent["id"], "content": text}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no chat_reply for {text:?}");
        match ws.next(left).await {
            WsEvent::Json(frame) if frame["payload"]["code"] == "GATEWAY_OFFLINE" => continue,
            WsEvent::Json(frame) if frame["type"] == "chat_reply" || frame["type"] == "error" => {
                return (frame, started.elapsed())
            }
            WsEvent::Json(_) => continue,
            other => panic!("waiting for the reply: {other:?}"),
        }
    }
}

/// `chat` that must end in a reply quoting `text`. OpenClaw (2026.9.6) may fail a run
/// before any model call when its config changed meanwhile (another test's agent was
/// provisioned on the shared gateway): "model runtime plugin generation was superseded …;
/// retry the request". The server reports that failure as it should (an `error` frame and
/// a reply saying why); the test then sends again, as a user would, with a new id.
pub async fn chat_reply(ws: &mut WsClient, agent: &Value, id: &str, text: &str) -> Duration {
    let superseded = |frame: &Value| {
        let payload = &frame["payload"];
        let why = payload["error"].as_str().or(payload["message"].as_str());
        why.is_some_and(|why| why.contains("was superseded"))
    };
    let (mut reply, mut took) = chat(ws, agent, id, text).await;
    for _ in 0..3 {
        if !superseded(&reply) {
            break;
        }
        // The failure's other frame (reply or error) comes too: let it pass first.
        while let WsEvent::Json(_) = ws.next(Duration::from_secs(1)).await {}
        (reply, took) = chat(ws, agent, &uuid::Uuid::new_v4().to_string(), text).await;
    }
    assert_eq!(reply["type"], "chat_reply", "{reply}");
    let content = reply["payload"]["content"].as_str().unwrap_or_default();
    assert!(content.contains(text), "{reply}");
    took
}

/// Calls `method` on the gateway at `url` over an operator connection of the test's own,
/// signed with `device`.
pub async fn gateway_call(
    url: &str,
    token: &str,
    device: &DeviceKey,
    method: &str,
    params: Value,
) -> Result<Value, oc::GatewayError> {
    let (_, mut ws) = awc::Client::new()
        .ws(url)
        .max_frame_size(32 << 20)
        .connect()
        .await
        .expect("dial the gateway");
    let challenge = loop {
        match ws.next().await {
            Some(Ok(awc::ws::Frame::Text(t))) => {
                if let oc::Inbound::Event { payload, .. } =
                    oc::parse(std::str::from_utf8(&t).unwrap())
                {
                    break serde_json::from_value::<oc::Challenge>(payload).unwrap();
                }
            }
            Some(Ok(_)) => continue,
            other => panic!("gateway connection ended: {other:?}"),
        }
    };
    let credential = oc::Credential::Token(token);
    let signature = device.sign(&oc::signing_string(device.id(), &credential, &challenge));
    let connect = oc::connect_params(
        "test",
        &credential,
        &oc::Device {
            id: device.id(),
            public_key: device.public_key(),
        },
        &challenge,
        &signature,
    );
    for (id, method, params) in [("c", "connect", &connect), ("m", method, &params)] {
        let frame = serde_json::to_string(&oc::Req::new(id, method, params)).unwrap();
        ws.send(awc::ws::Message::Text(frame.into())).await.unwrap();
        let outcome = loop {
            let frame = match ws.next().await {
                Some(Ok(awc::ws::Frame::Text(t))) => oc::parse(std::str::from_utf8(&t).unwrap()),
                Some(Ok(_)) => continue,
                other => panic!("gateway connection ended: {other:?}"),
            };
            match frame {
                oc::Inbound::Res { id: got, outcome } if got == id => break outcome,
                _ => continue,
            }
        };
        if id == "m" {
            return outcome;
        }
        outcome?;
    }
    unreachable!("the loop returns the second answer")
}

/// `gateway-sim openclaw` on a port of its own, killed when dropped.
pub struct SimGateway {
    child: Child,
    pub port: u16,
    pub token: String,
}

impl SimGateway {
    pub fn start(extra: &[&str]) -> SimGateway {
        Self::start_on(free_port(), extra)
    }

    pub fn start_on(port: u16, extra: &[&str]) -> SimGateway {
        let token = "sim-token-0123456789abcdefghij".to_string();
        let child = Command::new(crate::harness::GATEWAY_SIM)
            .args(["openclaw", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token", &token])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gateway-sim openclaw");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "gateway-sim never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        SimGateway { child, port, token }
    }

    /// The URL of one simulated gateway (each path is one).
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}/{path}", self.port)
    }

    /// Approves every pending pairing request, as `openclaw devices approve` would.
    pub async fn approve(&self, request_id: &str) {
        let reply = awc::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/pairing/{request_id}/approve",
                self.port
            ))
            .send()
            .await
            .expect("approve on the simulator");
        assert!(reply.status().is_success(), "{}", reply.status());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimGateway {
    fn drop(&mut self) {
        self.kill();
    }
}
