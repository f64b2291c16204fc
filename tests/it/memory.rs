//! Board memory and board-group memory: create, list, filter, access, and their streams.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{new_board, send, switch_to_new_org};
use crate::harness::{Reply, Server, SseClient, SseItem};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn board_path(board: &Value, rest: &str) -> String {
    format!("/api/v1/boards/{}{rest}", board["id"].as_str().unwrap())
}

fn group_path(group: &Value, rest: &str) -> String {
    format!(
        "/api/v1/board-groups/{}{rest}",
        group["id"].as_str().unwrap()
    )
}

/// A group holding one board.
async fn group_with_board(server: &Server) -> (Value, Value) {
    let group = ok(send(
        server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Launch", "slug": "launch"}),
    )
    .await);
    let board = new_board(server, json!({"board_group_id": group["id"]})).await;
    (group, board)
}

/// How the reference names the local user on chat it posts.
async fn my_name(server: &Server) -> Value {
    let me = server.admin_get("/api/v1/users/me").await.json;
    let named = [&me["preferred_name"], &me["name"]]
        .into_iter()
        .find(|n| n.as_str().is_some_and(|s| !s.is_empty()))
        .cloned();
    named.unwrap_or(json!("User"))
}

fn seq(id: &Option<String>) -> i64 {
    id.as_deref()
        .expect("event id")
        .parse()
        .expect("numeric id")
}

#[actix_web::test]
async fn board_memory_is_listed_newest_first_filtered_by_chat_and_in_the_snapshot() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let memory = board_path(&board, "/memory");

    let note = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "  Deploy on Fridays is banned  ", "tags": ["decision"], "source": "retro"}),
    )
    .await);
    assert_eq!(note["board_id"], board["id"]);
    assert_eq!(note["content"], "Deploy on Fridays is banned");
    assert_eq!(note["tags"], json!(["decision"]));
    assert_eq!(note["source"], "retro");
    assert_eq!(note["is_chat"], false);
    assert!(note["created_at"].is_string() && note["id"].is_string());

    let chat = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "hello team", "tags": ["chat"]}),
    )
    .await);
    assert_eq!(chat["is_chat"], true);
    assert_eq!(
        chat["source"],
        my_name(&server).await,
        "chat without source names its author"
    );
    let plain = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "no tags"}),
    )
    .await);
    assert_eq!(plain["tags"], Value::Null);
    assert_eq!(plain["source"], Value::Null);

    let all = ok(server.admin_get(&memory).await);
    assert_eq!(all["total"], 3);
    assert_eq!(
        (all["limit"].clone(), all["offset"].clone()),
        (json!(200), json!(0))
    );
    let contents: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["no tags", "hello team", "Deploy on Fridays is banned"]
    );
    let chats = ok(server.admin_get(&format!("{memory}?is_chat=true")).await);
    assert_eq!(chats["total"], 1);
    assert_eq!(chats["items"][0]["id"], chat["id"]);
    let notes = ok(server
        .admin_get(&format!("{memory}?is_chat=false&limit=1&offset=1"))
        .await);
    assert_eq!(notes["total"], 2);
    assert_eq!(notes["items"][0]["id"], note["id"]);

    // Rows written blank by older code are never shown.
    server
        .db
        .client()
        .await
        .execute(
            "INSERT INTO board_memory (id, organization_id, board_id, content, is_chat, feed_seq) \
             SELECT gen_random_uuid(), organization_id, id, '   ', true, 1000 FROM boards WHERE id = $1::text::uuid",
            &[&board["id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(ok(server.admin_get(&memory).await)["total"], 3);

    let second = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "second", "tags": ["chat", "x"]}),
    )
    .await);
    let snapshot = ok(server.admin_get(&board_path(&board, "/snapshot")).await);
    let ids: Vec<&Value> = snapshot["chat_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&chat["id"], &second["id"]], "chat only, oldest first");
}

#[actix_web::test]
async fn memory_input_and_access_are_checked() {
    let server = Server::start().await;
    let (group, board) = group_with_board(&server).await;
    let paths = [
        board_path(&board, "/memory"),
        group_path(&group, "/memory"),
        board_path(&board, "/group-memory"),
    ];
    for path in &paths {
        for body in [
            json!({}),
            json!({"content": "   "}),
            json!({"content": 5}),
            json!({"content": "x", "tags": "chat"}),
            json!({"content": "x", "source": ["a"]}),
        ] {
            let reply = send(&server, Method::POST, path, body.clone()).await;
            assert_eq!(reply.status, 422, "{path} {body}: {}", reply.text);
            assert!(reply.json["detail"][0]["loc"].is_array(), "{}", reply.text);
        }
        assert_eq!(
            server
                .admin_get(&format!("{path}?is_chat=maybe"))
                .await
                .status,
            422
        );
        assert_eq!(
            server.admin_get(&format!("{path}?limit=0")).await.status,
            422
        );
        for method in [Method::GET, Method::POST] {
            let reply = server
                .call(method.clone(), path, None, Some(r#"{"content":"x"}"#))
                .await;
            assert_eq!(reply.status, 401, "{method} {path}");
        }
        let stream = server
            .call(Method::GET, &format!("{path}/stream"), None, None)
            .await;
        assert_eq!(stream.status, 401);
    }
    assert_eq!(
        server
            .admin_get("/api/v1/boards/not-a-uuid/memory")
            .await
            .status,
        422
    );

    // Another organization's board and group are not found.
    switch_to_new_org(&server).await;
    for path in &paths {
        assert_eq!(server.admin_get(path).await.status, 404, "{path}");
        assert_eq!(
            server.admin_get(&format!("{path}/stream")).await.status,
            404,
            "{path}"
        );
        let reply = send(&server, Method::POST, path, json!({"content": "x"})).await;
        assert_eq!(reply.status, 404, "{path}");
    }
}

#[actix_web::test]
async fn group_memory_names_chat_broadcast_and_all_posts_after_their_author() {
    let server = Server::start().await;
    let (group, board) = group_with_board(&server).await;
    let memory = group_path(&group, "/memory");
    let me = my_name(&server).await;

    let note = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "shared context"}),
    )
    .await);
    assert_eq!(note["board_group_id"], group["id"]);
    assert_eq!(note["source"], Value::Null);
    assert_eq!(note["is_chat"], false);
    let broadcast = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "freeze", "tags": ["broadcast"]}),
    )
    .await);
    assert_eq!(
        (broadcast["source"].clone(), broadcast["is_chat"].clone()),
        (me.clone(), json!(false))
    );
    let all = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "hey @all"}),
    )
    .await);
    assert_eq!(all["source"], me);
    let chat = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "hi", "tags": ["chat"], "source": "ops"}),
    )
    .await);
    assert_eq!(
        (chat["source"].clone(), chat["is_chat"].clone()),
        (json!("ops"), json!(true))
    );
    let mention = ok(send(
        &server,
        Method::POST,
        &memory,
        json!({"content": "ping @allen"}),
    )
    .await);
    assert_eq!(mention["source"], Value::Null);

    let listed = ok(server.admin_get(&memory).await);
    assert_eq!(listed["total"], 5);
    assert_eq!(listed["items"][0]["id"], mention["id"]);
    let chats = ok(server.admin_get(&format!("{memory}?is_chat=true")).await);
    assert_eq!(chats["total"], 1);
    assert_eq!(chats["items"][0]["id"], chat["id"]);

    // A board's group-memory routes act on its group.
    let via_board = board_path(&board, "/group-memory");
    let posted = ok(send(
        &server,
        Method::POST,
        &via_board,
        json!({"content": "from the board", "tags": ["chat"]}),
    )
    .await);
    assert_eq!(posted["board_group_id"], group["id"]);
    assert_eq!(posted["source"], me);
    let listed = ok(server.admin_get(&format!("{via_board}?is_chat=true")).await);
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["items"][0]["id"], posted["id"]);
    assert_eq!(ok(server.admin_get(&memory).await)["total"], 6);

    // A board outside any group lists nothing and cannot post.
    let loner = board_path(&new_board(&server, json!({})).await, "/group-memory");
    assert_eq!(
        ok(server.admin_get(&format!("{loner}?limit=5")).await),
        json!({"items": [], "total": 0, "limit": 5, "offset": 0})
    );
    let refused = send(&server, Method::POST, &loner, json!({"content": "x"})).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json["detail"], "Board is not in a board group");
    let mut quiet = SseClient::open(&server, &format!("{loner}/stream"), None).await;
    assert!(!matches!(
        quiet.next(Duration::from_millis(300)).await,
        Some(SseItem::Event { .. })
    ));
}

#[actix_web::test]
async fn memory_posted_on_one_instance_reaches_a_stream_on_the_other() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let (group, board) = group_with_board(&a).await;
    let mut board_stream = SseClient::open(&b, &board_path(&board, "/memory/stream"), None).await;
    let mut chat_stream =
        SseClient::open(&b, &board_path(&board, "/memory/stream?is_chat=true"), None).await;
    let mut group_stream = SseClient::open(&b, &group_path(&group, "/memory/stream"), None).await;
    let mut via_board =
        SseClient::open(&b, &board_path(&board, "/group-memory/stream"), None).await;

    let note = ok(send(
        &a,
        Method::POST,
        &board_path(&board, "/memory"),
        json!({"content": "note"}),
    )
    .await);
    let chat = ok(send(
        &a,
        Method::POST,
        &board_path(&board, "/memory"),
        json!({"content": "chat", "tags": ["chat"]}),
    )
    .await);
    let (event, first, data) = board_stream.event().await;
    assert_eq!(event, "memory");
    assert_eq!(data["memory"], note);
    let (_, second, data) = board_stream.event().await;
    assert_eq!(data["memory"], chat);
    assert!(seq(&second) > seq(&first));
    let (_, id, data) = chat_stream.event().await;
    assert_eq!(
        data["memory"]["id"], chat["id"],
        "the chat filter skips the note"
    );
    assert_eq!(id, second);

    let shared = ok(send(
        &a,
        Method::POST,
        &group_path(&group, "/memory"),
        json!({"content": "shared"}),
    )
    .await);
    let (event, id, data) = group_stream.event().await;
    assert_eq!(event, "memory");
    assert_eq!(data["memory"], shared);
    assert_eq!(seq(&id), 1, "the group's own feed numbers");
    let (_, id, data) = via_board.event().await;
    assert_eq!(data["memory"], shared);
    assert_eq!(seq(&id), 1);
}

#[actix_web::test]
async fn a_reconnecting_memory_listener_gets_exactly_what_it_missed() {
    let server = Server::start().await;
    let (group, board) = group_with_board(&server).await;
    for (path, stream) in [
        (
            board_path(&board, "/memory"),
            board_path(&board, "/memory/stream"),
        ),
        (
            group_path(&group, "/memory"),
            group_path(&group, "/memory/stream"),
        ),
    ] {
        let mut listener = SseClient::open(&server, &stream, None).await;
        ok(send(&server, Method::POST, &path, json!({"content": "one"})).await);
        let (_, last, _) = listener.event().await;
        drop(listener);

        for content in ["two", "three"] {
            ok(send(&server, Method::POST, &path, json!({"content": content})).await);
        }
        let mut resumed = SseClient::open(&server, &stream, last.as_deref()).await;
        let contents = [resumed.event().await.2, resumed.event().await.2]
            .map(|d| d["memory"]["content"].as_str().unwrap().to_string());
        assert_eq!(contents, ["two", "three"], "{stream}");
        assert!(
            !matches!(
                resumed.next(Duration::from_millis(300)).await,
                Some(SseItem::Event { .. })
            ),
            "nothing twice on {stream}"
        );

        // `since` replays from a time; one that does not parse means "from now".
        let mut replay = SseClient::open(
            &server,
            &format!("{stream}?since=2000-01-01T00:00:00Z"),
            None,
        )
        .await;
        assert_eq!(replay.event().await.2["memory"]["content"], "one");
        let mut fresh = SseClient::open(&server, &format!("{stream}?since=yesterday"), None).await;
        assert!(!matches!(
            fresh.next(Duration::from_millis(300)).await,
            Some(SseItem::Event { .. })
        ));
    }
}
