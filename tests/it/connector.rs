//! `mc-connector` (a real process) attaching the real OpenClaw gateway of the run
//! (`scripts/openclaw`) to two Mission Control instances: registration with a registration
//! token, heartbeats with the gateway's real version, an agent provisioned and H5 chat
//! carried through the tunnel (the H5 user on the other instance), the connector killed
//! (`agent_offline`, offline after the threshold) and started again (the same identity,
//! what was sent meanwhile delivered once); refused tokens create nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::dialled::{agent_on, answered, builder, chat, chat_reply, wait_state};
use crate::fixtures::{h5_socket, h5_user, issue_token, org_id, send};
use crate::harness::{eventually, Server, TempDir, WsEvent, ADMIN_TOKEN};
use crate::openclaw::{gateway, GatewayLock};

pub(crate) struct Connector {
    child: Child,
    log: PathBuf,
    state: PathBuf,
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Connector {
    pub(crate) fn start(server: &Server, org: &str, token: &str, state: &Path) -> Connector {
        let g = gateway();
        let log = state.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_mc-connector"))
            .env("MC_URL", &server.base)
            .env("MC_ORGANIZATION_ID", org)
            .env("MC_REGISTRATION_TOKEN", token)
            .env("MC_GATEWAY_NAME", "office")
            .env(
                "MC_WORKSPACE_ROOT",
                format!("{}/workspaces/{}", g.dir, uuid::Uuid::new_v4().simple()),
            )
            .env("OPENCLAW_URL", &g.url)
            .env("OPENCLAW_TOKEN", &g.token)
            .env("MC_CONNECTOR_STATE", state)
            .env("LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mc-connector");
        Connector {
            child,
            log,
            state: state.to_path_buf(),
        }
    }

    /// The gateway id it registered, once its state file is written.
    pub(crate) async fn gateway_id(&self) -> String {
        let saved = eventually(Duration::from_secs(30), || async { self.state.exists() }).await;
        assert!(saved, "no state file:\n{}", self.log());
        let state: Value = serde_json::from_slice(&std::fs::read(&self.state).unwrap()).unwrap();
        state["gateway_id"].as_str().unwrap().to_string()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit code, once it exited by itself (within 30 s).
    fn exited(&mut self) -> Option<i32> {
        for _ in 0..300 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

async fn gateways(server: &Server) -> Vec<Value> {
    let listed = server.admin_get("/api/v1/gateways").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    listed.json["items"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn a_connector_attaches_the_real_gateway_and_carries_chat_across_instances() {
    let _shared = GatewayLock::take(false);
    let with_threshold = || {
        builder()
            .env("GATEWAY_HEARTBEAT_INTERVAL_SECONDS", "2")
            .env("GATEWAY_OFFLINE_THRESHOLD_SECONDS", "6")
    };
    let a = with_threshold().start().await;
    let b = with_threshold().start_on(&a).await;
    let org = org_id(&a).await;
    let token = issue_token(&a).await;
    let dir = TempDir::new();
    let state = dir.path.join("state.json");

    let mut connector = Connector::start(&a, &org, &token, &state);
    let id = connector.gateway_id().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Heartbeats with the local gateway's real version and counts.
    let metrics_path = format!("/api/v1/gateways/{id}/metrics");
    let version = std::env::var("MC_OPENCLAW_VERSION").unwrap_or_default();
    let reported = eventually(Duration::from_secs(30), || async {
        let m = a.admin_get(&metrics_path).await.json;
        m["gateway_version"] == version.as_str()
            && m["agent_count"].is_i64()
            && m["status"] == "online"
    })
    .await;
    assert!(
        reported,
        "{}\n{}",
        a.admin_get(&metrics_path).await.text,
        connector.log()
    );

    // Mission Control's own client reaches the gateway through the tunnel.
    wait_state(&a, &id, "connected", Duration::from_secs(60)).await;
    let gateway_row = a.admin_get(&format!("/api/v1/gateways/{id}")).await.json;
    let (board, agent) = agent_on(&a, &gateway_row).await;
    let request = answered(&a, &id, agent["id"].as_str().unwrap(), "agents.create").await;
    assert_eq!(request["status"], "done", "{request}");

    // The H5 user is on the other instance.
    let user = h5_user(&b, &board, &agent, "alice").await;
    let mut ws = h5_socket(&b, &user).await;
    let took = chat_reply(&mut ws, &agent, "local-1", "hello through the connector").await;
    eprintln!("H5 round trip through mc-connector: {took:?}");

    // The connector goes: its users hear it at once, the gateway is offline after the
    // threshold.
    connector.child.kill().unwrap();
    connector.child.wait().unwrap();
    let mut offline = None;
    for _ in 0..50 {
        if let WsEvent::Json(frame) = ws.next(Duration::from_millis(200)).await {
            if frame["payload"]["event"] == "agent_offline" {
                offline = Some(frame);
                break;
            }
        }
    }
    assert!(offline.is_some(), "no agent_offline");
    let gone = eventually(Duration::from_secs(20), || async {
        a.admin_get(&metrics_path).await.json["status"] == "offline"
    })
    .await;
    assert!(gone, "{}", a.admin_get(&metrics_path).await.text);

    // Said while it was away: stored, delivered once when it is back with the same identity
    // (a run's id is its message's id: one reply per run).
    ws.send(json!({"type": "chat", "id": "local-2",
                   "payload": {"agent_id": agent["id"], "content": "said while away"}}))
        .await;
    let stored = loop {
        match ws.next(Duration::from_secs(5)).await {
            WsEvent::Json(frame)
                if frame["id"] == "local-2" && frame["payload"]["message_id"].is_string() =>
            {
                break frame["payload"]["message_id"].clone()
            }
            WsEvent::Json(_) => continue,
            other => panic!("no ack for the message sent while away: {other:?}"),
        }
    };
    let connector = Connector::start(&a, &org, "not-needed-any-more", &state);
    let (reply, _) = chat(&mut ws, &agent, "local-3", "and after").await;
    let mut replies = vec![reply];
    let answered = |replies: &[Value]| {
        replies
            .iter()
            .filter(|r| r["type"] == "chat_reply" && r["payload"]["run_id"] == stored)
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while answered(&replies) == 0 && std::time::Instant::now() < deadline {
        if let WsEvent::Json(frame) = ws.next(Duration::from_secs(1)).await {
            replies.push(frame);
        }
    }
    // A second reply to it would come right behind.
    while let WsEvent::Json(frame) = ws.next(Duration::from_secs(3)).await {
        replies.push(frame);
    }
    assert_eq!(answered(&replies), 1, "{replies:?}\n{}", connector.log());
    assert_eq!(
        gateways(&a).await.len(),
        1,
        "the same gateway, not a second one"
    );
    assert_eq!(
        a.admin_get(&metrics_path).await.json["status"],
        "online",
        "{}",
        connector.log()
    );
}

#[actix_web::test]
async fn refused_tokens_create_nothing_and_a_deleted_gateway_stops_its_connector() {
    let server = builder()
        .env("GATEWAY_HEARTBEAT_INTERVAL_SECONDS", "2")
        .start()
        .await;
    let org = org_id(&server).await;
    let dir = TempDir::new();

    let state = dir.path.join("wrong.json");
    let mut wrong = Connector::start(&server, &org, "mcr_not-a-token", &state);
    assert_eq!(wrong.exited(), Some(2), "{}", wrong.log());
    assert!(
        wrong.log().contains("registration refused"),
        "{}",
        wrong.log()
    );
    assert!(!state.exists());

    let token = issue_token(&server).await;
    let listed = server
        .admin_get("/api/v1/gateway-registry/tokens")
        .await
        .json;
    let token_id = listed[0]["id"].as_str().unwrap().to_string();
    let revoked = send(
        &server,
        Method::DELETE,
        &format!("/api/v1/gateway-registry/tokens/{token_id}"),
        json!({}),
    )
    .await;
    assert!(revoked.status.is_success(), "{}", revoked.text);
    let mut late = Connector::start(&server, &org, &token, &state);
    assert_eq!(late.exited(), Some(2), "{}", late.log());
    assert!(gateways(&server).await.is_empty());

    // Registered, then the gateway deleted by an admin: its relay token is refused.
    let token = issue_token(&server).await;
    let mut connector = Connector::start(&server, &org, &token, &state);
    let id = connector.gateway_id().await;
    let deleted = server
        .call(
            Method::DELETE,
            &format!("/api/v1/gateways/{id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    assert_eq!(connector.exited(), Some(3), "{}", connector.log());
}
