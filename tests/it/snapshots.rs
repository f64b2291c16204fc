//! Board and board-group snapshots: the denormalized views of the console.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{create_agent, create_board, create_gateway, send, switch_to_new_org};
use crate::harness::{Reply, Server};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..8])
}

async fn board_in(server: &Server, group: Option<&Value>, name: &str) -> Value {
    let gateway = create_gateway(server, &unique("gw")).await;
    let extra = match group {
        Some(g) => json!({"board_group_id": g["id"]}),
        None => json!({}),
    };
    create_board(server, &gateway, name, extra).await
}

async fn task(server: &Server, board: &Value, body: Value) -> Value {
    let path = format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap());
    ok(send(server, Method::POST, &path, body).await)
}

#[actix_web::test]
async fn a_board_snapshot_has_cards_agents_and_approvals() {
    let server = Server::start().await;
    let b = board_in(&server, None, "Snap").await;
    let agent = ok(create_agent(&server, &b, "Ada").await);
    let first = task(
        &server,
        &b,
        json!({"title": "first", "assigned_agent_id": agent["id"]}),
    )
    .await;
    let second = task(
        &server,
        &b,
        json!({"title": "second", "depends_on_task_ids": [first["id"]]}),
    )
    .await;
    let approvals = format!("/api/v1/boards/{}/approvals", b["id"].as_str().unwrap());
    ok(send(&server, Method::POST, &approvals, json!({"action_type": "ship", "confidence": 80, "task_ids": [first["id"], second["id"]], "lead_reasoning": "r"})).await);

    let snap = ok(server
        .admin_get(&format!(
            "/api/v1/boards/{}/snapshot",
            b["id"].as_str().unwrap()
        ))
        .await);
    assert_eq!(snap["board"]["id"], b["id"]);
    let cards = snap["tasks"].as_array().unwrap();
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[0]["id"], second["id"], "newest first");
    assert_eq!(cards[0]["is_blocked"], true);
    assert_eq!(cards[1]["assignee"], "Ada");
    assert_eq!(
        (
            cards[1]["approvals_count"].as_i64(),
            cards[1]["approvals_pending_count"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(snap["agents"][0]["name"], "Ada");
    assert_eq!(
        snap["approvals"][0]["task_titles"],
        json!(["first", "second"])
    );
    assert_eq!(snap["pending_approvals_count"], 1);
    assert_eq!(snap["chat_messages"], json!([]));
}

#[actix_web::test]
async fn group_snapshots_rank_tasks_and_respect_the_options() {
    let server = Server::start().await;
    let group = ok(send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Launch", "slug": "launch"}),
    )
    .await);
    let alpha = board_in(&server, Some(&group), "Alpha").await;
    let beta = board_in(&server, Some(&group), "Beta").await;
    let low = task(&server, &alpha, json!({"title": "low", "priority": "low"})).await;
    let high = task(
        &server,
        &alpha,
        json!({"title": "high", "priority": "high"}),
    )
    .await;
    let started = task(
        &server,
        &alpha,
        json!({"title": "started", "status": "in_progress", "priority": "low"}),
    )
    .await;
    task(
        &server,
        &alpha,
        json!({"title": "finished", "status": "done"}),
    )
    .await;
    task(&server, &beta, json!({"title": "beta work"})).await;

    let path = format!(
        "/api/v1/board-groups/{}/snapshot",
        group["id"].as_str().unwrap()
    );
    let snap = ok(server.admin_get(&path).await);
    assert_eq!(snap["group"]["id"], group["id"]);
    let boards = snap["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 2);
    assert_eq!(boards[0]["board"]["name"], "Alpha", "boards by name");
    let ids: Vec<&Value> = boards[0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(
        ids,
        [&started["id"], &high["id"], &low["id"]],
        "started first, then by priority; done left out"
    );
    assert_eq!(
        boards[0]["task_counts"],
        json!({"inbox": 2, "in_progress": 1, "done": 1})
    );
    assert_eq!(boards[0]["tasks"][0]["board_name"], "Alpha");

    let snap = ok(server
        .admin_get(&format!("{path}?include_done=true&per_board_task_limit=1"))
        .await);
    assert_eq!(snap["boards"][0]["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(
        server
            .admin_get(&format!("{path}?per_board_task_limit=-1"))
            .await
            .status,
        422
    );

    // From a board: the other boards of its group, or all with include_self.
    let from_alpha = format!(
        "/api/v1/boards/{}/group-snapshot",
        alpha["id"].as_str().unwrap()
    );
    let snap = ok(server.admin_get(&from_alpha).await);
    let names: Vec<&Value> = snap["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["board"]["name"])
        .collect();
    assert_eq!(names, [&json!("Beta")]);
    let snap = ok(server
        .admin_get(&format!("{from_alpha}?include_self=true&include_done=true"))
        .await);
    assert_eq!(snap["boards"][0]["tasks"].as_array().unwrap().len(), 4);
    assert_eq!(
        server
            .admin_get(&format!("{from_alpha}?per_board_task_limit=101"))
            .await
            .status,
        422
    );

    let loner = board_in(&server, None, "Loner").await;
    let snap = ok(server
        .admin_get(&format!(
            "/api/v1/boards/{}/group-snapshot",
            loner["id"].as_str().unwrap()
        ))
        .await);
    assert_eq!(snap, json!({"group": null, "boards": []}));

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&path).await.status, 404);
    assert_eq!(server.admin_get(&from_alpha).await.status, 404);
    assert_eq!(
        server
            .admin_get(&format!(
                "/api/v1/boards/{}/snapshot",
                alpha["id"].as_str().unwrap()
            ))
            .await
            .status,
        404
    );
}
