//! Board onboarding (domain.md §A20): start, answers, confirmation onto the board.

use awc::http::Method;
use serde_json::json;

use crate::fixtures::{new_board, send, switch_to_new_org};
use crate::harness::Server;

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

    let answered = send(
        &server,
        Method::POST,
        &format!("{base}/answer"),
        json!({"answer": "Other", "other_text": "Ship v2"}),
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.text);
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
