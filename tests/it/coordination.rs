//! Coordination through the gateways (domain.md §A19): nudges, ask-user, lead messages and
//! broadcasts, a lead deleting a worker, and inbound webhooks handed to the board's agent.
//! The test plays the gateway: it registers one, opens its relay link and answers (or
//! not) the `rpc.request` frames the server sends there.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    activity, agent, as_agent, create_board, link, make_lead, new_board, registered, send, sign,
    switch_to_new_org,
};
use crate::harness::{eventually, Reply, Server, WsClient, WsEvent};

/// A registered gateway with a board on it, a lead and a worker with their tokens.
struct Office {
    gateway: String,
    relay_token: String,
    board: Value,
    lead: Value,
    lead_token: String,
    worker: Value,
    worker_token: String,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..8])
}

async fn office(server: &Server) -> Office {
    let (gateway, relay_token) = registered(server, &unique("Office")).await;
    let board = create_board(server, &json!({"id": gateway}), &unique("Ops"), json!({})).await;
    let (lead, lead_token) = agent(server, &board, "Lead").await;
    make_lead(server, &lead).await;
    let (worker, worker_token) = agent(server, &board, "Worker").await;
    Office {
        gateway,
        relay_token,
        board,
        lead,
        lead_token,
        worker,
        worker_token,
    }
}

/// The gateway-main agent of `gateway`, given a token (an admin update shows a new one).
async fn main_agent(server: &Server, gateway: &str) -> (Value, String) {
    let gateway: Uuid = gateway.parse().unwrap();
    let id: Uuid = server
        .db
        .client()
        .await
        .query_one(
            "SELECT id FROM agents WHERE gateway_id = $1 AND board_id IS NULL",
            &[&gateway],
        )
        .await
        .unwrap()
        .get(0);
    let reply = send(
        server,
        Method::PATCH,
        &format!("/api/v1/agents/{id}"),
        json!({"name": "Main"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let token = reply.json["agent_token"].as_str().unwrap().to_string();
    (reply.json, token)
}

fn path(board: &Value, rest: &str) -> String {
    format!(
        "/api/v1/agent/boards/{}{rest}",
        board["id"].as_str().unwrap()
    )
}

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

/// The next `rpc.request` for `method` on the link (other frames are skipped).
async fn next_request(ws: &mut WsClient, method: &str) -> Value {
    loop {
        match ws.next(Duration::from_secs(10)).await {
            WsEvent::Json(frame)
                if frame["type"] == "rpc.request" && frame["payload"]["method"] == method =>
            {
                return frame
            }
            WsEvent::Json(_) => continue,
            other => panic!("expected an rpc.request {method}, got {other:?}"),
        }
    }
}

async fn answer(ws: &mut WsClient, request: &Value) {
    ws.send(json!({"type": "rpc.result", "id": request["id"], "payload": {"ok": true, "result": {"queued": true}}}))
        .await;
}

async fn status_of(server: &Server, request: &Value) -> String {
    let id: Uuid = request["id"].as_str().unwrap().parse().unwrap();
    server
        .db
        .client()
        .await
        .query_one("SELECT status FROM gateway_commands WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn activity_types(server: &Server) -> Vec<String> {
    server
        .db
        .column("SELECT event_type FROM activity_events", &[])
        .await
}

#[actix_web::test]
async fn a_nudge_reaches_the_agents_session_and_the_answer_closes_it() {
    let server = Server::start().await;
    let o = office(&server).await;
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let nudge = path(
        &o.board,
        &format!("/agents/{}/nudge", o.worker["id"].as_str().unwrap()),
    );

    let reply = as_agent(
        &server,
        &o.lead_token,
        Method::POST,
        &nudge,
        Some(json!({"message": "  Task 7 is stale, report please.  "})),
    )
    .await;
    assert_eq!(ok(reply), json!({"ok": true}));
    let request = next_request(&mut ws, "sessions.send").await;
    assert_eq!(request["attempt"], 1);
    let params = &request["payload"]["params"];
    assert_eq!(params["session_key"], o.worker["openclaw_session_id"]);
    assert_eq!(params["message"], "Task 7 is stale, report please.");
    assert_eq!(params["kind"], "nudge");
    assert_eq!(status_of(&server, &request).await, "sent");
    answer(&mut ws, &request).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&server, &request).await == "done"
        })
        .await
    );
    assert!(activity_types(&server)
        .await
        .contains(&"agent.nudge.sent".to_string()));

    // A worker may not nudge; bad bodies, unknown agents and other boards are refused.
    let body = Some(json!({"message": "hi"}));
    assert_eq!(
        as_agent(&server, &o.worker_token, Method::POST, &nudge, body.clone())
            .await
            .status,
        403
    );
    assert_eq!(
        server
            .raw(
                Method::POST,
                &nudge,
                None,
                Some(r#"{"message": "hi"}"#),
                &[]
            )
            .await
            .unwrap()
            .status,
        401
    );
    for bad in [json!({"message": "   "}), json!({})] {
        assert_eq!(
            as_agent(&server, &o.lead_token, Method::POST, &nudge, Some(bad))
                .await
                .status,
            422
        );
    }
    let ghost = path(&o.board, &format!("/agents/{}/nudge", Uuid::new_v4()));
    assert_eq!(
        as_agent(&server, &o.lead_token, Method::POST, &ghost, body.clone())
            .await
            .status,
        404
    );
    let other = new_board(&server, json!({})).await;
    let (stranger, _) = agent(&server, &other, "Stranger").await;
    let elsewhere = path(
        &o.board,
        &format!("/agents/{}/nudge", stranger["id"].as_str().unwrap()),
    );
    assert_eq!(
        as_agent(
            &server,
            &o.lead_token,
            Method::POST,
            &elsewhere,
            body.clone()
        )
        .await
        .status,
        404
    );
    let foreign = path(
        &other,
        &format!("/agents/{}/nudge", stranger["id"].as_str().unwrap()),
    );
    assert_eq!(
        as_agent(&server, &o.lead_token, Method::POST, &foreign, body.clone())
            .await
            .status,
        403
    );
    // Another organization's board is not found.
    switch_to_new_org(&server).await;
    let theirs = new_board(&server, json!({})).await;
    let (their_agent, _) = agent(&server, &theirs, "Theirs").await;
    let across = path(
        &theirs,
        &format!("/agents/{}/nudge", their_agent["id"].as_str().unwrap()),
    );
    assert_eq!(
        as_agent(&server, &o.lead_token, Method::POST, &across, body)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn an_unanswered_request_is_sent_again() {
    let server = Server::builder()
        .env("GATEWAY_COMMAND_RETRY_SECONDS", "1")
        .start()
        .await;
    let o = office(&server).await;
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let nudge = path(
        &o.board,
        &format!("/agents/{}/nudge", o.worker["id"].as_str().unwrap()),
    );
    ok(as_agent(
        &server,
        &o.lead_token,
        Method::POST,
        &nudge,
        Some(json!({"message": "ping"})),
    )
    .await);
    let first = next_request(&mut ws, "sessions.send").await;
    let again = next_request(&mut ws, "sessions.send").await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        (first["attempt"].clone(), again["attempt"].clone()),
        (json!(1), json!(2))
    );
    answer(&mut ws, &again).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&server, &again).await == "done"
        })
        .await
    );
    let id: Uuid = first["id"].as_str().unwrap().parse().unwrap();
    let outcomes: Vec<String> = server
        .db
        .column(
            "SELECT outcome FROM gateway_command_attempts WHERE command_id = $1 ORDER BY id",
            &[&id],
        )
        .await;
    assert_eq!(outcomes, ["sent", "sent", "done"]);
}

#[actix_web::test]
async fn a_nudge_made_while_the_gateway_is_away_arrives_when_it_links() {
    let server = Server::start().await;
    let o = office(&server).await;
    let nudge = path(
        &o.board,
        &format!("/agents/{}/nudge", o.worker["id"].as_str().unwrap()),
    );
    ok(as_agent(
        &server,
        &o.lead_token,
        Method::POST,
        &nudge,
        Some(json!({"message": "while you were out"})),
    )
    .await);
    let pending: String = server
        .db
        .client()
        .await
        .query_one(
            "SELECT status FROM gateway_commands WHERE method = 'sessions.send'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, "pending");

    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let request = next_request(&mut ws, "sessions.send").await;
    assert_eq!(
        request["payload"]["params"]["message"],
        "while you were out"
    );
}

#[actix_web::test]
async fn ask_user_goes_to_the_gateway_main_session() {
    let server = Server::start().await;
    let o = office(&server).await;
    let (main, _) = main_agent(&server, &o.gateway).await;
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let ask = path(&o.board, "/gateway/main/ask-user");
    let body = json!({"content": " Approve the budget? ", "correlation_id": "c-1", "preferred_channel": "sms"});

    let sent = ok(as_agent(
        &server,
        &o.lead_token,
        Method::POST,
        &ask,
        Some(body.clone()),
    )
    .await);
    assert_eq!(
        sent,
        json!({"ok": true, "board_id": o.board["id"], "main_agent_id": main["id"], "main_agent_name": "Main"})
    );
    let request = next_request(&mut ws, "sessions.send").await;
    let params = &request["payload"]["params"];
    assert_eq!(
        params["session_key"],
        format!("agent:mc-gateway-{}:main", o.gateway)
    );
    let message = params["message"].as_str().unwrap();
    let board_id = o.board["id"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "LEAD REQUEST: ASK USER\nBoard: {}\nBoard ID: {board_id}\nFrom lead: Lead\n\
             Correlation ID: c-1\nPreferred channel: sms\n\nApprove the budget?\n\n",
            o.board["name"].as_str().unwrap()
        )),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "POST http://localhost:8000/api/v1/agent/boards/{board_id}/memory\n\
             Body: {{\"content\":\"<answer>\",\"tags\":[\"gateway_main\", \"user_reply\"],\"source\":\"user_via_gateway_main\"}}\n\
             Do NOT reply in OpenClaw chat."
        )),
        "{message}"
    );
    assert!(activity_types(&server)
        .await
        .contains(&"gateway.lead.ask_user.sent".to_string()));

    assert_eq!(
        as_agent(&server, &o.worker_token, Method::POST, &ask, Some(body))
            .await
            .status,
        403
    );
    assert_eq!(
        as_agent(
            &server,
            &o.lead_token,
            Method::POST,
            &ask,
            Some(json!({"content": ""}))
        )
        .await
        .status,
        422
    );
}

#[actix_web::test]
async fn a_lead_message_creates_the_missing_lead() {
    let server = Server::start().await;
    let (gateway, relay_token) = registered(&server, &unique("Office")).await;
    let board = create_board(&server, &json!({"id": gateway}), &unique("Ops"), json!({})).await;
    let (_, worker_token) = agent(&server, &board, "Worker").await;
    let (_, main_token) = main_agent(&server, &gateway).await;
    let mut ws = link(&server, &gateway, &relay_token).await;
    let board_id = board["id"].as_str().unwrap();
    let url = format!("/api/v1/agent/gateway/boards/{board_id}/lead/message");
    let body =
        json!({"kind": "handoff", "content": "Take over the launch.", "correlation_id": "h-9"});

    let sent = ok(as_agent(&server, &main_token, Method::POST, &url, Some(body.clone())).await);
    assert_eq!(sent["ok"], true);
    assert_eq!(sent["board_id"], board["id"]);
    assert_eq!(sent["lead_created"], true);
    assert_eq!(sent["lead_agent_name"], "Lead Agent");
    let lead_id: Uuid = sent["lead_agent_id"].as_str().unwrap().parse().unwrap();
    let is_lead: bool = server
        .db
        .client()
        .await
        .query_one(
            "SELECT is_board_lead FROM agents WHERE id = $1",
            &[&lead_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(is_lead);

    let request = next_request(&mut ws, "sessions.send").await;
    let params = &request["payload"]["params"];
    assert_eq!(params["session_key"], format!("agent:lead-{board_id}:main"));
    let message = params["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "GATEWAY MAIN HANDOFF\nBoard: {}\nBoard ID: {board_id}\nFrom agent: Main\n\
             Correlation ID: h-9\n\nTake over the launch.\n\n",
            board["name"].as_str().unwrap()
        )),
        "{message}"
    );

    // The lead now exists.
    let again = ok(as_agent(&server, &main_token, Method::POST, &url, Some(body.clone())).await);
    assert_eq!(
        (
            again["lead_created"].clone(),
            again["lead_agent_id"].clone()
        ),
        (json!(false), sent["lead_agent_id"].clone())
    );

    // Only the gateway-main agent, only for its gateway's boards.
    assert_eq!(
        as_agent(
            &server,
            &worker_token,
            Method::POST,
            &url,
            Some(body.clone())
        )
        .await
        .status,
        403
    );
    let other = new_board(&server, json!({})).await;
    let other_url = format!(
        "/api/v1/agent/gateway/boards/{}/lead/message",
        other["id"].as_str().unwrap()
    );
    assert_eq!(
        as_agent(
            &server,
            &main_token,
            Method::POST,
            &other_url,
            Some(body.clone())
        )
        .await
        .status,
        403
    );
    let ghost = format!(
        "/api/v1/agent/gateway/boards/{}/lead/message",
        Uuid::new_v4()
    );
    let missing = as_agent(
        &server,
        &main_token,
        Method::POST,
        &ghost,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (missing.status.as_u16(), missing.json["detail"].clone()),
        (404, json!("Board not found"))
    );
    switch_to_new_org(&server).await;
    let theirs = new_board(&server, json!({})).await;
    let across = format!(
        "/api/v1/agent/gateway/boards/{}/lead/message",
        theirs["id"].as_str().unwrap()
    );
    assert_eq!(
        as_agent(&server, &main_token, Method::POST, &across, Some(body))
            .await
            .status,
        404
    );
    assert_eq!(
        as_agent(
            &server,
            &main_token,
            Method::POST,
            &url,
            Some(json!({"kind": "gossip", "content": "x"}))
        )
        .await
        .status,
        422
    );
}

#[actix_web::test]
async fn a_broadcast_reaches_the_leads_of_the_gateways_boards() {
    let server = Server::start().await;
    let o = office(&server).await;
    let second = create_board(
        &server,
        &json!({"id": o.gateway}),
        &unique("Ops"),
        json!({}),
    )
    .await;
    let elsewhere = new_board(&server, json!({})).await;
    let (_, main_token) = main_agent(&server, &o.gateway).await;
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let url = "/api/v1/agent/gateway/leads/broadcast";

    let sent = ok(as_agent(
        &server,
        &main_token,
        Method::POST,
        url,
        Some(json!({"content": "Freeze deploys."})),
    )
    .await);
    assert_eq!(
        (
            sent["ok"].clone(),
            sent["sent"].clone(),
            sent["failed"].clone()
        ),
        (json!(true), json!(2), json!(0))
    );
    let results = sent["results"].as_array().unwrap();
    // Newest board first; the second board got a lead made for it.
    assert_eq!(results[0]["board_id"], second["id"]);
    assert_eq!(results[0]["lead_agent_name"], "Lead Agent");
    assert_eq!(results[1]["board_id"], o.board["id"]);
    assert_eq!(results[1]["lead_agent_id"], o.lead["id"]);
    assert!(results
        .iter()
        .all(|r| r["ok"] == true && r["error"].is_null()));
    let mut sessions = vec![];
    for _ in 0..2 {
        let request = next_request(&mut ws, "sessions.send").await;
        let message = request["payload"]["params"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.starts_with("GATEWAY MAIN QUESTION\n"), "{message}");
        sessions.push(request["payload"]["params"]["session_key"].clone());
    }
    assert!(sessions.contains(&json!(format!(
        "agent:lead-{}:main",
        second["id"].as_str().unwrap()
    ))));

    // Only the listed boards that are the gateway's.
    let narrowed = ok(as_agent(
        &server,
        &main_token,
        Method::POST,
        url,
        Some(json!({"content": "Only you.", "board_ids": [o.board["id"], elsewhere["id"]]})),
    )
    .await);
    assert_eq!(narrowed["sent"], 1);
    assert_eq!(narrowed["results"].as_array().unwrap().len(), 1);
    assert!(activity_types(&server)
        .await
        .contains(&"gateway.main.lead_broadcast.sent".to_string()));

    assert_eq!(
        as_agent(
            &server,
            &o.lead_token,
            Method::POST,
            url,
            Some(json!({"content": "x"}))
        )
        .await
        .status,
        403
    );
}

#[actix_web::test]
async fn a_lead_deletes_workers_but_not_leads_or_the_main_agent() {
    let server = Server::start().await;
    let o = office(&server).await;
    let (main, _) = main_agent(&server, &o.gateway).await;
    let delete_path = |agent: &Value| {
        path(
            &o.board,
            &format!("/agents/{}", agent["id"].as_str().unwrap()),
        )
    };
    let refused = as_agent(
        &server,
        &o.lead_token,
        Method::DELETE,
        &delete_path(&main),
        None,
    )
    .await;
    assert_eq!(
        (refused.status.as_u16(), refused.json["detail"].clone()),
        (403, json!("Board leads cannot delete gateway main agents"))
    );
    let refused = as_agent(
        &server,
        &o.lead_token,
        Method::DELETE,
        &delete_path(&o.lead),
        None,
    )
    .await;
    assert_eq!(
        (refused.status.as_u16(), refused.json["detail"].clone()),
        (403, json!("Board leads cannot delete lead agents"))
    );
    assert_eq!(
        as_agent(
            &server,
            &o.worker_token,
            Method::DELETE,
            &delete_path(&o.lead),
            None
        )
        .await
        .status,
        403
    );
    let other = new_board(&server, json!({})).await;
    let (stranger, _) = agent(&server, &other, "Stranger").await;
    assert_eq!(
        as_agent(
            &server,
            &o.lead_token,
            Method::DELETE,
            &delete_path(&stranger),
            None
        )
        .await
        .status,
        404
    );

    assert_eq!(
        ok(as_agent(
            &server,
            &o.lead_token,
            Method::DELETE,
            &delete_path(&o.worker),
            None
        )
        .await),
        json!({"ok": true})
    );
    assert_eq!(
        server
            .admin_get(&format!(
                "/api/v1/agents/{}",
                o.worker["id"].as_str().unwrap()
            ))
            .await
            .status,
        404
    );
    // Queued while the gateway is away (the reference answers 502): the activity and the
    // gateway's read model say so.
    let types = activity_types(&server).await;
    assert!(
        types.contains(&"agent.delete.requested".to_string()),
        "{types:?}"
    );
    assert!(
        !types.contains(&"agent.delete.direct".to_string()),
        "{types:?}"
    );
    let gateway_path = format!("/api/v1/gateways/{}", o.gateway);
    let pending = server.admin_get(&gateway_path).await.json["pending_requests"].clone();
    assert!(pending.as_i64().unwrap() >= 1, "{pending}");
    // The gateway is told to remove it when its link is up; its answer is the last word.
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let request = next_request(&mut ws, "agents.delete").await;
    assert_eq!(
        request["payload"]["params"],
        json!({"agent_id": o.worker["id"], "session_key": o.worker["openclaw_session_id"], "agent_name": o.worker["name"]})
    );
    answer(&mut ws, &request).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            status_of(&server, &request).await == "done"
        })
        .await
    );
    assert_eq!(
        activity(&server, "agent.delete.direct").await,
        [format!(
            "Deleted agent {}.",
            o.worker["name"].as_str().unwrap()
        )]
    );
}

#[actix_web::test]
async fn an_inbound_webhook_is_handed_to_the_board_lead() {
    let server = Server::start().await;
    let o = office(&server).await;
    let mut ws = link(&server, &o.gateway, &o.relay_token).await;
    let hook = ok(send(
        &server,
        Method::POST,
        &format!(
            "/api/v1/boards/{}/webhooks",
            o.board["id"].as_str().unwrap()
        ),
        json!({"description": "Triage GitHub pushes"}),
    )
    .await);
    let body = r#"{"ref":"refs/heads/main","pusher":"zoë"}"#;
    let reply = server
        .raw(
            Method::POST,
            hook["endpoint_path"].as_str().unwrap(),
            None,
            Some(body),
            &[(
                "X-Webhook-Signature",
                &sign(hook["secret"].as_str().unwrap(), body),
            )],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text);
    let payload_id = reply.json["payload_id"].as_str().unwrap().to_string();

    let request = next_request(&mut ws, "sessions.send").await;
    let params = &request["payload"]["params"];
    assert_eq!(params["session_key"], o.lead["openclaw_session_id"]);
    assert_eq!(
        (
            params["kind"].clone(),
            params["webhook_id"].clone(),
            params["payload_id"].clone()
        ),
        (json!("webhook"), hook["id"].clone(), json!(payload_id))
    );
    let message = params["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "WEBHOOK EVENT RECEIVED\nBoard: {}\nWebhook ID: {}\nPayload ID: {payload_id}\n\
             Instruction: Triage GitHub pushes\n\n",
            o.board["name"].as_str().unwrap(),
            hook["id"].as_str().unwrap()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "3) Reference payload ID {payload_id} in task descriptions."
        )),
        "{message}"
    );
    assert!(
        message.contains("Payload preview:\n{\n  \"ref\": \"refs/heads/main\",\n  \"pusher\": \"zo\\u00eb\"\n}\n\n"),
        "{message}"
    );

    answer(&mut ws, &request).await;
    let payload: Uuid = payload_id.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .db
                .client()
                .await
                .query_one(
                    "SELECT delivered_at IS NOT NULL FROM board_webhook_payloads WHERE id = $1",
                    &[&payload],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        })
        .await
    );

    // A board with nobody to tell records nothing.
    let quiet = create_board(
        &server,
        &json!({"id": o.gateway}),
        &unique("Quiet"),
        json!({}),
    )
    .await;
    let quiet_hook = ok(send(
        &server,
        Method::POST,
        &format!("/api/v1/boards/{}/webhooks", quiet["id"].as_str().unwrap()),
        json!({"description": "Nobody listens"}),
    )
    .await);
    let reply = server
        .raw(
            Method::POST,
            quiet_hook["endpoint_path"].as_str().unwrap(),
            None,
            Some(body),
            &[(
                "X-Webhook-Signature",
                &sign(quiet_hook["secret"].as_str().unwrap(), body),
            )],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text);
    let quiet_id: Uuid = quiet["id"].as_str().unwrap().parse().unwrap();
    let recorded: i64 = server
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM gateway_commands WHERE board_id = $1",
            &[&quiet_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 0);
}
