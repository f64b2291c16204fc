//! Who hears of memory posts: board chat reaches leads and mentioned agents, `/pause` every
//! agent, group chat the group's leads, broadcasts every agent of the group; never the poster.

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{agent, as_agent, create_agent, create_board, create_group, make_lead, send};
use crate::gateway_requests::{connect, labels, message, notices, office, requests};
use crate::harness::Server;

async fn post(server: &Server, path: &str, body: Value) {
    let reply = send(server, Method::POST, path, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[actix_web::test]
async fn chat_posts_reach_leads_mentioned_agents_and_everyone_on_a_broadcast() {
    let server = Server::start().await;
    let (gateway, ops) = office(&server).await;
    let ops_id = ops["id"].as_str().unwrap();
    let (lead, _) = agent(&server, &ops, "Lena").await;
    make_lead(&server, &lead).await;
    let (_ada, ada_token) = agent(&server, &ops, "Ada Lovelace").await;
    agent(&server, &ops, "Bob").await;
    let mut ws = connect(&server).await;
    let memory = format!("/api/v1/boards/{ops_id}/memory");

    // Chat reaches the lead; a mention reaches the agent too, under its own header.
    post(
        &server,
        &memory,
        json!({"content": "hello team", "tags": ["chat"]}),
    )
    .await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert_eq!(heard[0]["kind"], "board_chat");
    assert_eq!(
        message(&heard[0]),
        format!(
            "BOARD CHAT\nBoard: Ops\nFrom: Local User\n\nhello team\n\nReply via board chat:\n\
             POST http://localhost:8000/api/v1/agent/boards/{ops_id}/memory\n\
             Body: {{\"content\":\"...\",\"tags\":[\"chat\"]}}"
        )
    );
    post(
        &server,
        &memory,
        json!({"content": "@ada please look", "tags": ["chat"]}),
    )
    .await;
    let heard = notices(&mut ws, 2).await;
    assert_eq!(labels(&heard), ["Ada Lovelace", "Lena"]);
    assert!(message(&heard[0]).starts_with("BOARD CHAT MENTION\n"));
    assert!(message(&heard[1]).starts_with("BOARD CHAT\n"));

    // A note that is not chat tells no one; /pause tells every agent but the poster.
    post(
        &server,
        &memory,
        json!({"content": "a note", "tags": ["decision"]}),
    )
    .await;
    let paused = as_agent(
        &server,
        &ada_token,
        Method::POST,
        &format!("/api/v1/agent/boards/{ops_id}/memory"),
        Some(json!({"content": " /PAUSE ", "tags": ["chat"]})),
    )
    .await;
    assert_eq!(paused.status, 200, "{}", paused.text);
    let heard = notices(&mut ws, 2).await;
    assert_eq!(labels(&heard), ["Bob", "Lena"]);
    assert!(heard
        .iter()
        .all(|n| n["message"] == "/pause" && n["deliver"] == true));

    // An agent's chat names it as the sender and does not come back to it.
    as_agent(
        &server,
        &ada_token,
        Method::POST,
        &format!("/api/v1/agent/boards/{ops_id}/memory"),
        Some(json!({"content": "@lead done", "tags": ["chat"]})),
    )
    .await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert!(message(&heard[0]).starts_with("BOARD CHAT MENTION\nBoard: Ops\nFrom: Ada Lovelace\n"));

    // Group chat reaches the group's leads; a broadcast every agent of its boards.
    let group = create_group(&server, "Launch").await;
    let group_id = group["id"].as_str().unwrap();
    send(
        &server,
        Method::PATCH,
        &format!("/api/v1/boards/{ops_id}"),
        json!({"board_group_id": group_id}),
    )
    .await;
    let dev = create_board(
        &server,
        &gateway,
        "Dev",
        json!({"board_group_id": group_id}),
    )
    .await;
    create_agent(&server, &dev, "Builder").await;
    // The group moves told Ops' agents; they are not what this test is about.
    notices(&mut ws, 3).await;
    post(
        &server,
        &format!("/api/v1/board-groups/{group_id}/memory"),
        json!({"content": "sync at 5", "tags": ["chat"]}),
    )
    .await;
    let heard = notices(&mut ws, 1).await;
    assert_eq!(labels(&heard), ["Lena"]);
    assert!(message(&heard[0])
        .starts_with("GROUP CHAT\nGroup: Launch\nFrom: Local User\n\nsync at 5\n"));
    assert!(message(&heard[0]).contains(&format!(
        "POST http://localhost:8000/api/v1/boards/{ops_id}/group-memory\n"
    )));
    post(
        &server,
        &format!(
            "/api/v1/boards/{}/group-memory",
            dev["id"].as_str().unwrap()
        ),
        json!({"content": "@all standup"}),
    )
    .await;
    let heard = notices(&mut ws, 4).await;
    assert_eq!(labels(&heard), ["Ada Lovelace", "Bob", "Builder", "Lena"]);
    assert!(heard
        .iter()
        .all(|n| message(n).starts_with("GROUP BROADCAST\n")));

    let chats = requests(&server, gateway["id"].as_str().unwrap())
        .await
        .iter()
        .filter(|r| r["method"] == "sessions.send" && r["params"]["kind"] != "board_group_join")
        .count();
    assert_eq!(chats, 1 + 2 + 2 + 1 + 1 + 4, "nothing else was sent");
}
