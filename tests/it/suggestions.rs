//! Live suggestions: a suggestion published by another instance reaches the SSE stream
//! and the board sockets of its board. The publishing instance here is this test process
//! running the library's own Bridge and SuggestionHubs against the shared Redis, and
//! calling `suggestions::publish`, the function the proactivity engine will call.

use std::time::Duration;

use actix::{Actor, Addr};
use mission_control::actors::bridge::Bridge;
use mission_control::actors::suggestions::{self, SuggestionHubs};
use mission_control::db::cache;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::new_board;
use crate::harness::{redis_url, Server, SseClient, SseItem, WsClient, ADMIN_TOKEN};

fn other_instance() -> Addr<SuggestionHubs> {
    let url = redis_url();
    let publisher = cache::pool(&url, 2).expect("redis pool");
    let bridge = Bridge::redis(&format!("test-{}", Uuid::new_v4()), &url, publisher)
        .expect("bridge")
        .start();
    SuggestionHubs::new(bridge).start()
}

async fn organization_id(server: &Server) -> Uuid {
    let org = server.admin_get("/api/v1/organizations/me").await;
    org.json["id"].as_str().unwrap().parse().unwrap()
}

fn suggestion(org: Uuid, board: Option<&Value>, title: &str) -> Value {
    json!({
        "id": Uuid::new_v4(), "organization_id": org, "board_id": board.map(|b| b["id"].clone()),
        "suggestion_type": "workload", "title": title, "confidence": 0.8, "priority": "high",
        "status": "pending", "created_at": "2026-11-25T10:00:00Z", "updated_at": "2026-11-25T10:00:00Z",
    })
}

#[actix_web::test]
async fn a_suggestion_from_another_instance_reaches_the_stream_and_its_boards_sockets() {
    let server = Server::builder()
        .env("SSE_KEEPALIVE_SECONDS", "1")
        .start()
        .await;
    let org = organization_id(&server).await;
    let board = new_board(&server, json!({})).await;
    let other_board = new_board(&server, json!({})).await;
    let mut stream = SseClient::open(&server, "/api/v1/suggestions/stream", None).await;
    let board_socket = |b: &Value| {
        format!(
            "/ws/board/{}/sync?token={ADMIN_TOKEN}",
            b["id"].as_str().unwrap()
        )
    };
    let mut on_board = WsClient::connect(&server, &board_socket(&board)).await;
    assert_eq!(on_board.expect_json().await["type"], "board.state");
    let mut on_other = WsClient::connect(&server, &board_socket(&other_board)).await;
    assert_eq!(on_other.expect_json().await["type"], "board.state");

    // The first keepalive proves the stream is up (and its listener registered).
    assert_eq!(
        stream.next(Duration::from_secs(3)).await,
        Some(SseItem::Comment("keepalive".into()))
    );
    let hubs = other_instance();
    let sent = suggestion(org, Some(&board), "Rebalance the inbox");
    // The other instance's subscription to Redis may still be settling: publish until heard.
    let mut heard = None;
    for _ in 0..20 {
        suggestions::publish(&hubs, org, sent.clone());
        if let Some(SseItem::Event { event, data, .. }) =
            stream.next(Duration::from_millis(500)).await
        {
            heard = Some((event, data));
            break;
        }
    }
    let (event, data) = heard.expect("the suggestion arrives");
    assert_eq!(event, "suggestion");
    assert_eq!(data, json!({"type": "suggestion.new", "suggestion": sent}));

    let frame = on_board.expect_json().await;
    assert_eq!(frame["type"], "suggestion.new");
    assert_eq!(frame["suggestion"]["id"], sent["id"]);
    assert!(
        matches!(
            on_other.next(Duration::from_millis(300)).await,
            crate::harness::WsEvent::TimedOut
        ),
        "another board's socket does not get it"
    );

    // Another organization's suggestion stays in its organization.
    suggestions::publish(
        &hubs,
        Uuid::new_v4(),
        suggestion(Uuid::new_v4(), None, "elsewhere"),
    );
    match stream.next(Duration::from_millis(1500)).await {
        Some(SseItem::Comment(_)) => {}
        Some(SseItem::Event { data, .. }) => panic!("foreign suggestion delivered: {data}"),
        None => panic!("stream went quiet without keepalive"),
    }
}

#[actix_web::test]
async fn the_suggestion_stream_needs_the_admin_token() {
    let server = Server::start().await;
    let reply = server
        .call(
            awc::http::Method::GET,
            "/api/v1/suggestions/stream",
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
}
