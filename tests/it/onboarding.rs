//! Board onboarding (domain.md §A20): start, answers, confirmation onto the board; the
//! prompt and answers reach the gateway agent over the relay link, and confirming
//! provisions the drafted lead.

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{new_board, send, switch_to_new_org};
use crate::gateway_requests::{answer, connect, office, until_method};
use crate::harness::{Server, WsClient};

#[actix_web::test]
async fn onboarding_records_the_conversation_and_confirms_the_goal() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let base = format!(
        "/api/v1/boards/{}/onboarding",
        board["id"].as_str().unwrap()
    );

    assert_eq!(server.admin_get(&base).await.status, 404);
    assert_eq!(server.get(&base).await.status, 401);

    let started = send(&server, Method::POST, &format!("{base}/start"), json!({})).await;
    assert_eq!(started.status, 200, "{}", started.text);
    let session = started.json.clone();
    assert_eq!(session["status"], "active");
    assert_eq!(session["board_id"], board["id"]);
    assert_eq!(
        session["session_key"],
        format!(
            "agent:mc-gateway-{}:main",
            board["gateway_id"].as_str().unwrap()
        )
    );
    assert_eq!(session["messages"][0]["role"], "user");
    assert!(session["messages"][0]["content"]
        .as_str()
        .unwrap()
        .starts_with("BOARD ONBOARDING REQUEST"));
    assert_eq!(session["draft_goal"], serde_json::Value::Null);

    // Starting again returns the active session.
    let again = send(&server, Method::POST, &format!("{base}/start"), json!({})).await;
    assert_eq!(again.json["id"], session["id"]);

    let answered = answer_ship_v2(&server, &base).await;
    let messages = answered.json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["content"], "Other: Ship v2");
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{base}/answer"),
            json!({"answer": ""})
        )
        .await
        .status,
        422
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{base}/answer"),
            json!({"answer": 3})
        )
        .await
        .status,
        422
    );

    // Agents only: a user is refused.
    let agent = send(
        &server,
        Method::POST,
        &format!("{base}/agent"),
        json!({"question": "Q?", "options": [{"id": "1", "label": "A"}]}),
    )
    .await;
    assert_eq!(agent.status, 401);

    let incomplete = send(
        &server,
        Method::POST,
        &format!("{base}/confirm"),
        json!({"board_type": "goal", "objective": "Ship v2"}),
    )
    .await;
    assert_eq!(incomplete.status, 422, "{}", incomplete.text);
    let confirmed = send(
        &server,
        Method::POST,
        &format!("{base}/confirm"),
        json!({"board_type": "goal", "objective": "Ship v2", "success_metrics": {"users": 100}, "target_date": "2027-01-31"}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    assert_eq!(confirmed.json["id"], board["id"]);
    assert_eq!(confirmed.json["goal_confirmed"], true);
    assert_eq!(confirmed.json["goal_source"], "lead_agent_onboarding");
    assert_eq!(confirmed.json["objective"], "Ship v2");
    assert_eq!(confirmed.json["success_metrics"], json!({"users": 100}));
    assert_eq!(confirmed.json["require_approval_for_done"], true);
    assert_eq!(server.admin_get(&base).await.json["status"], "confirmed");

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&base).await.status, 404);
    assert_eq!(
        send(&server, Method::POST, &format!("{base}/start"), json!({}))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn the_gateway_main_agent_asks_questions_and_completes_the_draft() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let base = format!(
        "/api/v1/boards/{}/onboarding",
        board["id"].as_str().unwrap()
    );
    let main: uuid::Uuid = server
        .db
        .client()
        .await
        .query_one("SELECT id FROM agents WHERE board_id IS NULL LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let rotated = send(
        &server,
        Method::PATCH,
        &format!("/api/v1/agents/{main}"),
        json!({"name": "Main"}),
    )
    .await;
    let token = rotated.json["agent_token"].as_str().unwrap().to_string();
    let worker = send(
        &server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "W", "board_id": board["id"]}),
    )
    .await;
    let worker_token = worker.json["agent_token"].as_str().unwrap().to_string();
    let post = |token: String, body: serde_json::Value, path: String| {
        let server = &server;
        async move {
            server
                .raw(
                    Method::POST,
                    &path,
                    None,
                    Some(&body.to_string()),
                    &[("X-Agent-Token", &token)],
                )
                .await
                .unwrap()
        }
    };
    let question =
        json!({"question": "What is the goal?", "options": [{"id": "a", "label": "Ship"}]});
    assert_eq!(
        post(token.clone(), question.clone(), format!("{base}/agent"))
            .await
            .status,
        404,
        "nothing started yet"
    );
    assert_eq!(
        send(&server, Method::POST, &format!("{base}/start"), json!({}))
            .await
            .status,
        200
    );

    let asked = post(token.clone(), question.clone(), format!("{base}/agent")).await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    let last = asked.json["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["role"], "assistant");
    assert!(last["content"]
        .as_str()
        .unwrap()
        .contains("What is the goal?"));
    assert_eq!(
        post(worker_token, question, format!("{base}/agent"))
            .await
            .status,
        403
    );
    assert_eq!(
        post(
            token.clone(),
            json!({"question": "", "options": []}),
            format!("{base}/agent")
        )
        .await
        .status,
        422
    );
    // Who is calling comes first, as in FastAPI: an invalid body from a user is a 401 too.
    for body in [
        json!({"question": "Who?", "options": [{"id": "1", "label": "Me"}]}),
        json!({}),
    ] {
        let admin = server
            .call(
                Method::POST,
                &format!("{base}/agent"),
                Some(crate::harness::ADMIN_TOKEN),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(
            admin.status, 401,
            "users do not speak for the agent: {body}"
        );
    }

    let draft = json!({"status": "complete", "board_type": "goal", "objective": "Ship v2", "success_metrics": {"users": 100}});
    let agent_path = format!(
        "/api/v1/agent/boards/{}/onboarding",
        board["id"].as_str().unwrap()
    );
    let completed = post(token.clone(), draft, agent_path.clone()).await;
    assert_eq!(completed.status, 200, "{}", completed.text);
    assert_eq!(completed.json["status"], "completed");
    assert_eq!(completed.json["draft_goal"]["objective"], "Ship v2");
    confirm_ship_v2(&server, &base).await;
    assert_eq!(
        post(
            token,
            json!({"status": "complete", "board_type": "goal"}),
            agent_path
        )
        .await
        .status,
        409
    );
}

/// The user answers "Other: Ship v2".
async fn answer_ship_v2(server: &Server, base: &str) -> crate::harness::Reply {
    let answered = send(
        server,
        Method::POST,
        &format!("{base}/answer"),
        json!({"answer": "Other", "other_text": "Ship v2"}),
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    answered
}

/// Confirms the goal the drafts of these tests propose.
async fn confirm_ship_v2(server: &Server, base: &str) -> crate::harness::Reply {
    let confirmed = send(
        server,
        Method::POST,
        &format!("{base}/confirm"),
        json!({"board_type": "goal", "objective": "Ship v2", "success_metrics": {"users": 100}}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    confirmed
}

/// The next `sessions.send` on the link, answered `ok`; returns its params.
async fn next_message(ws: &mut WsClient) -> Value {
    let frame = until_method(ws, "sessions.send").await;
    answer(ws, &frame, json!({"ok": true, "result": {}})).await;
    frame["payload"]["params"].clone()
}

#[actix_web::test]
async fn the_gateway_agent_hears_the_conversation_and_confirm_provisions_the_drafted_lead() {
    let server = Server::start().await;
    let (gateway, board) = office(&server).await;
    let (board_id, gateway_id) = (
        board["id"].as_str().unwrap(),
        gateway["id"].as_str().unwrap(),
    );
    let base = format!("/api/v1/boards/{board_id}/onboarding");
    let main_session = format!("agent:mc-gateway-{gateway_id}:main");

    // Started while the gateway is away: the prompt waits for the link.
    let started = send(&server, Method::POST, &format!("{base}/start"), json!({})).await;
    assert_eq!(started.status, 200, "{}", started.text);
    let session_id = started.json["id"].as_str().unwrap().to_string();
    let mut ws = connect(&server).await;
    let prompt = next_message(&mut ws).await;
    assert_eq!(prompt["session_key"], main_session);
    assert_eq!(prompt["deliver"], false);
    assert_eq!(
        prompt["correlation_id"],
        format!("onboarding.start:{board_id}")
    );
    let text = prompt["message"].as_str().unwrap();
    assert_eq!(
        text,
        started.json["messages"][0]["content"].as_str().unwrap()
    );
    assert!(
        text.starts_with("BOARD ONBOARDING REQUEST\n\nBoard Name: Ops\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "POST http://localhost:8000/api/v1/agent/boards/{board_id}/onboarding\n"
        )),
        "{text}"
    );
    assert!(text.contains("- lead_agent.update_cadence: asap | hourly | daily | weekly\n"));

    answer_ship_v2(&server, &base).await;
    let heard = next_message(&mut ws).await;
    assert_eq!(
        (heard["message"].as_str(), heard["session_key"].as_str()),
        (Some("Other: Ship v2"), Some(main_session.as_str()))
    );
    assert_eq!(
        heard["correlation_id"],
        format!("onboarding.answer:{board_id}:{session_id}")
    );

    // Starting again while the agent owes an answer sends the user's last message again.
    let again = send(&server, Method::POST, &format!("{base}/start"), json!({})).await;
    assert_eq!(again.json["id"], json!(session_id));
    let resent = next_message(&mut ws).await;
    assert_eq!(resent["message"], "Other: Ship v2");
    assert_eq!(
        resent["correlation_id"],
        format!("onboarding.resume:{board_id}:{session_id}")
    );

    // The gateway agent's draft (posted by agent token in the other tests).
    let draft = json!({
        "status": "complete", "board_type": "goal", "objective": "Ship v2", "success_metrics": {"users": 100},
        "user_profile": {"preferred_name": " Sam ", "timezone": "Europe/Berlin", "notes": null, "pronouns": "  "},
        "lead_agent": {"name": "Ava", "identity_profile": {"emoji": ":rocket:", "blank": " "},
                       "autonomy_level": "autonomous", "verbosity": "concise"}
    });
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE board_onboarding_sessions SET draft_goal = $1, status = 'completed'",
            &[&draft],
        )
        .await
        .unwrap();
    let confirmed = confirm_ship_v2(&server, &base).await;
    assert_eq!(
        confirmed.json["require_approval_for_done"], false,
        "an autonomous lead"
    );

    let create = until_method(&mut ws, "agents.create").await;
    let lead = &create["payload"]["params"];
    assert_eq!(
        (lead["name"].as_str(), lead["is_board_lead"].as_bool()),
        (Some("Ava"), Some(true))
    );
    assert_eq!(lead["board_id"], board["id"]);
    assert_eq!(lead["session_key"], format!("agent:lead-{board_id}:main"));
    assert_eq!(
        lead["identity_profile"],
        json!({"role": "Board Lead", "communication_style": "direct, concise, practical",
               "emoji": ":rocket:", "autonomy_level": "autonomous", "verbosity": "concise"})
    );
    let me = server.admin_get("/api/v1/users/me").await;
    assert_eq!(
        (
            me.json["preferred_name"].as_str(),
            me.json["timezone"].as_str()
        ),
        (Some("Sam"), Some("Europe/Berlin"))
    );
    assert!(me.json["pronouns"].is_null() && me.json["notes"].is_null());

    // A board that already has its lead keeps it (renamed to the draft's name), and no
    // second lead is provisioned.
    send(&server, Method::POST, &format!("{base}/start"), json!({})).await;
    let leads: i64 = server
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM agents WHERE board_id = $1 AND is_board_lead",
            &[&board_id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leads, 1);
}
