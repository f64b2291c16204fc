//! Requests to gateways over their relay links (docs/gateway-protocol.md §7): recorded,
//! delivered when the link comes up, re-sent with backoff, answered across instances.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{activity, create_group, link, registered};
use crate::fixtures::{
    create_agent, create_board, create_gateway, delete, send, switch_to_new_org,
};
use crate::harness::{eventually, Reply, Server, WsClient, WsEvent, ADMIN_TOKEN};

/// The next `rpc.request` on the link.
async fn request(ws: &mut WsClient) -> Value {
    loop {
        match ws.next(Duration::from_secs(10)).await {
            WsEvent::Json(frame) if frame["type"] == "rpc.request" => return frame,
            WsEvent::Json(_) => continue,
            other => panic!("expected an rpc.request, got {other:?}"),
        }
    }
}

pub async fn answer(ws: &mut WsClient, frame: &Value, payload: Value) {
    ws.send(json!({"type": "rpc.result", "id": frame["id"], "payload": payload}))
        .await;
}

/// Answers every request `ok` until one with `method` comes, which is returned unanswered.
pub async fn until_method(ws: &mut WsClient, method: &str) -> Value {
    loop {
        let frame = request(ws).await;
        if frame["payload"]["method"] == method {
            return frame;
        }
        answer(ws, &frame, json!({"ok": true, "result": {}})).await;
    }
}

/// The next `n` notices on the link (answering each), sorted by recipient.
pub async fn notices(ws: &mut WsClient, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..n {
        let frame = until_method(ws, "sessions.send").await;
        answer(ws, &frame, json!({"ok": true, "result": {}})).await;
        got.push(frame["payload"]["params"].clone());
    }
    got.sort_by_key(|p| p["label"].as_str().unwrap_or_default().to_string());
    got
}

pub fn labels(notices: &[Value]) -> Vec<&str> {
    notices
        .iter()
        .map(|n| n["label"].as_str().unwrap())
        .collect()
}

pub fn message(notice: &Value) -> &str {
    notice["message"].as_str().unwrap()
}

pub async fn requests(server: &Server, gateway: &str) -> Vec<Value> {
    let reply = server
        .admin_get(&format!("/api/v1/gateways/{gateway}/requests"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json.as_array().unwrap().clone()
}

async fn pending_requests(server: &Server, gateway: &str) -> i64 {
    let read = server
        .admin_get(&format!("/api/v1/gateways/{gateway}"))
        .await;
    read.json["pending_requests"].as_i64().unwrap()
}

async fn status_of(server: &Server, gateway: &str, id: &Value) -> Option<String> {
    requests(server, gateway)
        .await
        .into_iter()
        .find(|r| r["id"] == *id)
        .and_then(|r| r["status"].as_str().map(str::to_string))
}

/// An admin-created gateway (with its main agent) and a board on it; the gateway is not
/// linked yet. Returns (gateway, board).
pub async fn office(server: &Server) -> (Value, Value) {
    let gateway = create_gateway(server, "Office").await;
    let board = create_board(server, &gateway, "Ops", json!({})).await;
    (gateway, board)
}

/// The same gateway registering (same name) and linking.
pub async fn connect(server: &Server) -> WsClient {
    let (gateway, relay_token) = registered(server, "Office").await;
    link(server, &gateway, &relay_token).await
}

async fn healthz(server: &Server, token: &str) -> Reply {
    server
        .raw(
            Method::GET,
            "/api/v1/agent/healthz",
            None,
            None,
            &[("X-Agent-Token", token)],
        )
        .await
        .unwrap()
}

#[actix_web::test]
async fn provisioning_made_while_offline_is_delivered_when_the_link_comes_up() {
    let server = Server::start().await;
    let (gateway, board) = office(&server).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    let created = create_agent(&server, &board, "Worker").await;
    assert_eq!(created.status, 200, "{}", created.text);
    let admin_token = created.json["agent_token"].as_str().unwrap().to_string();
    let recorded = requests(&server, gateway_id).await;
    assert_eq!(recorded.len(), 2, "main agent and worker: {recorded:?}");
    assert!(recorded.iter().all(|r| r["status"] == "pending"));
    // What the console reads while the gateway is away: the agent is provisioning, the
    // gateway has two requests waiting, the activity says they were asked for.
    assert_eq!(created.json["status"], "provisioning");
    assert_eq!(pending_requests(&server, gateway_id).await, 2);
    assert_eq!(
        activity(&server, "agent.provision.requested").await.len(),
        2
    );

    let mut ws = connect(&server).await;
    // Oldest first: the main agent (made with the gateway), then the worker.
    let main = request(&mut ws).await;
    assert_eq!(main["payload"]["method"], "agents.create");
    assert_eq!(main["payload"]["params"]["is_gateway_main"], true);
    let worker = request(&mut ws).await;
    assert_eq!(worker["payload"]["method"], "agents.create");
    assert_eq!(worker["attempt"], 1);
    let params = &worker["payload"]["params"];
    assert_eq!(params["agent_id"], created.json["id"]);
    assert_eq!(params["name"], "Worker");
    assert_eq!(
        params["session_key"],
        format!("agent:mc-{}:main", created.json["id"].as_str().unwrap())
    );
    // The gateway's token works, and so does the one shown to the admin; neither is stored.
    let gateway_token = params["auth_token"].as_str().unwrap().to_string();
    assert_ne!(gateway_token, admin_token);
    assert_eq!(healthz(&server, &gateway_token).await.status, 200);
    assert_eq!(healthz(&server, &admin_token).await.status, 200);
    let stored = requests(&server, gateway_id).await;
    assert!(!stored
        .iter()
        .any(|r| r.to_string().contains(&gateway_token)));

    answer(&mut ws, &main, json!({"ok": true, "result": {}})).await;
    answer(&mut ws, &worker, json!({"ok": false, "error": "disk full"})).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&server, gateway_id, &main["id"]).await.as_deref() == Some("done")
                && status_of(&server, gateway_id, &worker["id"])
                    .await
                    .as_deref()
                    == Some("failed")
        })
        .await
    );
    let failed = requests(&server, gateway_id)
        .await
        .into_iter()
        .find(|r| r["id"] == worker["id"])
        .unwrap();
    assert_eq!(failed["error"], "disk full");
    assert_eq!(
        activity(&server, "agent.provision.failed").await,
        ["Provision message failed: disk full"]
    );
    assert_eq!(pending_requests(&server, gateway_id).await, 0);

    // Deleting the agent asks the gateway to remove it, right away now that it is linked.
    let agent_id = created.json["id"].as_str().unwrap();
    let deleted = server
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{agent_id}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    let removal = request(&mut ws).await;
    assert_eq!(removal["payload"]["method"], "agents.delete");
    assert_eq!(removal["payload"]["params"]["agent_id"], agent_id);
    assert!(removal["payload"]["params"].get("auth_token").is_none());
    assert_eq!(
        activity(&server, "agent.delete.requested").await,
        ["Delete requested for Worker; its gateway removes it when it takes the request."]
    );
    answer(
        &mut ws,
        &removal,
        json!({"ok": false, "error": "workspace locked"}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            activity(&server, "agent.delete.failed").await
                == ["Delete message failed: workspace locked"]
        })
        .await
    );
}

#[actix_web::test]
async fn unanswered_requests_are_sent_again_with_backoff_then_given_up() {
    let server = Server::builder()
        .env("GATEWAY_COMMAND_RETRY_SECONDS", "1")
        .env("GATEWAY_COMMAND_MAX_ATTEMPTS", "2")
        .start()
        .await;
    let (gateway, _) = office(&server).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    let mut ws = connect(&server).await;
    let first = request(&mut ws).await;
    assert_eq!(first["attempt"], 1);
    let again = request(&mut ws).await;
    assert_eq!(again["id"], first["id"], "the same request, not a new one");
    assert_eq!(again["attempt"], 2);
    // Both sends were unanswered: after the second wait it is recorded as failed.
    assert!(
        eventually(Duration::from_secs(8), || async {
            status_of(&server, gateway_id, &first["id"])
                .await
                .as_deref()
                == Some("failed")
        })
        .await
    );
    let failed = requests(&server, gateway_id).await;
    assert_eq!(failed[0]["error"], "no answer after 2 attempts");
    assert_eq!(failed[0]["attempts"], 2);
    // The give-up is in the activity the console shows.
    assert_eq!(
        activity(&server, "agent.provision.failed").await,
        ["Provision message failed: no answer after 2 attempts"]
    );
    // A late answer to a closed request is ignored.
    answer(&mut ws, &first, json!({"ok": true})).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_of(&server, gateway_id, &first["id"])
            .await
            .as_deref(),
        Some("failed")
    );
}

#[actix_web::test]
async fn session_reads_reach_a_gateway_linked_to_another_instance() {
    let server = Server::start().await;
    let other = server.second_instance().await;
    let (_, board) = office(&server).await;
    let board_id = board["id"].as_str().unwrap().to_string();
    let mut ws = connect(&other).await;

    let base = server.base.clone();
    let call = |path: String| {
        let base = base.clone();
        actix_web::rt::spawn(async move {
            let mut res = awc::Client::new()
                .get(format!("{base}{path}"))
                .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
                .send()
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (res.status().as_u16(), body)
        })
    };
    let pending = call(format!("/api/v1/gateways/sessions?board_id={board_id}"));
    let list = until_method(&mut ws, "sessions.list").await;
    answer(
        &mut ws,
        &list,
        json!({"ok": true, "result": {"sessions": [{"key": "agent:a:main"}, "not an object"]}}),
    )
    .await;
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions"], json!([{"key": "agent:a:main"}]));
    assert_eq!(body["main_session"], Value::Null);

    let pending = call(format!(
        "/api/v1/gateways/sessions/agent:a:main/history?board_id={board_id}"
    ));
    let history = until_method(&mut ws, "chat.history").await;
    assert_eq!(history["payload"]["params"]["session_key"], "agent:a:main");
    answer(
        &mut ws,
        &history,
        json!({"ok": true, "result": {"messages": [{"role": "user", "content": "hi"}]}}),
    )
    .await;
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["history"][0]["content"], "hi");

    // The gateway's error answers 502 with its message.
    let pending = call(format!(
        "/api/v1/gateways/sessions/agent:a:main?board_id={board_id}"
    ));
    let list = until_method(&mut ws, "sessions.list").await;
    answer(&mut ws, &list, json!({"ok": false, "error": "locked"})).await;
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["detail"], "Gateway error: locked");
}

#[actix_web::test]
async fn reads_from_a_gateway_that_is_away_or_silent() {
    let server = Server::builder()
        .env("GATEWAY_RPC_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    let (gateway, board) = office(&server).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    let board_id = board["id"].as_str().unwrap();

    let status = server
        .admin_get(&format!("/api/v1/gateways/status?board_id={board_id}"))
        .await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["connected"], false);
    assert_eq!(status.json["gateway_url"], gateway["url"]);
    assert_eq!(status.json["error"], "Gateway is not connected.");
    let sessions = server
        .admin_get(&format!("/api/v1/gateways/sessions?board_id={board_id}"))
        .await;
    assert_eq!(sessions.status, 502, "{}", sessions.text);
    // Status by URL; the other views need a board.
    let by_url = server
        .admin_get("/api/v1/gateways/status?gateway_url=ws://127.0.0.1:9")
        .await;
    assert_eq!(by_url.status, 200, "{}", by_url.text);
    assert_eq!(
        server.admin_get("/api/v1/gateways/status").await.status,
        422
    );
    assert_eq!(
        server
            .admin_get("/api/v1/gateways/sessions?gateway_url=ws://127.0.0.1:9")
            .await
            .status,
        422
    );
    assert_eq!(server.get("/api/v1/gateways/status").await.status, 401);

    // Linked but silent: the read times out, and the request is closed as such.
    let _ws = connect(&server).await;
    let silent = server
        .admin_get(&format!("/api/v1/gateways/sessions?board_id={board_id}"))
        .await;
    assert_eq!(silent.status, 502, "{}", silent.text);
    assert_eq!(silent.json["detail"], "Gateway did not answer within 1 s.");
    let read = requests(&server, gateway_id)
        .await
        .into_iter()
        .find(|r| r["method"] == "sessions.list")
        .unwrap();
    assert_eq!(read["status"], "timeout");

    // Another organization's board and gateway are not found.
    switch_to_new_org(&server).await;
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/gateways/status?board_id={board_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        server
            .admin_get(&format!("/api/v1/gateways/{gateway_id}/requests"))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn bad_answers_get_errors_and_foreign_answers_are_ignored() {
    let server = Server::start().await;
    let (gateway, _) = office(&server).await;
    let mut ws = connect(&server).await;
    let main = request(&mut ws).await;

    ws.send(json!({"type": "rpc.result", "payload": {"ok": true}}))
        .await;
    let error = ws.expect_answer().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["payload"]["code"], "MISSING_FIELDS");
    ws.send(json!({"type": "rpc.result", "id": main["id"], "payload": {"result": 1}}))
        .await;
    assert_eq!(
        ws.expect_answer().await["payload"]["code"],
        "MISSING_FIELDS"
    );

    // Another gateway cannot answer this gateway's request.
    let other = create_gateway(&server, "Branch").await;
    let (branch, relay_token) = registered(&server, "Branch").await;
    assert_eq!(branch, other["id"].as_str().unwrap());
    let mut intruder = link(&server, &branch, &relay_token).await;
    answer(
        &mut intruder,
        &main,
        json!({"ok": false, "error": "hijacked"}),
    )
    .await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    assert_eq!(
        status_of(&server, gateway_id, &main["id"]).await.as_deref(),
        Some("sent")
    );
}

#[actix_web::test]
async fn template_syncs_are_requested_per_agent() {
    let server = Server::start().await;
    let (gateway, board) = office(&server).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    for name in ["Worker", "Helper"] {
        assert_eq!(create_agent(&server, &board, name).await.status, 200);
    }
    let path = format!("/api/v1/gateways/{gateway_id}/templates/sync");
    let all = send(&server, Method::POST, &path, json!(null)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(
        all.json,
        json!({"gateway_id": gateway_id, "include_main": true, "reset_sessions": false,
               "agents_updated": 2, "agents_skipped": 0, "main_updated": true, "errors": []})
    );
    let leads = send(
        &server,
        Method::POST,
        &format!("{path}?include_main=false&lead_only=true&reset_sessions=true&rotate_tokens=true"),
        json!(null),
    )
    .await;
    assert_eq!(leads.json["agents_updated"], 0);
    assert_eq!(leads.json["agents_skipped"], 2);
    assert_eq!(leads.json["main_updated"], false);
    let syncs: Vec<Value> = requests(&server, gateway_id)
        .await
        .into_iter()
        .filter(|r| r["method"] == "agents.templates.sync")
        .collect();
    assert_eq!(syncs.len(), 3);

    // Sent when the gateway links, with a token only when asked to rotate.
    let mut ws = connect(&server).await;
    let sync = until_method(&mut ws, "agents.templates.sync").await;
    assert_eq!(sync["payload"]["params"]["rotate_token"], false);
    assert!(sync["payload"]["params"].get("auth_token").is_none());

    let elsewhere = create_board(
        &server,
        &create_gateway(&server, "Else").await,
        "Else",
        json!({}),
    )
    .await;
    let wrong_board = send(
        &server,
        Method::POST,
        &format!("{path}?board_id={}", elsewhere["id"].as_str().unwrap()),
        json!(null),
    )
    .await;
    assert_eq!(wrong_board.status, 422, "{}", wrong_board.text);
    switch_to_new_org(&server).await;
    assert_eq!(
        send(&server, Method::POST, &path, json!(null)).await.status,
        404
    );
}

#[actix_web::test]
async fn group_moves_tell_the_groups_agents_and_board_deletion_removes_its_agents() {
    let server = Server::start().await;
    let (gateway, ops) = office(&server).await;
    let gateway_id = gateway["id"].as_str().unwrap();
    let worker = create_agent(&server, &ops, "Worker").await.json;
    let group = create_group(&server, "Launch").await;
    let dev = create_board(
        &server,
        &gateway,
        "Dev",
        json!({"board_group_id": group["id"]}),
    )
    .await;
    create_agent(&server, &dev, "Builder").await;
    let mut ws = connect(&server).await;

    let ops_path = format!("/api/v1/boards/{}", ops["id"].as_str().unwrap());
    let moved = send(
        &server,
        Method::PATCH,
        &ops_path,
        json!({"board_group_id": group["id"]}),
    )
    .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    let mut told = Vec::new();
    for _ in 0..2 {
        let frame = until_method(&mut ws, "sessions.send").await;
        answer(&mut ws, &frame, json!({"ok": true, "result": {}})).await;
        told.push(frame["payload"]["params"].clone());
    }
    told.sort_by_key(|p| p["label"].as_str().unwrap().to_string());
    assert_eq!(told[0]["label"], "Builder");
    assert_eq!(told[1]["label"], "Worker");
    assert_eq!(told[0]["kind"], "board_group_join");
    let to_builder = told[0]["message"].as_str().unwrap();
    assert!(
        to_builder.starts_with(&format!(
            "BOARD GROUP UPDATED\nJoined Board: Ops\nJoined Board ID: {}\nRecipient Board: Dev\n",
            ops["id"].as_str().unwrap()
        )),
        "{to_builder}"
    );
    assert!(to_builder.contains("Board Group: Launch\n"));
    assert!(told[1]["message"]
        .as_str()
        .unwrap()
        .contains("Recipient Board: Ops\n"));
    let db = server.db.client().await;
    let notified: i64 = db
        .query_one(
            "SELECT count(*) FROM activity_events WHERE event_type = 'board.group.join.notified'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(notified, 2);

    // Leaving tells both boards' agents again; a patch that keeps the group tells no one.
    send(
        &server,
        Method::PATCH,
        &ops_path,
        json!({"board_group_id": null}),
    )
    .await;
    let left = until_method(&mut ws, "sessions.send").await;
    assert_eq!(left["payload"]["params"]["kind"], "board_group_leave");
    assert!(left["payload"]["params"]["message"]
        .as_str()
        .unwrap()
        .contains("Left Board: Ops\n"));
    answer(&mut ws, &left, json!({"ok": true, "result": {}})).await;
    let second = until_method(&mut ws, "sessions.send").await;
    answer(&mut ws, &second, json!({"ok": true, "result": {}})).await;
    send(
        &server,
        Method::PATCH,
        &ops_path,
        json!({"description": "Still alone"}),
    )
    .await;

    // Deleting a board asks its gateway to remove each of its agents.
    assert_eq!(delete(&server, &ops_path).await.status, 200);
    let removal = until_method(&mut ws, "agents.delete").await;
    assert_eq!(removal["payload"]["params"]["agent_id"], worker["id"]);
    assert_eq!(
        removal["payload"]["params"]["session_key"],
        format!("agent:mc-{}:main", worker["id"].as_str().unwrap())
    );
    let notices = requests(&server, gateway_id)
        .await
        .into_iter()
        .filter(|r| r["method"] == "sessions.send")
        .count();
    assert_eq!(
        notices, 4,
        "two joins and two leaves, nothing for the unchanged patch"
    );
}
