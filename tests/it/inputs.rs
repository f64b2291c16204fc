//! Input the database cannot take, requests that race, and the faults around a request:
//! NUL characters on every door (HTTP bodies and queries, the H5, board and relay sockets),
//! fragmented socket messages, a profile changed while it is deleted, a database that drops
//! its connections, and a port that is taken. None answers 500 or panics.

use std::time::Duration;

use awc::http::Method;
use serde_json::json;

use crate::fixtures::{create_board, create_gateway, h5_socket, h5_user, link, registered};
use crate::harness::{Server, WsClient, ADMIN_TOKEN};

/// An H5 user assigned to an agent of a linked relay gateway: (user's socket, agent id,
/// the gateway's link).
async fn chatting(server: &Server) -> (WsClient, String, WsClient) {
    let (gateway_id, relay_token) = registered(server, "Office").await;
    let gateway = server
        .admin_get(&format!("/api/v1/gateways/{gateway_id}"))
        .await
        .json;
    let board = create_board(server, &gateway, "Ops", json!({})).await;
    let agent = crate::fixtures::send(
        server,
        Method::POST,
        "/api/v1/agents",
        json!({"name": "Ada", "board_id": board["id"]}),
    )
    .await
    .json;
    let user = h5_user(server, &board, &agent, "nul-tester").await;
    let gateway_link = link(server, &gateway_id, &relay_token).await;
    let ws = h5_socket(server, &user).await;
    (ws, agent["id"].as_str().unwrap().to_string(), gateway_link)
}

#[actix_web::test]
async fn a_nul_character_is_refused_naming_the_field_on_every_door() {
    let server = Server::start().await;
    // An unauthenticated body.
    let org = server.admin_get("/api/v1/organizations/me").await.json["id"].clone();
    let register = server
        .call(
            Method::POST,
            "/api/v1/h5/auth/register",
            None,
            Some(
                r#"{"organization_id": "ORG", "username": "a\u0000b", "password": "secret-pass"}"#
                    .replace("ORG", org.as_str().unwrap())
                    .as_str(),
            ),
        )
        .await;
    assert_eq!(register.status, 422, "{}", register.text);
    assert_eq!(
        register.json["detail"][0]["loc"],
        json!(["body", "username"])
    );
    // A query and a path.
    let query = server.admin_get("/api/v1/boards?search=a%00b").await;
    assert_eq!(query.status, 422, "{}", query.text);
    assert_eq!(query.json["detail"][0]["loc"], json!(["query", "search"]));
    let path = server.admin_get("/api/v1/boards/a%00b").await;
    assert_eq!(path.status, 422, "{}", path.text);

    // The H5 socket: a permanent error about that frame; the socket stays usable.
    let (mut ws, agent, mut gateway) = chatting(&server).await;
    ws.send_text(&format!(
        r#"{{"type":"chat","id":"local-1","payload":{{"agent_id":"{agent}","content":"a\u0000b"}}}}"#
    ))
    .await;
    let refused = ws.next_of("error").await;
    assert_eq!(refused["id"], "local-1");
    assert_eq!(refused["payload"]["code"], "INVALID_TEXT", "{refused}");
    assert!(refused["payload"]["message"]
        .as_str()
        .unwrap()
        .contains("payload.content"));
    ws.send(
        json!({"type": "chat", "id": "local-2", "payload": {"agent_id": agent, "content": "fine"}}),
    )
    .await;
    assert_eq!(ws.next_of("chat_ack").await["id"], "local-2");

    // A gateway's answer holding a NUL is stored and delivered, the NUL replaced.
    let send = gateway.next_of("chat.send").await;
    gateway
        .send_text(&format!(
            r#"{{"type":"chat.reply","id":"r-1","payload":{{"session_key":"{}","content":"x\u0000y"}}}}"#,
            send["payload"]["session_key"].as_str().unwrap()
        ))
        .await;
    let reply = ws.next_of("chat_reply").await;
    assert_eq!(reply["payload"]["content"], "x\u{fffd}y");
    assert_eq!(gateway.next_of("chat.reply.ack").await["id"], "r-1");

    // The board socket.
    let board = server.admin_get("/api/v1/boards").await.json["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut sync = WsClient::connect(
        &server,
        &format!("/ws/board/{board}/sync?token={ADMIN_TOKEN}"),
    )
    .await;
    sync.next_of("board.state").await;
    sync.send_text(r#"{"type":"task.create","title":"a\u0000b"}"#)
        .await;
    let refused = sync.next_of("error").await;
    assert_eq!(refused["code"], "invalid_text", "{refused}");
}

#[actix_web::test]
async fn a_fragmented_text_message_is_read_whole() {
    let server = Server::start().await;
    let (mut ws, agent, _gateway) = chatting(&server).await;
    let frame = json!({"type": "chat", "id": "local-1",
                       "payload": {"agent_id": agent, "content": "in pieces ".repeat(40)}});
    ws.send_fragmented(&frame.to_string(), 64).await;
    let ack = ws.next_of("chat_ack").await;
    assert_eq!(ack["id"], "local-1", "{ack}");
}

#[actix_web::test]
async fn a_profile_changed_while_it_is_deleted_is_never_a_500() {
    for _ in 0..10 {
        let server = Server::start().await;
        server.admin_get("/api/v1/users/me").await;
        let patch = server.call(
            Method::PATCH,
            "/api/v1/users/me",
            Some(ADMIN_TOKEN),
            Some(r#"{"preferred_name": "Racer"}"#),
        );
        let delete = server.call(Method::DELETE, "/api/v1/users/me", Some(ADMIN_TOKEN), None);
        let (patched, deleted) = futures_util::future::join(patch, delete).await;
        for reply in [&patched, &deleted] {
            assert!(
                [200, 404, 409].contains(&reply.status.as_u16()),
                "{} {}",
                reply.status,
                reply.text
            );
        }
    }
}

#[actix_web::test]
async fn a_request_whose_connection_the_database_drops_answers_503_with_retry_after() {
    let server = Server::start().await;
    let gateway = create_gateway(&server, "GW").await;
    let board = create_board(&server, &gateway, "Ops", json!({})).await;
    let board_id: uuid::Uuid = board["id"].as_str().unwrap().parse().unwrap();
    // The request will wait for this lock; meanwhile its connection is killed, as a
    // database that restarts would.
    let mut holder = server.db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM boards WHERE id = $1 FOR UPDATE",
        &[&board_id],
    )
    .await
    .unwrap();
    let path = format!("/api/v1/boards/{board_id}");
    let patch = server.call(
        Method::PATCH,
        &path,
        Some(ADMIN_TOKEN),
        Some(r#"{"description": "changed"}"#),
    );
    let killer = async {
        let admin = server.db.client().await;
        let killed = crate::harness::eventually(Duration::from_secs(10), || async {
            admin
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                > 0
        })
        .await;
        assert!(killed, "the request never waited for the lock");
    };
    let (reply, ()) = futures_util::future::join(patch, killer).await;
    tx.rollback().await.unwrap();
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.header("retry-after"), Some("1"));
    // And it serves again by itself.
    assert!(
        crate::harness::eventually(Duration::from_secs(5), || async {
            server.admin_get("/api/v1/boards").await.status == 200
        })
        .await
    );
}

#[test]
fn a_taken_port_is_a_clear_error_without_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = crate::harness::run(
        &["serve", "--bind", &format!("127.0.0.1:{port}")],
        &[
            ("AUTH_MODE", "local"),
            ("LOCAL_AUTH_TOKEN", ADMIN_TOKEN),
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BIND: cannot listen"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
