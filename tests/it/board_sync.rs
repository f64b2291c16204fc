//! Live boards: board sync sockets on two instances, ordered events, refusals to the
//! sender only, and a fresh state on reconnect.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{new_board, send};
use crate::harness::{
    expect_closed_as_too_slow, stalled_socket, Reply, Server, WsClient, WsEvent, ADMIN_TOKEN,
};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn sync_path(board: &Value, token: &str) -> String {
    format!(
        "/ws/board/{}/sync?token={token}",
        board["id"].as_str().unwrap()
    )
}

fn tasks_path(board: &Value) -> String {
    format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap())
}

/// A subscriber past its `board.state`; returns it with the state.
async fn subscribe(server: &Server, board: &Value) -> (WsClient, Value) {
    let mut ws = WsClient::connect(server, &sync_path(board, ADMIN_TOKEN)).await;
    let state = ws.expect_json().await;
    assert_eq!(state["type"], "board.state", "{state}");
    (ws, state)
}

/// Nothing but pings for a while.
async fn quiet(ws: &mut WsClient) -> bool {
    matches!(ws.next(Duration::from_millis(400)).await, WsEvent::TimedOut)
}

#[actix_web::test]
async fn changes_from_rest_and_frames_reach_both_instances_in_order() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let board = new_board(&a, json!({"require_approval_for_done": true})).await;
    let (mut on_a, state) = subscribe(&a, &board).await;
    let (mut on_b, _) = subscribe(&b, &board).await;
    let start = state["seq"].as_i64().expect("seq in board.state");

    let task = ok(send(
        &a,
        Method::POST,
        &tasks_path(&board),
        json!({"title": "Draft"}),
    )
    .await);
    for ws in [&mut on_a, &mut on_b] {
        let created = ws.next_of("task.created").await;
        assert_eq!(created["task"]["id"], task["id"]);
        assert_eq!(created["seq"], start + 1);
    }

    let id = task["id"].as_str().unwrap();
    ok(send(
        &a,
        Method::PATCH,
        &format!("{}/{id}", tasks_path(&board)),
        json!({"title": "Draft 2"}),
    )
    .await);
    on_b.send(json!({"type": "task.move", "task_id": id, "status": "in_progress"}))
        .await;
    for ws in [&mut on_a, &mut on_b] {
        let renamed = ws.next_of("task.updated").await;
        assert_eq!(
            (
                renamed["seq"].as_i64(),
                renamed["changes"]["title"].as_str()
            ),
            (Some(start + 2), Some("Draft 2"))
        );
        let moved = ws.next_of("task.updated").await;
        assert_eq!(moved["seq"], start + 3);
        assert_eq!(moved["changes"]["status"], "in_progress");
        assert_eq!(moved["changes"]["previous_status"], "inbox");
        assert_eq!(moved["updated_by"]["type"], "user");
    }

    // Done needs an approval on this board: the refusal goes to the mover only.
    on_b.send(json!({"type": "task.move", "task_id": id, "status": "done"}))
        .await;
    let refused = on_b.next_of("error").await;
    assert_eq!(refused["status"], 409);
    assert_eq!(refused["task_id"], task["id"]);
    assert!(refused["message"]["message"]
        .as_str()
        .unwrap()
        .contains("approval"));
    assert!(quiet(&mut on_a).await, "the other subscriber hears nothing");

    // A frame-created task and a REST delete arrive too.
    on_a.send(json!({"type": "task.create", "title": "From the socket"}))
        .await;
    let created = on_b.next_of("task.created").await;
    assert_eq!(created["seq"], start + 4);
    let new_id = created["task"]["id"].as_str().unwrap().to_string();
    ok(send(
        &b,
        Method::DELETE,
        &format!("{}/{new_id}", tasks_path(&board)),
        json!(null),
    )
    .await);
    let deleted = on_a.next_of("task.deleted").await;
    assert_eq!(
        (deleted["task_id"].as_str(), deleted["seq"].as_i64()),
        (Some(new_id.as_str()), Some(start + 5))
    );
}

/// The next `count` sync events a subscriber gets (task frames only), as their numbers.
async fn next_seqs(ws: &mut WsClient, count: usize) -> Vec<i64> {
    let mut seqs = Vec::new();
    while seqs.len() < count {
        let frame = ws.expect_json().await;
        if let Some(seq) = frame["seq"].as_i64() {
            if frame["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("task."))
            {
                seqs.push(seq);
            }
        }
    }
    seqs
}

/// Writers on both instances at once: their events travel on the bus and may overtake each
/// other; every subscriber still gets each event once, in order.
#[actix_web::test]
async fn concurrent_writers_on_two_instances_reach_every_subscriber_once_in_order() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let board = new_board(&a, json!({})).await;
    let (mut on_a, state) = subscribe(&a, &board).await;
    let (mut on_b, _) = subscribe(&b, &board).await;
    let start = state["seq"].as_i64().unwrap();
    const WRITES: i64 = 30;
    let writes = (0..WRITES).map(|i| {
        let (server, path) = (if i % 2 == 0 { &a } else { &b }, tasks_path(&board));
        async move {
            ok(send(
                server,
                Method::POST,
                &path,
                json!({"title": format!("T{i}")}),
            )
            .await);
        }
    });
    futures_util::future::join_all(writes).await;
    let expected: Vec<i64> = (start + 1..=start + WRITES).collect();
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(next_seqs(ws, WRITES as usize).await, expected);
        assert!(quiet(ws).await, "nothing doubled");
    }
}

/// An event whose publication was lost (written here by SQL, as a writer that published
/// nothing) is read from PostgreSQL when the next one shows the gap.
#[actix_web::test]
async fn an_event_never_published_is_read_at_the_next_one() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let board = new_board(&a, json!({})).await;
    let (mut on_b, state) = subscribe(&b, &board).await;
    let start = state["seq"].as_i64().unwrap();
    let unpublished = uuid::Uuid::new_v4();
    a.db.client()
        .await
        .execute(
            "WITH n AS ( \
               INSERT INTO board_seqs AS s (board_id, sync_seq) VALUES ($1::text::uuid, 1) \
               ON CONFLICT (board_id) DO UPDATE SET sync_seq = s.sync_seq + 1 RETURNING s.sync_seq) \
             INSERT INTO board_sync_events (board_id, seq, payload) \
             SELECT $1::text::uuid, n.sync_seq, jsonb_build_object('type', 'task.deleted', \
               'task_id', $2::text, 'timestamp', now(), 'seq', n.sync_seq) FROM n",
            &[&board["id"].as_str().unwrap(), &unpublished.to_string()],
        )
        .await
        .unwrap();
    assert!(quiet(&mut on_b).await, "nobody was told");
    ok(send(
        &a,
        Method::POST,
        &tasks_path(&board),
        json!({"title": "Next"}),
    )
    .await);
    let lost = on_b.next_of("task.deleted").await;
    assert_eq!(
        (lost["seq"].as_i64(), lost["task_id"].as_str()),
        (Some(start + 1), Some(unpublished.to_string().as_str()))
    );
    let created = on_b.next_of("task.created").await;
    assert_eq!(created["seq"], start + 2);
}

#[actix_web::test]
async fn a_reconnecting_client_gets_a_state_that_matches_the_database() {
    let server = Server::start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let (mut ws, _) = subscribe(&server, &board).await;
    let first = ok(send(
        &server,
        Method::POST,
        &tasks_path(&board),
        json!({"title": "one"}),
    )
    .await);
    ws.next_of("task.created").await;
    drop(ws);
    ok(send(
        &server,
        Method::POST,
        &tasks_path(&board),
        json!({"title": "two"}),
    )
    .await);
    let id = first["id"].as_str().unwrap();
    ok(send(
        &server,
        Method::PATCH,
        &format!("{}/{id}", tasks_path(&board)),
        json!({"status": "done"}),
    )
    .await);

    let (_, state) = subscribe(&server, &board).await;
    let listed = ok(server.admin_get(&tasks_path(&board)).await);
    let summary = |tasks: &Value| -> Vec<(String, String)> {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&state["tasks"]), summary(&listed["items"]));
    assert_eq!(state["seq"], 3, "two creates and a move");
}

#[actix_web::test]
async fn bad_tokens_and_unknown_boards_close_with_the_reference_codes() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    for path in [
        sync_path(&board, "wrong-token"),
        format!("/ws/board/{}/sync", board["id"].as_str().unwrap()),
    ] {
        let mut ws = WsClient::connect(&server, &path).await;
        let frame = ws.expect_json().await;
        assert_eq!(
            frame,
            json!({"type": "error", "code": 4001, "message": "unauthorized"})
        );
        assert_eq!(ws.expect_close(Duration::from_secs(5)).await.0, Some(4001));
    }
    for board_id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let mut ws = WsClient::connect(
            &server,
            &format!("/ws/board/{board_id}/sync?token={ADMIN_TOKEN}"),
        )
        .await;
        assert_eq!(ws.expect_json().await["code"], 4004);
        assert_eq!(ws.expect_close(Duration::from_secs(5)).await.0, Some(4004));
    }
}

#[actix_web::test]
async fn bad_frames_are_answered_and_the_socket_stays_usable() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (mut ws, _) = subscribe(&server, &board).await;
    ws.send_text("not json").await;
    assert_eq!(ws.expect_json().await["code"], "invalid_json");
    ws.send(json!({"type": "teleport"})).await;
    assert_eq!(ws.expect_json().await["code"], "unknown_type");
    ws.send(json!({"type": "task.move", "task_id": "nope", "status": "done"}))
        .await;
    assert_eq!(ws.expect_json().await["code"], "invalid_frame");
    ws.send(json!({"type": "task.move", "task_id": uuid::Uuid::new_v4(), "status": "done"}))
        .await;
    assert_eq!(ws.expect_json().await["status"], 404);
    ws.send(json!({"type": "task.create", "title": "  "})).await;
    assert_eq!(ws.expect_json().await["status"], 422);
    ws.send(json!({"type": "heartbeat", "id": "42"})).await;
    assert_eq!(
        ws.expect_json().await,
        json!({"type": "heartbeat.ack", "id": "42"})
    );
}

#[actix_web::test]
async fn a_subscriber_that_stops_reading_is_closed_without_holding_up_the_others() {
    const CHANGES: usize = 300; // ~9 MB of events: past the stalled socket's kernel buffers
    let server = Server::builder()
        .env("WS_OUTBOUND_QUEUE_BYTES", "65536")
        .start()
        .await;
    let board = new_board(&server, json!({})).await;
    let task = ok(send(
        &server,
        Method::POST,
        &tasks_path(&board),
        json!({"title": "t"}),
    )
    .await);
    let stalled = stalled_socket(&server, &sync_path(&board, ADMIN_TOKEN), None);
    let (mut reader, state) = subscribe(&server, &board).await;
    let start = state["seq"].as_i64().unwrap();

    let path = format!("{}/{}", tasks_path(&board), task["id"].as_str().unwrap());
    let big = "x".repeat(30 * 1024);
    // The reading subscriber keeps up (it reads each change as it comes) and gets every
    // one, in order, while the stalled one fills up.
    for i in 0..CHANGES {
        let title = format!("{i}:{big}");
        ok(send(&server, Method::PATCH, &path, json!({"title": title})).await);
        let frame = reader.next_of("task.updated").await;
        assert_eq!(frame["seq"], start + 1 + i as i64, "in order, none missing");
    }
    // Reading again, the stalled client finds a 4009 close after what was queued.
    expect_closed_as_too_slow(&server, stalled).await;
}
