//! The board SSE streams: pushed on commit across instances, resumable without loss.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{new_board, send, switch_to_new_org};
use crate::harness::{Reply, Server, SseClient, SseItem};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn board(server: &Server) -> Value {
    new_board(server, json!({"require_approval_for_done": false})).await
}

fn path(board: &Value, rest: &str) -> String {
    format!("/api/v1/boards/{}{rest}", board["id"].as_str().unwrap())
}

fn seq(id: &Option<String>) -> i64 {
    id.as_deref()
        .expect("event id")
        .parse()
        .expect("numeric id")
}

#[actix_web::test]
async fn task_events_reach_a_listener_on_the_other_instance_in_commit_order() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let board = board(&a).await;
    let mut stream = SseClient::open(&a, &path(&board, "/tasks/stream"), None).await;

    let task = ok(send(
        &b,
        Method::POST,
        &path(&board, "/tasks"),
        json!({"title": "Wire"}),
    )
    .await);
    let (event, id, data) = stream.event().await;
    assert_eq!(event, "task");
    assert_eq!(data["type"], "task.created");
    assert_eq!(data["task"]["id"], task["id"]);
    assert_eq!(data["activity"]["message"], "Task created: Wire.");
    let first = seq(&id);

    let task_path = path(&board, &format!("/tasks/{}", task["id"].as_str().unwrap()));
    ok(send(
        &b,
        Method::PATCH,
        &task_path,
        json!({"status": "review", "comment": "ready"}),
    )
    .await);
    let (_, id, comment) = stream.event().await;
    assert_eq!(comment["type"], "task.comment");
    assert_eq!(comment["comment"]["message"], "ready");
    assert_eq!(seq(&id), first + 1);
    let (_, id, moved) = stream.event().await;
    assert_eq!(moved["type"], "task.status_changed");
    assert_eq!(moved["task"]["status"], "review");
    assert_eq!(seq(&id), first + 2);
}

#[actix_web::test]
async fn a_reconnecting_listener_resumes_after_its_last_event_without_loss() {
    let server = Server::start().await;
    let board = board(&server).await;
    let mut stream = SseClient::open(&server, &path(&board, "/tasks/stream"), None).await;
    ok(send(
        &server,
        Method::POST,
        &path(&board, "/tasks"),
        json!({"title": "one"}),
    )
    .await);
    let (_, last, _) = stream.event().await;
    drop(stream);

    for title in ["two", "three"] {
        ok(send(
            &server,
            Method::POST,
            &path(&board, "/tasks"),
            json!({"title": title}),
        )
        .await);
    }
    let mut resumed =
        SseClient::open(&server, &path(&board, "/tasks/stream"), last.as_deref()).await;
    let titles = [resumed.event().await.2, resumed.event().await.2]
        .map(|d| d["task"]["title"].as_str().unwrap().to_string());
    assert_eq!(titles, ["two", "three"]);
    assert!(
        !matches!(
            resumed.next(Duration::from_millis(300)).await,
            Some(SseItem::Event { .. })
        ),
        "nothing twice"
    );

    // `since` replays from a time; a `since` that does not parse means "from now".
    let mut replay = SseClient::open(
        &server,
        &path(&board, "/tasks/stream?since=2000-01-01T00:00:00Z"),
        None,
    )
    .await;
    assert_eq!(replay.event().await.2["task"]["title"], "one");
    let mut fresh = SseClient::open(
        &server,
        &path(&board, "/tasks/stream?since=yesterday"),
        None,
    )
    .await;
    assert!(!matches!(
        fresh.next(Duration::from_millis(300)).await,
        Some(SseItem::Event { .. })
    ));
}

#[actix_web::test]
async fn approval_events_carry_counts_and_keepalives_flow() {
    let server = Server::builder()
        .env("SSE_KEEPALIVE_SECONDS", "1")
        .start()
        .await;
    let board = board(&server).await;
    let task = ok(send(
        &server,
        Method::POST,
        &path(&board, "/tasks"),
        json!({"title": "ship"}),
    )
    .await);
    let mut stream = SseClient::open(&server, &path(&board, "/approvals/stream"), None).await;
    let approval = ok(send(
        &server,
        Method::POST,
        &path(&board, "/approvals"),
        json!({"action_type": "ship", "confidence": 80, "task_id": task["id"], "lead_reasoning": "r"}),
    )
    .await);
    let (event, _, data) = stream.event().await;
    assert_eq!(event, "approval");
    assert_eq!(data["approval"]["id"], approval["id"]);
    assert_eq!(data["pending_approvals_count"], 1);
    assert_eq!(
        data["task_counts"],
        json!({"task_id": task["id"], "approvals_count": 1, "approvals_pending_count": 1})
    );
    let p = path(
        &board,
        &format!("/approvals/{}", approval["id"].as_str().unwrap()),
    );
    ok(send(&server, Method::PATCH, &p, json!({"status": "approved"})).await);
    let (_, _, data) = stream.event().await;
    assert_eq!(data["approval"]["status"], "approved");
    assert_eq!(data["pending_approvals_count"], 0);

    assert_eq!(
        stream.next(Duration::from_secs(3)).await,
        Some(SseItem::Comment("keepalive".into()))
    );
}

#[actix_web::test]
async fn streams_need_auth_and_the_callers_organization() {
    let server = Server::start().await;
    let board = board(&server).await;
    for rest in ["/tasks/stream", "/approvals/stream"] {
        let reply = server
            .call(Method::GET, &path(&board, rest), None, None)
            .await;
        assert_eq!(reply.status, 401, "{rest}");
    }
    switch_to_new_org(&server).await;
    for rest in ["/tasks/stream", "/approvals/stream"] {
        assert_eq!(
            server.admin_get(&path(&board, rest)).await.status,
            404,
            "{rest}"
        );
    }
}

#[actix_web::test]
async fn the_comment_feed_streams_new_comments_of_readable_boards_across_instances() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let first = board(&a).await;
    let second = board(&a).await;
    let task_on = |board: &Value| {
        let (a, path) = (&a, path(board, "/tasks"));
        async move { ok(send(a, Method::POST, &path, json!({"title": "t"})).await) }
    };
    let (t1, t2) = (task_on(&first).await, task_on(&second).await);
    let comment = |board: &Value, task: &Value, text: &str| {
        let p = path(
            board,
            &format!("/tasks/{}/comments", task["id"].as_str().unwrap()),
        );
        let (b, text) = (&b, text.to_string());
        async move { ok(send(b, Method::POST, &p, json!({"message": text})).await) }
    };
    let mut all = SseClient::open(&a, "/api/v1/activity/task-comments/stream", None).await;
    let only_first = format!(
        "/api/v1/activity/task-comments/stream?board_id={}",
        first["id"].as_str().unwrap()
    );
    let mut filtered = SseClient::open(&a, &only_first, None).await;

    comment(&second, &t2, "on the second board").await;
    comment(&first, &t1, "on the first board").await;
    let (event, _, data) = all.event().await;
    assert_eq!(event, "comment");
    assert_eq!(data["comment"]["message"], "on the second board");
    assert_eq!(data["comment"]["board_id"], second["id"]);
    let (_, last, data) = all.event().await;
    assert_eq!(data["comment"]["task_title"], "t");
    assert_eq!(data["comment"]["message"], "on the first board");
    assert_eq!(
        filtered.event().await.2["comment"]["message"],
        "on the first board"
    );
    drop(all);

    comment(&first, &t1, "while away").await;
    let mut resumed =
        SseClient::open(&a, "/api/v1/activity/task-comments/stream", last.as_deref()).await;
    assert_eq!(resumed.event().await.2["comment"]["message"], "while away");
    assert!(
        !matches!(
            resumed.next(Duration::from_millis(300)).await,
            Some(SseItem::Event { .. })
        ),
        "nothing twice"
    );
}
