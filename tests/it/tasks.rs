//! Tasks, dependencies and comments (domain.md §A7, §A8) through the admin API.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    create_agent, create_board, create_gateway, delete, new_board, send, switch_to_new_org,
};
use crate::harness::{Reply, Server, ADMIN_TOKEN};

/// A board with the given rule overrides (approval gate off unless asked for).
async fn board(server: &Server, rules: Value) -> Value {
    let mut extra = json!({"require_approval_for_done": false});
    for (k, v) in rules.as_object().cloned().unwrap_or_default() {
        extra[k] = v;
    }
    new_board(server, extra).await
}

fn tasks_path(board: &Value) -> String {
    format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap())
}

fn task_path(board: &Value, task: &Value) -> String {
    format!("{}/{}", tasks_path(board), task["id"].as_str().unwrap())
}

async fn create(server: &Server, board: &Value, body: Value) -> Reply {
    send(server, Method::POST, &tasks_path(board), body).await
}

async fn task(server: &Server, board: &Value, body: Value) -> Value {
    let reply = create(server, board, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn patch(server: &Server, board: &Value, task: &Value, body: Value) -> Reply {
    send(server, Method::PATCH, &task_path(board, task), body).await
}

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn detail_message(reply: &Reply) -> &str {
    reply.json["detail"]["message"]
        .as_str()
        .or(reply.json["detail"].as_str())
        .unwrap_or_default()
}

async fn activity_types(server: &Server, task: &Value) -> Vec<String> {
    let id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    server
        .db
        .column(
            "SELECT event_type FROM activity_events WHERE task_id = $1 ORDER BY created_at, id",
            &[&id],
        )
        .await
}

async fn insert_approval(server: &Server, board: &Value, task: &Value, status: &str) {
    let db = server.db.client().await;
    let board_id: Uuid = board["id"].as_str().unwrap().parse().unwrap();
    let task_id: Uuid = task["id"].as_str().unwrap().parse().unwrap();
    db.execute(
        "INSERT INTO approvals (id, organization_id, board_id, task_id, action_type, confidence, status) \
         SELECT $1, organization_id, id, $2, 'complete', 90, $3 FROM boards WHERE id = $4",
        &[&Uuid::new_v4(), &task_id, &status, &board_id],
    )
    .await
    .unwrap();
}

#[actix_web::test]
async fn a_task_reads_back_with_every_reference_field() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let t = task(
        &server,
        &b,
        json!({"title": "  Ship it ", "description": "d", "priority": "high", "due_at": "2026-12-01"}),
    )
    .await;
    assert_eq!(t["title"], "Ship it");
    assert_eq!(t["status"], "inbox");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["board_id"], b["id"]);
    assert_eq!(t["due_at"], "2026-12-01T00:00:00Z");
    assert_eq!(t["is_blocked"], false);
    assert_eq!(t["depends_on_task_ids"], json!([]));
    assert_eq!(t["tags"], json!([]));
    assert_eq!(t["custom_field_values"], json!({}));
    assert!(t["created_by_user_id"].is_string());
    assert_eq!(t["in_progress_at"], Value::Null);
    assert_eq!(activity_types(&server, &t).await, ["task.created"]);

    let started = task(
        &server,
        &b,
        json!({"title": "Now", "status": "in_progress"}),
    )
    .await;
    assert!(started["in_progress_at"].is_string());
}

#[actix_web::test]
async fn bad_input_is_refused_with_the_reference_statuses() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let path = tasks_path(&b);
    let no_auth = server.call(Method::GET, &path, None, None).await;
    assert_eq!(no_auth.status, 401);
    for body in [
        json!({}),
        json!({"title": 5}),
        json!({"title": "x", "status": "blocked"}),
        json!({"title": "x", "depends_on_task_ids": ["not-a-uuid"]}),
        json!({"title": "   "}),
    ] {
        let reply = create(&server, &b, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(reply.json["detail"].is_array(), "{}", reply.text);
    }
    let t = task(&server, &b, json!({"title": "x"})).await;
    let reply = patch(&server, &b, &t, json!({"status": null})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json["detail"][0]["msg"],
        "Value error, status is required"
    );
    let reply = patch(&server, &b, &t, json!({"title": null})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = server
        .call(
            Method::GET,
            &format!("{path}?status=inbox,blocked"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["detail"], "Unsupported task status filter.");
    let reply = server
        .call(
            Method::PATCH,
            &format!("{path}/{}", Uuid::new_v4()),
            Some(ADMIN_TOKEN),
            Some("{}"),
        )
        .await;
    assert_eq!(reply.status, 404);
    let reply = send(
        &server,
        Method::POST,
        &format!("{}/comments", task_path(&b, &t)),
        json!({"message": "  "}),
    )
    .await;
    assert_eq!(reply.status, 422);
}

#[actix_web::test]
async fn dependencies_block_validate_and_reconcile() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let design = task(&server, &b, json!({"title": "Design"})).await;
    let build = task(
        &server,
        &b,
        json!({"title": "Build", "depends_on_task_ids": [design["id"], design["id"]]}),
    )
    .await;
    assert_eq!(build["depends_on_task_ids"], json!([design["id"]]));
    assert_eq!(build["is_blocked"], true);
    assert_eq!(build["blocked_by_task_ids"], json!([design["id"]]));

    // Created blocked and already started or assigned: refused with the machine-readable body.
    let reply = create(
        &server,
        &b,
        json!({"title": "Rush", "status": "in_progress", "depends_on_task_ids": [design["id"]]}),
    )
    .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json["detail"]["code"],
        "task_blocked_cannot_transition"
    );
    assert_eq!(
        reply.json["detail"]["blocked_by_task_ids"],
        json!([design["id"]])
    );

    // A user's move of a blocked task to in_progress keeps it in the inbox.
    let moved = ok(patch(&server, &b, &build, json!({"status": "in_progress"})).await);
    assert_eq!(moved["status"], "inbox");
    assert_eq!(moved["in_progress_at"], Value::Null);

    // Self, unknown and cyclic dependencies.
    let reply = patch(
        &server,
        &b,
        &design,
        json!({"depends_on_task_ids": [design["id"]]}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), detail_message(&reply)),
        (422, "Task cannot depend on itself.")
    );
    let ghost = Uuid::new_v4();
    let reply = patch(
        &server,
        &b,
        &design,
        json!({"depends_on_task_ids": [ghost]}),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json["detail"]["missing_task_ids"], json!([ghost]));
    let reply = patch(
        &server,
        &b,
        &design,
        json!({"depends_on_task_ids": [build["id"]]}),
    )
    .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        detail_message(&reply),
        "Dependency cycle detected. Remove the cycle before saving."
    );
    let test = task(
        &server,
        &b,
        json!({"title": "Test", "depends_on_task_ids": [build["id"]]}),
    )
    .await;
    let reply = patch(
        &server,
        &b,
        &design,
        json!({"depends_on_task_ids": [test["id"]]}),
    )
    .await;
    assert_eq!(reply.status, 409, "an indirect cycle: {}", reply.text);

    // Finishing the dependency unblocks; work starts; reopening sends the dependent back.
    let done = ok(patch(&server, &b, &design, json!({"status": "done"})).await);
    assert_eq!(done["status"], "done");
    let started = ok(patch(&server, &b, &build, json!({"status": "in_progress"})).await);
    assert_eq!(started["status"], "in_progress");
    assert_eq!(started["is_blocked"], false);
    let reply = patch(&server, &b, &design, json!({"depends_on_task_ids": []})).await;
    assert_eq!(reply.status, 409, "a done task's dependencies are frozen");
    ok(patch(&server, &b, &design, json!({"status": "inbox"})).await);
    let list = ok(server
        .admin_get(&format!("{}?status=inbox", tasks_path(&b)))
        .await);
    let back = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == build["id"])
        .expect("build back in the inbox");
    assert_eq!(back["is_blocked"], true);
    assert_eq!(
        activity_types(&server, &build)
            .await
            .last()
            .map(String::as_str),
        Some("task.status_changed")
    );
}

#[actix_web::test]
async fn done_needs_an_approved_approval_where_the_board_requires_it() {
    let server = Server::start().await;
    let b = board(&server, json!({"require_approval_for_done": true, "block_status_changes_with_pending_approval": true})).await;
    let t = task(&server, &b, json!({"title": "Publish"})).await;
    let reply = patch(&server, &b, &t, json!({"status": "done"})).await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json["detail"],
        json!({"message": "Task can only be marked done when a linked approval has been approved.", "blocked_by_task_ids": []})
    );
    insert_approval(&server, &b, &t, "pending").await;
    let reply = patch(&server, &b, &t, json!({"status": "in_progress"})).await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        detail_message(&reply),
        "Task status cannot be changed while a linked approval is pending."
    );
    // Edits that do not change the status pass.
    assert_eq!(
        ok(patch(
            &server,
            &b,
            &t,
            json!({"priority": "low", "status": "inbox"})
        )
        .await)["priority"],
        "low"
    );

    let db = server.db.client().await;
    db.execute(
        "UPDATE approvals SET status = 'approved', resolved_at = now()",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        ok(patch(&server, &b, &t, json!({"status": "done"})).await)["status"],
        "done"
    );
}

#[actix_web::test]
async fn review_needs_a_comment_and_may_be_required_before_done() {
    let server = Server::start().await;
    let b = board(&server, json!({"require_review_before_done": true})).await;
    let t = task(&server, &b, json!({"title": "Write"})).await;
    let reply = patch(&server, &b, &t, json!({"status": "done"})).await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        detail_message(&reply),
        "Task can only be marked done from review when the board rule is enabled."
    );

    let reply = patch(
        &server,
        &b,
        &t,
        json!({"status": "review", "comment": "   "}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), detail_message(&reply)),
        (422, "Comment is required.")
    );
    let review = ok(patch(
        &server,
        &b,
        &t,
        json!({"status": "review", "comment": "Ready: see PR 12"}),
    )
    .await);
    assert_eq!(review["status"], "review");
    assert_eq!(
        ok(patch(&server, &b, &t, json!({"status": "done"})).await)["status"],
        "done"
    );

    let comments = ok(server
        .admin_get(&format!("{}/comments", task_path(&b, &t)))
        .await);
    assert_eq!(comments["total"], 1);
    assert_eq!(comments["items"][0]["message"], "Ready: see PR 12");
    let added = ok(send(
        &server,
        Method::POST,
        &format!("{}/comments", task_path(&b, &t)),
        json!({"message": " Shipped "}),
    )
    .await);
    assert_eq!(added["message"], "Shipped");
    assert_eq!(added["agent_id"], Value::Null);
    let comments = ok(server
        .admin_get(&format!("{}/comments", task_path(&b, &t)))
        .await);
    assert_eq!(comments["items"][1]["id"], added["id"], "oldest first");
}

#[actix_web::test]
async fn assignment_takes_agents_of_the_board_only() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let agent = create_agent(&server, &b, "Worker").await;
    assert_eq!(agent.status, 200, "{}", agent.text);
    let t = task(
        &server,
        &b,
        json!({"title": "Fix", "assigned_agent_id": agent.json["id"]}),
    )
    .await;
    assert_eq!(t["assigned_agent_id"], agent.json["id"]);
    let unassigned = task(&server, &b, json!({"title": "Later"})).await;

    let page = ok(server
        .admin_get(&format!("{}?unassigned=true", tasks_path(&b)))
        .await);
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], unassigned["id"]);
    let page = ok(server
        .admin_get(&format!(
            "{}?assigned_agent_id={}",
            tasks_path(&b),
            agent.json["id"].as_str().unwrap()
        ))
        .await);
    assert_eq!(page["items"][0]["id"], t["id"]);

    let reply = patch(
        &server,
        &b,
        &unassigned,
        json!({"assigned_agent_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(reply.status, 404);
    let other_board = create_board(
        &server,
        &create_gateway(&server, "gw2").await,
        "Other",
        json!({}),
    )
    .await;
    let stranger = create_agent(&server, &other_board, "Stranger").await;
    let reply = patch(
        &server,
        &b,
        &unassigned,
        json!({"assigned_agent_id": stranger.json["id"]}),
    )
    .await;
    assert_eq!(reply.status, 409);
    let reply = create(
        &server,
        &b,
        json!({"title": "x", "assigned_agent_id": stranger.json["id"]}),
    )
    .await;
    assert_eq!(reply.status, 409);

    // In review the assignee is released; back to the inbox likewise.
    let review = ok(patch(
        &server,
        &b,
        &t,
        json!({"status": "review", "comment": "done?"}),
    )
    .await);
    assert_eq!(review["assigned_agent_id"], Value::Null);
}

#[actix_web::test]
async fn lists_paginate_newest_first_with_right_totals() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    for i in 0..5 {
        task(&server, &b, json!({"title": format!("t{i}")})).await;
    }
    let page = ok(server
        .admin_get(&format!("{}?limit=2&offset=1", tasks_path(&b)))
        .await);
    assert_eq!(
        (
            page["total"].as_i64(),
            page["limit"].as_i64(),
            page["offset"].as_i64()
        ),
        (Some(5), Some(2), Some(1))
    );
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["t3", "t2"]);
    let reply = server
        .admin_get(&format!("{}?limit=0", tasks_path(&b)))
        .await;
    assert_eq!(reply.status, 422);
}

#[actix_web::test]
async fn deleting_a_task_cleans_up_and_moves_approvals_to_their_next_task() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let first = task(&server, &b, json!({"title": "a"})).await;
    let second = task(
        &server,
        &b,
        json!({"title": "b", "depends_on_task_ids": [first["id"]]}),
    )
    .await;
    let db = server.db.client().await;
    let (shared, solo) = (Uuid::new_v4(), Uuid::new_v4());
    let ids: Vec<Uuid> = [&first, &second]
        .iter()
        .map(|t| t["id"].as_str().unwrap().parse().unwrap())
        .collect();
    for (approval, tasks) in [(shared, vec![ids[0], ids[1]]), (solo, vec![ids[0]])] {
        db.execute(
            "INSERT INTO approvals (id, organization_id, board_id, task_id, action_type, confidence) \
             SELECT $1, organization_id, board_id, $2, 'x', 50 FROM tasks WHERE id = $2",
            &[&approval, &tasks[0]],
        )
        .await
        .unwrap();
        for t in tasks {
            db.execute(
                "INSERT INTO approval_task_links (id, approval_id, task_id) VALUES (gen_random_uuid(), $1, $2)",
                &[&approval, &t],
            )
            .await
            .unwrap();
        }
    }
    ok(delete(&server, &task_path(&b, &first)).await);
    assert_eq!(delete(&server, &task_path(&b, &first)).await.status, 404);
    let primary: Option<Uuid> = db
        .query_one("SELECT task_id FROM approvals WHERE id = $1", &[&shared])
        .await
        .unwrap()
        .get(0);
    assert_eq!(primary, Some(ids[1]));
    assert!(db
        .query_opt("SELECT 1 FROM approvals WHERE id = $1", &[&solo])
        .await
        .unwrap()
        .is_none());
    let left = ok(server.admin_get(&tasks_path(&b)).await);
    assert_eq!(left["total"], 1);
    assert_eq!(left["items"][0]["depends_on_task_ids"], json!([]));
    assert_eq!(left["items"][0]["is_blocked"], false);
}

#[actix_web::test]
async fn another_organizations_boards_and_tasks_answer_404() {
    let server = Server::start().await;
    let b = board(&server, json!({})).await;
    let t = task(&server, &b, json!({"title": "secret"})).await;
    let other = board(&server, json!({})).await;
    // A task id under another board of the same organization is not found either.
    let reply = server
        .call(
            Method::PATCH,
            &format!("{}/{}", tasks_path(&other), t["id"].as_str().unwrap()),
            Some(ADMIN_TOKEN),
            Some("{}"),
        )
        .await;
    assert_eq!(reply.status, 404);

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&tasks_path(&b)).await.status, 404);
    assert_eq!(create(&server, &b, json!({"title": "x"})).await.status, 404);
    assert_eq!(
        patch(&server, &b, &t, json!({"title": "mine"}))
            .await
            .status,
        404
    );
    assert_eq!(delete(&server, &task_path(&b, &t)).await.status, 404);
    assert_eq!(
        server
            .admin_get(&format!("{}/comments", task_path(&b, &t)))
            .await
            .status,
        404
    );
    // From the other organization, a dependency on the first one's task is "not on this board".
    let mine = board(&server, json!({})).await;
    let reply = create(
        &server,
        &mine,
        json!({"title": "x", "depends_on_task_ids": [t["id"]]}),
    )
    .await;
    assert_eq!(reply.status, 404);
}
