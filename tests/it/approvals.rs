//! Approvals (domain.md §A9) through the admin API, and their gate on `done`.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{new_board, send, switch_to_new_org};
use crate::harness::{Reply, Server};

async fn board(server: &Server) -> Value {
    new_board(
        server,
        json!({"block_status_changes_with_pending_approval": true}),
    )
    .await
}

fn path(board: &Value, rest: &str) -> String {
    format!("/api/v1/boards/{}{rest}", board["id"].as_str().unwrap())
}

async fn task(server: &Server, board: &Value, title: &str) -> Value {
    ok(send(
        server,
        Method::POST,
        &path(board, "/tasks"),
        json!({"title": title}),
    )
    .await)
}

async fn ask(server: &Server, board: &Value, body: Value) -> Reply {
    send(server, Method::POST, &path(board, "/approvals"), body).await
}

async fn resolve(server: &Server, board: &Value, approval: &Value, status: Value) -> Reply {
    let p = path(
        board,
        &format!("/approvals/{}", approval["id"].as_str().unwrap()),
    );
    send(server, Method::PATCH, &p, json!({"status": status})).await
}

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

#[actix_web::test]
async fn an_approval_links_every_named_task_and_needs_a_reason() {
    let server = Server::start().await;
    let b = board(&server).await;
    let (t1, t2, t3) = (
        task(&server, &b, "one").await,
        task(&server, &b, "two").await,
        task(&server, &b, "three").await,
    );
    let a = ok(ask(
        &server,
        &b,
        json!({
            "action_type": "deploy", "confidence": 72.5, "task_ids": [t2["id"], t1["id"]], "task_id": t1["id"],
            "payload": {"taskIds": [t3["id"], "not-a-uuid"], "taskId": t2["id"]},
            "rubric_scores": {"risk": 3}, "lead_reasoning": "  all checks green  "
        }),
    )
    .await);
    assert_eq!(a["task_ids"], json!([t1["id"], t2["id"], t3["id"]]));
    assert_eq!(a["task_id"], t1["id"]);
    assert_eq!(a["task_titles"], json!(["one", "two", "three"]));
    assert_eq!(a["payload"]["reason"], "all checks green");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["confidence"], 72.5);
    assert_eq!(a["rubric_scores"], json!({"risk": 3}));
    assert_eq!(a["resolved_at"], Value::Null);

    let reply = ask(
        &server,
        &b,
        json!({"action_type": "x", "confidence": 1, "payload": {"reason": " "}}),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"][0]["msg"],
        "Value error, lead reasoning is required"
    );
    let nested = ask(
        &server,
        &b,
        json!({"action_type": "x", "confidence": 1, "payload": {"decision": {"reason": "ok"}}}),
    )
    .await;
    assert_eq!(nested.status, 200, "{}", nested.text);
    for bad in [
        json!({"action_type": "x", "confidence": 101, "lead_reasoning": "r"}),
        json!({"action_type": "x", "confidence": "high", "lead_reasoning": "r"}),
        json!({"confidence": 5, "lead_reasoning": "r"}),
        json!({"action_type": "x", "confidence": 5, "status": "maybe", "lead_reasoning": "r"}),
    ] {
        assert_eq!(ask(&server, &b, bad.clone()).await.status, 422, "{bad}");
    }
    let ghost = Uuid::new_v4();
    let reply = ask(
        &server,
        &b,
        json!({"action_type": "x", "confidence": 5, "task_id": ghost, "lead_reasoning": "r"}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json["detail"]["missing_task_ids"], json!([ghost]));
}

#[actix_web::test]
async fn one_pending_approval_per_task_and_the_gates_follow_it() {
    let server = Server::start().await;
    let b = board(&server).await;
    let t = task(&server, &b, "release").await;
    let other = task(&server, &b, "docs").await;
    let first = ok(ask(&server, &b, json!({"action_type": "release", "confidence": 90, "task_id": t["id"], "lead_reasoning": "r"})).await);

    let reply = ask(&server, &b, json!({"action_type": "again", "confidence": 90, "task_ids": [other["id"], t["id"]], "lead_reasoning": "r"})).await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json["detail"],
        json!({"message": "Each task can have only one pending approval.", "conflicts": [{"task_id": t["id"], "approval_id": first["id"]}]})
    );

    // While it is pending the task's status is frozen; the board requires approval for done.
    let task_path = path(&b, &format!("/tasks/{}", t["id"].as_str().unwrap()));
    let reply = send(
        &server,
        Method::PATCH,
        &task_path,
        json!({"status": "in_progress"}),
    )
    .await;
    assert_eq!(reply.status, 409);

    let reply = resolve(&server, &b, &first, Value::Null).await;
    assert_eq!(reply.status, 422);
    let rejected = ok(resolve(&server, &b, &first, json!("rejected")).await);
    assert!(rejected["resolved_at"].is_string());
    let reply = send(
        &server,
        Method::PATCH,
        &task_path,
        json!({"status": "done"}),
    )
    .await;
    assert_eq!(
        reply.status, 409,
        "a rejected approval does not open the gate"
    );

    // A second request may now be pending; re-opening the first then conflicts.
    let second = ok(ask(&server, &b, json!({"action_type": "release", "confidence": 95, "task_id": t["id"], "lead_reasoning": "fixed"})).await);
    assert_eq!(
        resolve(&server, &b, &first, json!("pending")).await.status,
        409
    );
    ok(resolve(&server, &b, &second, json!("approved")).await);
    let done = ok(send(
        &server,
        Method::PATCH,
        &task_path,
        json!({"status": "done"}),
    )
    .await);
    assert_eq!(done["status"], "done");

    let page = ok(server
        .admin_get(&path(&b, "/approvals?status=approved"))
        .await);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], second["id"]);
    let page = ok(server.admin_get(&path(&b, "/approvals?limit=1")).await);
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().unwrap().len()
        ),
        (Some(2), 1)
    );
    assert_eq!(page["items"][0]["id"], second["id"], "newest first");
    assert_eq!(
        server
            .admin_get(&path(&b, "/approvals?status=maybe"))
            .await
            .status,
        422
    );
}

#[actix_web::test]
async fn approvals_of_other_boards_and_organizations_are_not_found() {
    let server = Server::start().await;
    let b = board(&server).await;
    let other = board(&server).await;
    let t = task(&server, &b, "t").await;
    let a = ok(ask(
        &server,
        &b,
        json!({"action_type": "x", "confidence": 5, "task_id": t["id"], "lead_reasoning": "r"}),
    )
    .await);
    assert_eq!(
        resolve(&server, &other, &a, json!("approved")).await.status,
        404
    );
    let reply = ask(
        &server,
        &other,
        json!({"action_type": "x", "confidence": 5, "task_id": t["id"], "lead_reasoning": "r"}),
    )
    .await;
    assert_eq!(reply.status, 404, "a task of another board is not linkable");

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&path(&b, "/approvals")).await.status, 404);
    assert_eq!(
        resolve(&server, &b, &a, json!("approved")).await.status,
        404
    );
    assert_eq!(
        ask(
            &server,
            &b,
            json!({"action_type": "x", "confidence": 5, "lead_reasoning": "r"})
        )
        .await
        .status,
        404
    );
    let anonymous = server
        .call(Method::GET, &path(&b, "/approvals"), None, None)
        .await;
    assert_eq!(anonymous.status, 401);
}
