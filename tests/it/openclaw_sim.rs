//! Gateways we dial, against the simulator (`gateway-sim openclaw`): the protocol details a
//! real gateway shows only sometimes — the device signature it checks, protocol 3's event
//! shapes, a configuration patch that lost a race, an agent still loading after its
//! creation, pairing — and a gateway that restarts with requests queued.

use std::time::Duration;

use serde_json::json;

use crate::dialled::{
    agent_on, answered, builder, chat, chat_reply, create_gateway, status, wait_state, SimGateway,
};
use crate::fixtures::{h5_socket, h5_user};
use crate::harness::eventually;

const ROOT: &str = "/srv/sim";

#[actix_web::test]
async fn a_simulated_gateway_is_checked_dialled_provisioned_and_chats() {
    // Every config.patch races once, and new agents take 800 ms to load.
    let sim = SimGateway::start(&["--stale-config-patches", "2", "--hot-reload-ms", "800"]);
    let server = builder().start().await;
    let url = sim.url("office");

    let checked = status(&server, &url, &sim.token).await;
    assert_eq!(checked["connected"], true, "{checked}");
    let refused = status(&server, &url, "wrong-token-xxxxxxxxxxxxxxxxx").await;
    assert_eq!(refused["connected"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("AUTH_TOKEN_MISMATCH"),
        "{refused}"
    );

    let gateway = create_gateway(&server, &url, &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    let connected = wait_state(&server, id, "connected", Duration::from_secs(20)).await;
    assert_eq!(connected["gateway_version"], "2026.9.6-sim");
    assert_eq!(connected["gateway_protocol"], 4);
    assert_eq!(connected["status"], "online");

    let (board, agent) = agent_on(&server, &gateway).await;
    let agent_id = agent["id"].as_str().unwrap();
    let created = answered(&server, id, agent_id, "agents.create").await;
    assert_eq!(created["status"], "done", "{created}");
    let written = &created["result"]["files"]["written"];
    assert!(
        written
            .as_array()
            .is_some_and(|w| w.iter().any(|f| f == "SOUL.md")),
        "{created}"
    );

    let user = h5_user(&server, &board, &agent, "alice").await;
    let mut ws = h5_socket(&server, &user).await;
    chat_reply(&mut ws, &agent, "local-1", "hello simulator").await;
    chat_reply(&mut ws, &agent, "local-2", "and again").await;

    // The agent's page lists its provisioning.
    let activity = server.admin_get("/api/v1/activity").await.json;
    let events: Vec<&str> = activity["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["agent_id"] == agent["id"])
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"agent.provision.requested"), "{events:?}");
    assert!(events.contains(&"agent.provision.direct"), "{events:?}");

    // One stored reply per message: one connection, one listener.
    let replies: i64 = server
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM h5_chat_messages WHERE role = 'assistant'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(replies, 2);
}

#[actix_web::test]
async fn protocol_3_shapes_and_refusals_are_each_a_state_of_their_own() {
    let v3 = SimGateway::start(&["--protocol", "3", "--version", "2026.4.1-sim"]);
    let server = builder().start().await;
    let gateway = create_gateway(&server, &v3.url("v3"), &v3.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    let connected = wait_state(&server, id, "connected", Duration::from_secs(20)).await;
    assert_eq!(connected["gateway_protocol"], 3);
    let (board, agent) = agent_on(&server, &gateway).await;
    answered(&server, id, agent["id"].as_str().unwrap(), "agents.create").await;
    let user = h5_user(&server, &board, &agent, "bob").await;
    let mut ws = h5_socket(&server, &user).await;
    chat_reply(&mut ws, &agent, "local-1", "protocol three").await;

    // A gateway that speaks no protocol of ours, and a wrong token.
    let v5 = SimGateway::start(&["--protocol", "5"]);
    let future = create_gateway(&server, &v5.url("v5"), &v5.token, ROOT).await;
    let mismatch = wait_state(
        &server,
        future["id"].as_str().unwrap(),
        "protocol_mismatch",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        mismatch["connection_message"]
            .as_str()
            .unwrap()
            .contains("PROTOCOL_MISMATCH"),
        "{mismatch}"
    );
    let wrong = create_gateway(
        &server,
        &v3.url("other"),
        "not-the-token-xxxxxxxxxxxx",
        ROOT,
    )
    .await;
    wait_state(
        &server,
        wrong["id"].as_str().unwrap(),
        "auth_failed",
        Duration::from_secs(20),
    )
    .await;
}

#[actix_web::test]
async fn a_chat_for_an_agent_the_gateway_lacks_is_an_error_the_user_sees() {
    let sim = SimGateway::start(&[]);
    let server = builder().start().await;
    let gateway = create_gateway(&server, &sim.url("g"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    wait_state(&server, id, "connected", Duration::from_secs(20)).await;
    let (board, agent) = agent_on(&server, &gateway).await;
    answered(&server, id, agent["id"].as_str().unwrap(), "agents.create").await;
    // Removed on the gateway behind our back.
    let device = mission_control::secrets::device::DeviceKey::from_seed(&[9u8; 32]).unwrap();
    let gateway_agent = format!("mc-{}", agent["id"].as_str().unwrap());
    crate::dialled::gateway_call(
        &sim.url("g"),
        &sim.token,
        &device,
        "agents.delete",
        json!({"agentId": gateway_agent, "deleteFiles": true}),
    )
    .await
    .unwrap();
    let user = h5_user(&server, &board, &agent, "carol").await;
    let mut ws = h5_socket(&server, &user).await;
    let (frame, _) = chat(&mut ws, &agent, "local-1", "anyone?").await;
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["payload"]["code"], "AGENT_ERROR", "{frame}");
    let message_id = frame["payload"]["message_id"].clone();
    assert!(message_id.is_string(), "{frame}");
    // The shipped app shows only replies: the reason comes as one, stored for resume.
    let notice = next_reply(&mut ws).await;
    assert!(
        notice["payload"]["content"]
            .as_str()
            .unwrap()
            .starts_with("The agent could not answer"),
        "{notice}"
    );
    assert_eq!(notice["payload"]["reply_to"], message_id, "{notice}");
    assert!(notice["payload"]["error"].is_string(), "{notice}");
}

#[actix_web::test]
async fn a_gateway_that_grants_too_few_scopes_is_not_connected() {
    let sim = SimGateway::start(&["--grant-scopes", "operator.read"]);
    let server = builder().start().await;
    let gateway = create_gateway(&server, &sim.url("g"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    let refused = wait_state(&server, id, "missing_scopes", Duration::from_secs(20)).await;
    assert!(
        refused["connection_message"]
            .as_str()
            .unwrap()
            .contains("operator.admin"),
        "{refused}"
    );
    assert_eq!(refused["status"], "offline");
}

#[actix_web::test]
async fn pairing_is_shown_with_its_request_and_connects_once_approved() {
    let sim = SimGateway::start(&["--pairing"]);
    let server = builder().start().await;
    let gateway = create_gateway(&server, &sim.url("remote"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    let pending = wait_state(&server, id, "pairing_required", Duration::from_secs(20)).await;
    let request = pending["pairing_request_id"].as_str().unwrap().to_string();
    assert_eq!(
        pending["pairing_command"],
        format!("openclaw devices approve {request}")
    );
    let activity = server.admin_get("/api/v1/activity").await.json;
    assert!(
        activity.to_string().contains(&request),
        "the pairing request is in the activity: {activity}"
    );
    sim.approve(&request).await;
    wait_state(&server, id, "connected", Duration::from_secs(20)).await;
    let kept = || async {
        server
            .db
            .client()
            .await
            .query_one(
                "SELECT device_token IS NOT NULL FROM gateways WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    assert!(eventually(Duration::from_secs(5), kept).await);
}

#[actix_web::test]
async fn requests_made_while_the_gateway_restarts_are_carried_out_once_it_is_back() {
    let mut sim = SimGateway::start(&[]);
    let port = sim.port;
    let server = builder().start().await;
    let gateway = create_gateway(&server, &sim.url("g"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    wait_state(&server, id, "connected", Duration::from_secs(20)).await;

    sim.kill();
    wait_state(&server, id, "unreachable", Duration::from_secs(20)).await;
    let (board, agent) = agent_on(&server, &gateway).await;
    let user = h5_user(&server, &board, &agent, "dave").await;
    let mut ws = h5_socket(&server, &user).await;
    ws.send(json!({"type": "chat", "id": "local-1",
                   "payload": {"agent_id": agent["id"], "content": "while you were away"}}))
        .await;
    let offline = loop {
        match ws.next(Duration::from_secs(10)).await {
            crate::harness::WsEvent::Json(frame) if frame["type"] == "error" => break frame,
            crate::harness::WsEvent::Json(_) => continue,
            other => panic!("waiting for GATEWAY_OFFLINE: {other:?}"),
        }
    };
    assert_eq!(offline["payload"]["code"], "GATEWAY_OFFLINE", "{offline}");

    let _back = SimGateway::start_on(port, &[]);
    wait_state(&server, id, "connected", Duration::from_secs(30)).await;
    let created = answered(&server, id, agent["id"].as_str().unwrap(), "agents.create").await;
    assert_eq!(created["status"], "done", "{created}");
    // The message held while the gateway was away reaches the agent, after the agent.
    let reply = next_reply(&mut ws).await;
    assert!(
        reply["payload"]["content"]
            .as_str()
            .unwrap()
            .contains("while you were away"),
        "{reply}"
    );
    chat_reply(&mut ws, &agent, "local-2", "and now").await;
}

async fn next_reply(ws: &mut crate::harness::WsClient) -> serde_json::Value {
    loop {
        match ws.next(Duration::from_secs(30)).await {
            crate::harness::WsEvent::Json(frame) if frame["type"] == "chat_reply" => return frame,
            crate::harness::WsEvent::Json(frame) if frame["type"] == "error" => {
                panic!("{frame}")
            }
            crate::harness::WsEvent::Json(_) => continue,
            other => panic!("waiting for a reply: {other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_message_to_an_agent_still_being_created_waits_for_it() {
    // The gateway takes 2 s to load a new agent; the user writes at once.
    let sim = SimGateway::start(&["--hot-reload-ms", "2000"]);
    let server = builder().start().await;
    let gateway = create_gateway(&server, &sim.url("g"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    wait_state(&server, id, "connected", Duration::from_secs(20)).await;
    let (board, agent) = agent_on(&server, &gateway).await;
    let user = h5_user(&server, &board, &agent, "frank").await;
    let mut ws = h5_socket(&server, &user).await;
    chat_reply(&mut ws, &agent, "local-1", "are you there yet?").await;
}

/// Two instances; every kind of request reaches the one connection, wherever it was made:
/// reads answered across instances, an agent's update, a message to a session, a deletion.
#[actix_web::test]
async fn every_request_reaches_the_gateway_through_its_one_owner() {
    use awc::http::Method;
    let sim = SimGateway::start(&[]);
    let a = builder().env("INSTANCE_ID", "inst-a").start().await;
    let b = builder().env("INSTANCE_ID", "inst-b").start_on(&a).await;
    let gateway = create_gateway(&a, &sim.url("g"), &sim.token, ROOT).await;
    let id = gateway["id"].as_str().unwrap();
    wait_state(&a, id, "connected", Duration::from_secs(20)).await;
    let (board, agent) = agent_on(&a, &gateway).await;
    let agent_id = agent["id"].as_str().unwrap();
    answered(&a, id, agent_id, "agents.create").await;
    let board_id = board["id"].as_str().unwrap();
    let session = format!("agent:mc-{agent_id}:main");

    // Reads, from both instances (only one holds the connection).
    for server in [&a, &b] {
        let status = server
            .admin_get(&format!("/api/v1/gateways/status?board_id={board_id}"))
            .await;
        assert_eq!(status.json["connected"], true, "{}", status.text);
        let sessions = server
            .admin_get(&format!("/api/v1/gateways/sessions?board_id={board_id}"))
            .await;
        assert_eq!(sessions.status, 200, "{}", sessions.text);
    }
    let sent = crate::fixtures::send(
        &b,
        Method::POST,
        &format!("/api/v1/gateways/sessions/{session}/message?board_id={board_id}"),
        json!({"content": "a word from the admin"}),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let history = || async {
        let reply = a
            .admin_get(&format!(
                "/api/v1/gateways/sessions/{session}/history?board_id={board_id}"
            ))
            .await;
        reply.text.contains("You said: a word from the admin")
    };
    assert!(eventually(Duration::from_secs(20), history).await);

    let renamed = crate::fixtures::send(
        &b,
        Method::PATCH,
        &format!("/api/v1/agents/{agent_id}"),
        json!({"name": "Ada Lovelace"}),
    )
    .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let updated = answered(&a, id, agent_id, "agents.update").await;
    assert_eq!(updated["status"], "done", "{updated}");

    let deleted = b
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{agent_id}"),
            Some(crate::harness::ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let device = mission_control::secrets::device::DeviceKey::from_seed(&[5u8; 32]).unwrap();
    let gone = || async {
        crate::dialled::gateway_call(
            &sim.url("g"),
            &sim.token,
            &device,
            "agents.files.list",
            json!({"agentId": format!("mc-{agent_id}")}),
        )
        .await
        .is_err()
    };
    assert!(
        eventually(Duration::from_secs(20), gone).await,
        "the agent is still on the gateway"
    );
}
