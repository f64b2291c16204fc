//! `/ws/gateway/{id}/relay-m4`, the reference's chat socket for gateways (realtime.md §5.3):
//! an adapter written for the reference replays its frames in order and gets the
//! reference's answers, field by field; its chat takes our stored, routed path (the H5 side
//! gets our chat frames, which the H5 app reads the same way).

use std::time::Duration;

use serde_json::json;

use crate::h5_chat::{h5, world};
use crate::harness::{Server, WsClient, WsEvent};

fn path(gateway: &str) -> String {
    format!("/ws/gateway/{gateway}/relay-m4")
}

/// Nothing comes for a while (and the socket is still open).
async fn silent(ws: &mut WsClient) {
    match ws.next(Duration::from_millis(400)).await {
        WsEvent::TimedOut => {}
        other => panic!("expected nothing, got {other:?}"),
    }
}

#[actix_web::test]
async fn refusals_are_closes_with_the_reference_reasons_and_no_frame() {
    let server = Server::start().await;
    let w = world(&server).await;
    for (first, reason) in [
        ("not json", "invalid auth message"),
        (r#"{"type":"hello"}"#, "expected auth message"),
        (r#"{"type":"auth","payload":{}}"#, "missing relay_token"),
        (
            r#"{"type":"auth","payload":{"relay_token":"wrong"}}"#,
            "invalid credentials",
        ),
    ] {
        let mut ws = WsClient::connect(&server, &path(&w.gateway)).await;
        ws.send_text(first).await;
        match ws.next(Duration::from_secs(5)).await {
            WsEvent::Closed(code, said) => assert_eq!((code, said.as_str()), (Some(4001), reason)),
            other => panic!("{first}: expected a close, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn the_reference_frames_get_the_reference_answers_in_order() {
    let server = Server::builder()
        .env("WS_HEARTBEAT_INTERVAL_SECONDS", "25")
        .start()
        .await;
    let w = world(&server).await;
    let mut gateway = WsClient::connect(&server, &path(&w.gateway)).await;
    gateway
        .send(json!({"type": "auth", "payload": {"relay_token": w.relay_token}}))
        .await;
    assert_eq!(
        gateway.expect_json().await,
        json!({"type": "auth_ok", "payload": {"gateway_id": w.gateway,
               "config": {"heartbeat_interval_seconds": 25}}})
    );
    gateway.send(json!({"type": "heartbeat", "id": 7})).await;
    assert_eq!(
        gateway.expect_json().await,
        json!({"type": "heartbeat_ack", "id": 7})
    );
    gateway.send(json!({"type": "heartbeat"})).await;
    assert_eq!(
        gateway.expect_json().await,
        json!({"type": "heartbeat_ack", "id": null})
    );
    // Bad JSON, other types, a reply without content: ignored, the socket stays open.
    gateway.send_text("not json").await;
    gateway.send(json!({"type": "whatever"})).await;
    gateway.send(json!(["an", "array"])).await;
    gateway
        .send(json!({"type": "chat.reply", "payload": {"session_key": "h5:x:y"}}))
        .await;
    silent(&mut gateway).await;

    // An H5 message reaches the gateway as the reference's `chat.send`.
    let mut user = h5(&server, &w).await;
    user.send(json!({"type": "chat", "id": "c-1",
                     "payload": {"agent_id": w.agent, "content": "hello"}}))
        .await;
    let send = gateway.next_of("chat.send").await;
    let key = format!("h5:{}:{}", w.user_id, w.agent);
    assert_eq!(send["id"], "c-1");
    let payload = &send["payload"];
    assert_eq!(
        (
            &payload["session_key"],
            &payload["h5_user_id"],
            &payload["agent_id"],
            &payload["content"],
            &payload["role"],
        ),
        (
            &json!(key),
            &json!(w.user_id),
            &json!(w.agent),
            &json!("hello"),
            &json!("user")
        )
    );

    // The gateway's reply reaches the user as the reference's `chat_reply`; nothing goes
    // back to the gateway (the reference acknowledges nothing).
    gateway
        .send(json!({"type": "chat.reply", "id": "r-1",
                     "payload": {"session_key": key, "content": "hi there", "extra": {"mood": "glad"}}}))
        .await;
    let reply = user.next_of("chat_reply").await;
    // Its `id` is the stored message's (the H5 side's resume and de-duplication key,
    // docs/relay-protocol.md), where the reference forwarded the gateway's.
    assert!(reply["id"]
        .as_str()
        .is_some_and(|id| id.parse::<uuid::Uuid>().is_ok()));
    let payload = &reply["payload"];
    assert_eq!(
        (
            &payload["session_key"],
            &payload["agent_id"],
            &payload["content"],
            &payload["role"],
            &payload["mood"],
        ),
        (
            &json!(key),
            &json!(w.agent),
            &json!("hi there"),
            &json!("assistant"),
            &json!("glad")
        )
    );
    silent(&mut gateway).await;
    // `chat_reply` is the reference's synonym.
    gateway
        .send(json!({"type": "chat_reply", "id": "r-2",
                     "payload": {"session_key": key, "content": "again"}}))
        .await;
    assert_eq!(
        user.next_of("chat_reply").await["payload"]["content"],
        "again"
    );
}
