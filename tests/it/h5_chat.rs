//! The H5 chat relay: H5 socket → server → the agent's gateway link → reply → every socket
//! of the user, across two instances, stored before routing, resumable without loss.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{
    expect_closed_as_too_slow, stalled_socket, Server, WsClient, WsEvent, ADMIN_TOKEN,
};

pub(crate) struct World {
    pub(crate) org: String,
    pub(crate) agent: Uuid,
    pub(crate) gateway: String,
    pub(crate) relay_token: String,
    pub(crate) user_id: String,
    access: String,
}

async fn post(
    server: &Server,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> crate::harness::Reply {
    server
        .call(Method::POST, path, token, Some(&body.to_string()))
        .await
}

/// A registered gateway with an agent on a board, and an H5 user assigned to that agent.
pub(crate) async fn world(server: &Server) -> World {
    let org = server.admin_get("/api/v1/organizations/me").await.json["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token = post(
        server,
        "/api/v1/gateway-registry/tokens",
        Some(ADMIN_TOKEN),
        json!({}),
    )
    .await
    .json["registration_token"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = post(
        server,
        "/api/v1/gateway-registry/register",
        None,
        json!({"organization_id": org, "registration_token": token, "name": "office", "url": "http://o", "workspace_root": "/w"}),
    )
    .await
    .json;
    let gateway = reg["gateway_id"].as_str().unwrap().to_string();
    let (board, agent) = (Uuid::new_v4(), Uuid::new_v4());
    server
        .db
        .client()
        .await
        .batch_execute(&format!(
            "INSERT INTO boards (id, organization_id, name, description, gateway_id) VALUES ('{board}', '{org}', 'b', 'd', '{gateway}');
             INSERT INTO agents (id, organization_id, board_id, gateway_id, name) VALUES ('{agent}', '{org}', '{board}', '{gateway}', 'Ada');"
        ))
        .await
        .unwrap();
    let user = post(
        server,
        "/api/v1/h5/auth/register",
        None,
        json!({"organization_id": org, "username": "alice", "password": "secret-pass"}),
    )
    .await
    .json;
    let user_id = user["user"]["id"].as_str().unwrap().to_string();
    let assigned = post(
        server,
        &format!("/api/v1/h5/users/{user_id}/assign"),
        Some(ADMIN_TOKEN),
        json!({"agent_id": agent, "board_id": board}),
    )
    .await;
    assert_eq!(assigned.status, 201, "{}", assigned.text);
    World {
        org,
        agent,
        gateway,
        relay_token: reg["relay_token"].as_str().unwrap().to_string(),
        user_id,
        access: user["access_token"].as_str().unwrap().to_string(),
    }
}

async fn gateway_link(server: &Server, w: &World) -> WsClient {
    let mut ws = WsClient::connect(server, &format!("/ws/gateway/{}/relay", w.gateway)).await;
    ws.send(json!({"type": "auth", "payload": {"relay_token": w.relay_token}}))
        .await;
    assert_eq!(ws.expect_json().await["type"], "auth_ok");
    ws
}

pub(crate) async fn h5(server: &Server, w: &World) -> WsClient {
    let mut ws = WsClient::connect(server, "/ws/h5/chat").await;
    ws.send(json!({"type": "auth", "payload": {"token": w.access}}))
        .await;
    let ok = ws.expect_json().await;
    assert_eq!(
        ok,
        json!({"type": "auth_ok", "payload": {"h5_user_id": w.user_id, "organization_id": w.org}})
    );
    ws
}

fn chat(w: &World, id: &str, content: &str) -> Value {
    json!({"type": "chat", "payload": {"agent_id": w.agent, "content": content, "session_id": "route-param"}, "id": id})
}

/// The gateway answers a `chat.send` the way the simulator does.
async fn reply(gateway: &mut WsClient, send: &Value, content: &str) {
    gateway
        .send(json!({"type": "chat.reply", "id": format!("r-{}", send["id"].as_str().unwrap_or("x")),
                     "payload": {"session_key": send["payload"]["session_key"], "content": content}}))
        .await;
}

async fn wait_linked(server: &Server, w: &World) {
    let path = format!("/api/v1/gateways/{}/connections", w.gateway);
    assert!(
        crate::harness::eventually(Duration::from_secs(5), || async {
            server.admin_get(&path).await.json["is_connected"] == true
        })
        .await
    );
}

#[actix_web::test]
async fn a_message_crosses_instances_and_the_reply_comes_back() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let w = world(&a).await;
    let mut gateway = gateway_link(&b, &w).await;
    wait_linked(&a, &w).await;
    let mut user = h5(&a, &w).await;

    user.send(chat(&w, "local-1", "hello")).await;
    let ack = user.next_of("chat_ack").await;
    assert_eq!(ack["id"], "local-1");
    assert_eq!(ack["payload"]["status"], "stored");
    let send = gateway.next_of("chat.send").await;
    assert_eq!(send["id"], "local-1");
    assert_eq!(send["payload"]["content"], "hello");
    assert_eq!(send["payload"]["role"], "user");
    assert_eq!(
        send["payload"]["session_key"],
        format!("h5:{}:{}", w.user_id, w.agent)
    );
    assert_eq!(send["payload"]["agent_id"], w.agent.to_string());

    reply(&mut gateway, &send, "hi there").await;
    let answer = user.next_of("chat_reply").await;
    assert_eq!(answer["payload"]["agent_id"], w.agent.to_string());
    assert_eq!(answer["payload"]["content"], "hi there");
    assert_eq!(answer["payload"]["role"], "assistant");
    assert_ne!(
        answer["id"], "local-1",
        "the reply's id must not collide with the user's bubble"
    );
}

/// A busy chat on a server with a small pool: the link records what the gateway took and
/// stores replies, the user's socket records what it was handed, all while frames keep
/// coming. Work a socket actor holds a connection for is never frozen by its own waits
/// (it held the whole pool that way, and chat stopped), so every reply arrives.
#[actix_web::test]
async fn a_busy_chat_on_a_small_pool_loses_no_reply() {
    const MESSAGES: usize = 60;
    let server = Server::builder().env("DB_POOL_SIZE", "2").start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    wait_linked(&server, &w).await;
    let mut user = h5(&server, &w).await;
    for i in 0..MESSAGES {
        user.send(chat(&w, &format!("local-{i}"), &format!("m{i}")))
            .await;
    }
    let mut answered = 0;
    while answered < MESSAGES {
        let frame = gateway.expect_json().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "chat.send" {
            let content = format!("re {}", frame["payload"]["content"].as_str().unwrap());
            reply(&mut gateway, &frame, &content).await;
            answered += 1;
        }
    }
    let mut answers = Vec::new();
    while answers.len() < MESSAGES {
        let frame = user.expect_json().await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "chat_reply" {
            answers.push(frame["payload"]["content"].as_str().unwrap().to_string());
        }
    }
    let expected: Vec<String> = (0..MESSAGES).map(|i| format!("re m{i}")).collect();
    assert_eq!(answers, expected);
    while let WsEvent::Json(frame) = gateway.next(Duration::from_millis(300)).await {
        assert_ne!(frame["type"], "error", "a reply was not stored: {frame}");
    }
}

/// A reply the gateway sends again (the same frame id) is stored once, delivered once, and
/// uses up no number: the messages after it are numbered without a gap.
#[actix_web::test]
async fn a_reply_sent_twice_is_stored_once_and_leaves_no_gap() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    wait_linked(&server, &w).await;
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "hello")).await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "once").await;
    let first = user.next_of("chat_reply").await;
    reply(&mut gateway, &send, "once").await;
    // The link takes its frames in order: once this reply is in, the one before it was
    // handled.
    user.send(chat(&w, "local-2", "again")).await;
    let second = gateway.next_of("chat.send").await;
    reply(&mut gateway, &second, "twice").await;
    assert_eq!(
        user.next_of("chat_reply").await["payload"]["content"],
        "twice"
    );
    let stored: Vec<(String, i64)> = server
        .db
        .client()
        .await
        .query(
            "SELECT content #>> '{}', user_seq FROM h5_chat_messages ORDER BY user_seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let first_seq = first["payload"]["seq"].as_i64().unwrap() - 1;
    let expected: Vec<(String, i64)> = ["hello", "once", "again", "twice"]
        .iter()
        .zip(first_seq..)
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    assert_eq!(stored, expected);
}

#[actix_web::test]
async fn both_devices_of_a_user_get_the_reply() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let w = world(&a).await;
    let mut gateway = gateway_link(&a, &w).await;
    let mut phone = h5(&a, &w).await;
    let mut tablet = h5(&b, &w).await;
    // Let B's registry subscribe before the reply is published.
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    phone.send(chat(&w, "local-1", "ping")).await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "pong").await;
    assert_eq!(
        phone.next_of("chat_reply").await["payload"]["content"],
        "pong"
    );
    assert_eq!(
        tablet.next_of("chat_reply").await["payload"]["content"],
        "pong"
    );
}

#[actix_web::test]
async fn a_reply_sent_while_the_user_is_away_arrives_on_resume() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "first")).await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "answer one").await;
    let seen = user.next_of("chat_reply").await;
    let last_seen = seen["id"].as_str().unwrap().to_string();

    user.send(chat(&w, "local-2", "second")).await;
    // Delivery is at least once and this gateway never acks, so "first" may come again before
    // "second": the answer must be to "second" (answering a repeat of "first" under its id is
    // a repeat of the first answer, and stores nothing new).
    let send = loop {
        let send = gateway.next_of("chat.send").await;
        if send["payload"]["content"] == "second" {
            break send;
        }
    };
    drop(user);
    reply(&mut gateway, &send, "answer while away").await;
    let db = server.db.client().await;
    let stored = || async {
        db.query_one(
            "SELECT count(*) FROM h5_chat_messages WHERE role = 'assistant'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
            == 2
    };
    // A liveness bound, generous for a loaded CI machine; the log says why if it fails.
    assert!(
        crate::harness::eventually(Duration::from_secs(15), stored).await,
        "the reply was not stored:\n{}",
        server.log()
    );

    let mut back = WsClient::connect(&server, "/ws/h5/chat").await;
    back.send(
        json!({"type": "auth", "payload": {"token": w.access, "last_message_id": last_seen}}),
    )
    .await;
    assert_eq!(back.expect_json().await["type"], "auth_ok");
    // Everything after the last seen reply: the user's own second message, then the reply.
    assert_eq!(back.expect_json().await["payload"]["content"], "second");
    let missed = back.expect_json().await;
    assert_eq!(
        (
            missed["type"].as_str(),
            missed["payload"]["content"].as_str()
        ),
        (Some("chat_reply"), Some("answer while away"))
    );
    assert_eq!(
        back.expect_json().await,
        json!({"type": "resume_done", "payload": {"count": 2, "last_seq": 4}})
    );

    // The history API has all four, newest first.
    let sessions = server
        .call(Method::GET, "/api/v1/h5/sessions", Some(&w.access), None)
        .await;
    let session = sessions.json["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let history = server
        .call(
            Method::GET,
            &format!("/api/v1/h5/sessions/{session}/messages?limit=3"),
            Some(&w.access),
            None,
        )
        .await;
    assert_eq!(history.json["total"], 4);
    assert_eq!(history.json["items"][0]["content"], "answer while away");
    let oldest_shown = history.json["items"][2]["id"].as_str().unwrap();
    let older = server
        .call(
            Method::GET,
            &format!("/api/v1/h5/sessions/{session}/messages?before={oldest_shown}"),
            Some(&w.access),
            None,
        )
        .await;
    assert_eq!(older.json["items"][0]["content"], "first");
}

/// The exact frame the shipped H5 app sends (`ws-client.ts`): its ids count from `local-1`
/// again on every page load.
fn app_frame(w: &World, id: &str, content: &str) -> String {
    format!(
        r#"{{"type":"chat","payload":{{"agent_id":"{}","content":"{content}","session_id":"route-param"}},"id":"{id}"}}"#,
        w.agent
    )
}

/// Sends one frame and returns its first ack (`stored`).
async fn acked(user: &mut WsClient, frame: &str) -> Value {
    user.send_text(frame).await;
    stored_ack(user).await
}

/// The next `stored` ack; the `delivered` acks that follow when the gateway takes a
/// message are skipped.
async fn stored_ack(user: &mut WsClient) -> Value {
    loop {
        let ack = user.next_of("chat_ack").await;
        if ack["payload"]["status"] == "stored" {
            return ack;
        }
    }
}

/// `n` sockets of the world's user, each with a message stored (which made the session:
/// their next messages take the batched path).
async fn sockets_in_session(server: &Server, w: &World, n: usize) -> Vec<WsClient> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        let mut socket = h5(server, w).await;
        acked(
            &mut socket,
            &app_frame(w, &Uuid::new_v4().to_string(), "warm-up"),
        )
        .await;
        sockets.push(socket);
    }
    sockets
}

#[actix_web::test]
async fn page_loads_that_reuse_local_ids_lose_nothing_and_resends_are_stored_once() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;

    // First page load.
    let mut first = h5(&server, &w).await;
    let a1 = acked(&mut first, &app_frame(&w, "local-1", "hello")).await;
    let a2 = acked(&mut first, &app_frame(&w, "local-2", "how are you?")).await;
    assert_eq!(a1["payload"]["duplicate"], false);
    assert_eq!(a2["payload"]["duplicate"], false);
    // The same frame again on a reconnect (its ack was lost): stored once, the same id.
    drop(first);
    let mut reconnected = h5(&server, &w).await;
    let again = acked(&mut reconnected, &app_frame(&w, "local-2", "how are you?")).await;
    assert_eq!(again["payload"]["duplicate"], true);
    assert_eq!(again["payload"]["message_id"], a2["payload"]["message_id"]);

    // A reload: the app starts at local-1 again, with new texts.
    drop(reconnected);
    let mut second = h5(&server, &w).await;
    let b1 = acked(&mut second, &app_frame(&w, "local-1", "I am back")).await;
    let b2 = acked(&mut second, &app_frame(&w, "local-2", "still there?")).await;
    for ack in [&b1, &b2] {
        assert_eq!(ack["payload"]["duplicate"], false, "{ack}");
    }
    assert_ne!(b1["payload"]["message_id"], a1["payload"]["message_id"]);

    // Every message typed reached the gateway, once each, in order.
    let mut delivered = Vec::new();
    while delivered.len() < 4 {
        let send = gateway.next_of("chat.send").await;
        delivered.push(send["payload"]["content"].as_str().unwrap().to_string());
    }
    assert_eq!(
        delivered,
        ["hello", "how are you?", "I am back", "still there?"]
    );
    loop {
        match gateway.next(Duration::from_millis(500)).await {
            WsEvent::TimedOut => break,
            WsEvent::Json(frame) if frame["type"] == "rpc.request" => continue,
            other => panic!("routed twice: {other:?}"),
        }
    }
    let stored: Vec<String> = server
        .db
        .column(
            "SELECT content #>> '{}' FROM h5_chat_messages ORDER BY user_seq",
            &[],
        )
        .await;
    assert_eq!(
        stored,
        ["hello", "how are you?", "I am back", "still there?"]
    );
}

/// Many sockets of a user send at once: their messages are stored in shared commits
/// (`ChatWrites`), each acknowledged `stored` once it is, numbered without a gap in the
/// order each socket sent them, and a frame every socket sends with one UUID id is stored
/// once (the others are told it is a duplicate of it).
#[actix_web::test]
async fn messages_sent_at_once_from_many_sockets_are_each_stored_once_and_in_order() {
    const SOCKETS: usize = 8;
    const EACH: usize = 10;
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    wait_linked(&server, &w).await;
    let mut sockets = sockets_in_session(&server, &w, SOCKETS).await;
    let same = Uuid::new_v4().to_string();
    for (k, socket) in sockets.iter_mut().enumerate() {
        for i in 0..EACH {
            socket
                .send_text(&app_frame(&w, &format!("s{k}-{i}"), &format!("s{k}-{i}")))
                .await;
        }
        socket.send_text(&app_frame(&w, &same, "once")).await;
    }
    let (mut stored, mut duplicates) = (Vec::new(), Vec::new());
    for socket in &mut sockets {
        for _ in 0..=EACH {
            let ack = stored_ack(socket).await;
            let id = ack["payload"]["message_id"].as_str().unwrap().to_string();
            match ack["payload"]["duplicate"].as_bool().unwrap() {
                true => duplicates.push(id),
                false => stored.push(id),
            }
        }
    }
    // One socket's frame stored it; the others were answered with its id.
    assert_eq!(duplicates.len(), SOCKETS - 1);
    assert!(stored.contains(&duplicates[0]), "{duplicates:?}");
    assert!(duplicates.iter().all(|id| *id == duplicates[0]));
    assert_eq!(stored.len(), SOCKETS * EACH + 1);

    // Only user messages are stored (the gateway does not reply), the warm-ups first.
    let rows = server
        .db
        .client()
        .await
        .query(
            "SELECT id::text, content #>> '{}', user_seq FROM h5_chat_messages ORDER BY user_seq",
            &[],
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
    let gapless: Vec<i64> = (seqs[0]..seqs[0] + seqs.len() as i64).collect();
    assert_eq!(seqs, gapless, "numbered without a gap");
    let rows = &rows[SOCKETS..];
    let ids: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        ids,
        stored.iter().cloned().collect(),
        "stored is what was acknowledged"
    );
    // Each socket's messages are numbered in the order it sent them.
    let contents: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    for k in 0..SOCKETS {
        let mine: Vec<&String> = contents
            .iter()
            .filter(|c| c.starts_with(&format!("s{k}-")))
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("s{k}-{i}")).collect();
        assert_eq!(mine, sent.iter().collect::<Vec<_>>());
    }
    // Each reached the gateway once.
    let mut routed = std::collections::HashSet::new();
    while routed.len() < SOCKETS * (EACH + 1) + 1 {
        let send = gateway.next_of("chat.send").await;
        assert!(routed.insert(send["payload"]["message_id"].as_str().unwrap().to_string()));
    }
}

/// A message the database refuses fails alone: the others stored in the same commit are
/// stored one by one instead, and only its socket is told to send it again.
#[actix_web::test]
async fn a_message_the_database_refuses_does_not_take_its_batch_with_it() {
    const SOCKETS: usize = 6;
    let server = Server::start().await;
    let w = world(&server).await;
    let _gateway = gateway_link(&server, &w).await;
    let mut sockets = sockets_in_session(&server, &w, SOCKETS).await;
    server
        .db
        .client()
        .await
        .batch_execute(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.content = '\"boom\"' THEN RAISE EXCEPTION 'boom refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_boom BEFORE INSERT ON h5_chat_messages \
             FOR EACH ROW EXECUTE FUNCTION refuse_boom();",
        )
        .await
        .unwrap();
    for (k, socket) in sockets.iter_mut().enumerate() {
        for i in 0..3 {
            let content = if (k, i) == (0, 1) {
                "boom".to_string()
            } else {
                format!("s{k}-{i}")
            };
            socket
                .send_text(&app_frame(&w, &format!("s{k}-{i}"), &content))
                .await;
        }
    }
    for (k, socket) in sockets.iter_mut().enumerate() {
        for i in 0..3 {
            let id = format!("s{k}-{i}");
            let answer = loop {
                let frame = socket.expect_json().await;
                if frame["type"] == "error" || frame["payload"]["status"] == "stored" {
                    break frame;
                }
            };
            assert_eq!(answer["id"], id.as_str(), "{answer}");
            let refused = (k, i) == (0, 1);
            assert_eq!(answer["type"] == "error", refused, "{answer}");
        }
    }
    let stored: Vec<String> = server
        .db
        .column(
            "SELECT content #>> '{}' FROM h5_chat_messages WHERE content #>> '{}' LIKE 's%' ORDER BY 1",
            &[],
        )
        .await;
    let mut expected: Vec<String> = (0..SOCKETS)
        .flat_map(|k| (0..3).map(move |i| format!("s{k}-{i}")))
        .filter(|c| c != "s0-1")
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
}

#[actix_web::test]
async fn the_same_id_and_text_after_the_window_is_a_new_message_and_uuids_are_keys_for_good() {
    let server = Server::builder()
        .env("H5_RESEND_WINDOW_SECONDS", "1")
        .start()
        .await;
    let w = world(&server).await;
    let _gateway = gateway_link(&server, &w).await;
    let mut user = h5(&server, &w).await;
    let first = acked(&mut user, &app_frame(&w, "local-1", "hi")).await;
    let uuid = Uuid::new_v4().to_string();
    let keyed = acked(&mut user, &app_frame(&w, &uuid, "hi")).await;
    assert_eq!(keyed["payload"]["duplicate"], false);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    // Tomorrow's (here: a second later) first message of a page load, with the same text.
    let later = acked(&mut user, &app_frame(&w, "local-1", "hi")).await;
    assert_eq!(later["payload"]["duplicate"], false);
    assert_ne!(
        later["payload"]["message_id"],
        first["payload"]["message_id"]
    );
    // A UUID id is a resend at any age; the same UUID with another text is a new message.
    let resent = acked(&mut user, &app_frame(&w, &uuid, "hi")).await;
    assert_eq!(resent["payload"]["duplicate"], true);
    assert_eq!(
        resent["payload"]["message_id"],
        keyed["payload"]["message_id"]
    );
    let other = acked(&mut user, &app_frame(&w, &uuid, "bye")).await;
    assert_eq!(other["payload"]["duplicate"], false);
    // And `later` itself is now the one a quick resend matches.
    let quick = acked(&mut user, &app_frame(&w, "local-1", "hi")).await;
    assert_eq!(
        quick["payload"]["message_id"],
        later["payload"]["message_id"]
    );
}

#[actix_web::test]
async fn bad_frames_are_answered_and_the_socket_stays_usable() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut user = WsClient::connect(&server, "/ws/h5/chat").await;
    // Before auth: a chat is refused, the socket waits for auth.
    user.send(chat(&w, "early", "too soon")).await;
    assert_eq!(user.expect_json().await["payload"]["code"], "AUTH_REQUIRED");
    user.send(json!({"type": "auth", "payload": {"token": w.access}}))
        .await;
    assert_eq!(user.expect_json().await["type"], "auth_ok");

    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "INVALID_JSON"),
        ("[1, 2]".into(), "INVALID_JSON"),
        (json!({"type": "teleport"}).to_string(), "UNKNOWN_TYPE"),
        (json!({"type": "chat", "id": "x", "payload": {"content": "no agent"}}).to_string(), "MISSING_FIELDS"),
        (json!({"type": "chat", "id": "x", "payload": {"agent_id": "nope", "content": "c"}}).to_string(), "INVALID_AGENT_ID"),
        (json!({"type": "chat", "id": "x", "payload": {"agent_id": 42, "content": "c"}}).to_string(), "INVALID_AGENT_ID"),
        (json!({"type": "chat", "id": "x", "payload": {"agent_id": Uuid::new_v4(), "content": "c"}}).to_string(), "ASSIGNMENT_NOT_FOUND"),
        (format!(r#"{{"type":"chat","payload":{{"content":"{}"}}}}"#, "x".repeat(1 << 20)), "FRAME_TOO_LARGE"),
    ];
    for (frame, code) in cases {
        user.send_text(&frame).await;
        let error = user.expect_json().await;
        assert_eq!(
            (error["type"].as_str(), error["payload"]["code"].as_str()),
            (Some("error"), Some(code)),
            "{}",
            &frame[..frame.len().min(80)]
        );
    }
    user.send(json!({"type": "heartbeat", "payload": {}, "id": "still-here"}))
        .await;
    assert_eq!(
        user.expect_json().await,
        json!({"type": "heartbeat_ack", "id": "still-here"})
    );
}

#[actix_web::test]
async fn the_real_h5_apps_frames_get_the_replies_it_reads() {
    // The exact frames of h5-app/src (ws-client.ts): auth, a heartbeat with an empty
    // payload and a UUID id, a chat with the route's session id and a per-page counter id.
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let mut app = WsClient::connect(&server, "/ws/h5/chat").await;
    app.send_text(&format!(
        r#"{{"type":"auth","payload":{{"token":"{}"}}}}"#,
        w.access
    ))
    .await;
    let ok = app.expect_json().await;
    assert_eq!(ok["type"], "auth_ok");
    assert_eq!(ok["payload"]["h5_user_id"], w.user_id);
    let beat = Uuid::new_v4().to_string();
    app.send_text(&format!(
        r#"{{"type":"heartbeat","payload":{{}},"id":"{beat}"}}"#
    ))
    .await;
    // (The gateway's `agent_online` notice may come first.)
    assert_eq!(
        app.next_of("heartbeat_ack").await,
        json!({"type": "heartbeat_ack", "id": beat})
    );
    app.send_text(&format!(r#"{{"type":"chat","payload":{{"agent_id":"{}","content":"Hello agent","session_id":"abc"}},"id":"local-1"}}"#, w.agent))
        .await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "Hello human").await;
    let answer = app.next_of("chat_reply").await;
    // What the app reads: type, id (React key), payload.agent_id and payload.content.
    assert!(answer["id"].is_string());
    assert_eq!(answer["payload"]["agent_id"], w.agent.to_string());
    assert_eq!(answer["payload"]["content"], "Hello human");
}

#[actix_web::test]
async fn auth_failures_close_with_4001() {
    let server = Server::builder()
        .env("WS_AUTH_TIMEOUT_SECONDS", "1")
        .start()
        .await;
    for first in [
        json!({"type": "auth", "payload": {}}),
        json!({"type": "auth", "payload": {"token": "not-a-jwt"}}),
    ] {
        let mut ws = WsClient::connect(&server, "/ws/h5/chat").await;
        ws.send(first).await;
        assert_eq!(ws.expect_json().await["type"], "auth_error");
        assert_eq!(ws.expect_close(Duration::from_secs(5)).await.0, Some(4001));
    }
    let mut silent = WsClient::connect(&server, "/ws/h5/chat").await;
    assert_eq!(
        silent.expect_close(Duration::from_secs(5)).await,
        (Some(4001), "auth timeout".to_string())
    );
    // An admin token is not an H5 token.
    let mut admin = WsClient::connect(&server, "/ws/h5/chat").await;
    admin
        .send(json!({"type": "auth", "payload": {"token": ADMIN_TOKEN}}))
        .await;
    assert_eq!(
        admin.expect_json().await["payload"]["reason"],
        "invalid or expired token"
    );
}

#[actix_web::test]
async fn messages_sent_while_the_gateway_is_away_reach_it_when_it_links() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let w = world(&a).await;
    let mut user = h5(&a, &w).await;
    for (id, text) in [("local-1", "anyone?"), ("local-2", "still there?")] {
        user.send(chat(&w, id, text)).await;
        let error = user.next_of("error").await;
        assert_eq!(error["payload"]["code"], "GATEWAY_OFFLINE");
        assert_eq!(error["id"], id);
        assert!(error["payload"]["message_id"].is_string());
    }

    // The gateway links on the other instance: both arrive, in order, once.
    let mut gateway = gateway_link(&b, &w).await;
    let first = gateway.next_of("chat.send").await;
    let second = gateway.next_of("chat.send").await;
    assert_eq!(
        (first["id"].as_str(), first["payload"]["content"].as_str()),
        (Some("local-1"), Some("anyone?"))
    );
    assert_eq!(second["payload"]["content"], "still there?");
    assert_eq!(
        first["payload"]["session_key"],
        format!("h5:{}:{}", w.user_id, w.agent)
    );
    reply(&mut gateway, &first, "here").await;
    assert_eq!(
        user.next_of("chat_reply").await["payload"]["content"],
        "here"
    );

    // Nothing is held any more: a new link gets nothing again.
    drop(gateway);
    let mut again = gateway_link(&a, &w).await;
    while let WsEvent::Json(frame) = again.next(Duration::from_millis(800)).await {
        assert_ne!(frame["type"], "chat.send", "{frame}");
    }
    let held: i64 =
        a.db.client()
            .await
            .query_one("SELECT count(*) FROM h5_chat_pending", &[])
            .await
            .unwrap()
            .get(0);
    assert_eq!(held, 0);
}

#[actix_web::test]
async fn suspending_a_user_closes_their_sockets_on_every_instance() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let w = world(&a).await;
    let mut on_a = h5(&a, &w).await;
    let mut on_b = h5(&b, &w).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let suspended = post(
        &a,
        &format!("/api/v1/h5/users/{}/suspend", w.user_id),
        Some(ADMIN_TOKEN),
        json!({}),
    )
    .await;
    assert_eq!(suspended.status, 200);
    assert_eq!(
        on_a.expect_close(Duration::from_secs(5)).await.0,
        Some(4001)
    );
    assert_eq!(
        on_b.expect_close(Duration::from_secs(5)).await.0,
        Some(4001)
    );
}

#[actix_web::test]
async fn sockets_over_the_instance_limit_are_closed_with_1013() {
    let server = Server::builder()
        .env("WS_MAX_CONNECTIONS_PER_INSTANCE", "1")
        .start()
        .await;
    let w = world(&server).await;
    let _first = h5(&server, &w).await;
    let mut second = WsClient::connect(&server, "/ws/h5/chat").await;
    assert_eq!(
        second.expect_close(Duration::from_secs(5)).await.0,
        Some(1013)
    );
}

/// Two instances sharing `redis` (a private one, which the test may stop).
async fn pair_on(redis: &crate::harness::RedisProcess) -> (Server, Server) {
    let a = Server::builder()
        .env("REDIS_URL", redis.url())
        .start()
        .await;
    let b = Server::builder()
        .env("REDIS_URL", redis.url())
        .start_on(&a)
        .await;
    (a, b)
}

#[actix_web::test]
async fn routing_works_again_after_redis_restarts() {
    let mut redis = crate::harness::RedisProcess::start();
    let (a, b) = pair_on(&redis).await;
    let w = world(&a).await;
    let mut gateway = gateway_link(&b, &w).await;
    let mut user = h5(&a, &w).await;

    redis.restart();
    assert!(
        crate::harness::eventually(Duration::from_secs(20), || async {
            a.get("/readyz").await.status == 200
        })
        .await
    );
    assert!(
        crate::harness::eventually(Duration::from_secs(20), || async {
            b.get("/readyz").await.status == 200
        })
        .await
    );
    // Presence lived in the old Redis: the link rewrites it within seconds.
    wait_linked(&a, &w).await;

    user.send(chat(&w, "after-restart", "still there?")).await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "yes").await;
    assert_eq!(
        user.next_of("chat_reply").await["payload"]["content"],
        "yes"
    );
}

/// Replies a gateway stores while it cannot publish (Redis is down) reach a user's socket on
/// another instance once the bridge is back: the socket reads what it missed.
#[actix_web::test]
async fn a_reply_published_while_redis_was_down_reaches_the_user_when_it_is_back() {
    let mut redis = crate::harness::RedisProcess::start();
    let (a, b) = pair_on(&redis).await;
    let w = world(&a).await;
    let mut gateway = gateway_link(&b, &w).await;
    wait_linked(&a, &w).await;
    let mut user = h5(&a, &w).await;
    user.send(chat(&w, "local-1", "are you there?")).await;
    let send = gateway.next_of("chat.send").await;

    redis.stop();
    reply(&mut gateway, &send, "said while redis was down").await;
    let db = a.db.client().await;
    assert!(
        crate::harness::eventually(Duration::from_secs(5), || async {
            db.query_one(
                "SELECT count(*) FROM h5_chat_messages WHERE role = 'assistant'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                == 1
        })
        .await
    );
    redis.restart();
    let mut got = None;
    for _ in 0..60 {
        match user.next(Duration::from_secs(1)).await {
            WsEvent::Json(frame) if frame["type"] == "chat_reply" => {
                got = Some(frame);
                break;
            }
            WsEvent::Json(_) | WsEvent::TimedOut => continue,
            other => panic!("{other:?}"),
        }
    }
    let got = got.expect("the reply never arrived");
    assert_eq!(got["payload"]["content"], "said while redis was down");
}

/// The shipped app reconnects with a plain auth: it gets what came while it was away, and
/// nothing it was already sent.
#[actix_web::test]
async fn an_app_that_reconnects_without_ids_gets_what_it_missed_once() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "first")).await;
    let send = gateway.next_of("chat.send").await;
    reply(&mut gateway, &send, "one").await;
    let one = user.next_of("chat_reply").await;
    assert_eq!(one["payload"]["seq"], 2, "{one}");

    user.send(chat(&w, "local-2", "second")).await;
    let send = gateway.next_of("chat.send").await;
    drop(user);
    reply(&mut gateway, &send, "two").await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;

    // A page load: plain auth. The reply that came while away arrives; "one" does not.
    let mut back = h5(&server, &w).await;
    let missed = back.next_of("chat_reply").await;
    assert_eq!(missed["payload"]["content"], "two", "{missed}");
    assert_eq!(missed["payload"]["seq"], 4, "{missed}");
    drop(back);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    let mut again = h5(&server, &w).await;
    while let WsEvent::Json(frame) = again.next(Duration::from_millis(800)).await {
        assert_ne!(frame["type"], "chat_reply", "sent twice: {frame}");
    }
}

/// A reply that arrives past a gap in the user's numbers (one that was never routed here) is
/// preceded by what is missing, read from PostgreSQL.
#[actix_web::test]
async fn a_frame_past_a_gap_is_preceded_by_what_is_missing() {
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "hello")).await;
    let send = gateway.next_of("chat.send").await;
    // A reply stored but never routed (its publication lost).
    server
        .db
        .client()
        .await
        .execute(
            "WITH next AS (UPDATE h5_users SET message_seq = message_seq + 1 WHERE id = $1::text::uuid \
                             RETURNING message_seq) \
             INSERT INTO h5_chat_messages (id, session_id, h5_user_id, agent_id, role, content, user_seq) \
             SELECT gen_random_uuid(), s.id, s.h5_user_id, s.agent_id, 'assistant', '\"lost on the way\"', next.message_seq \
             FROM h5_chat_sessions s, next WHERE s.h5_user_id = $1::text::uuid",
            &[&w.user_id],
        )
        .await
        .unwrap();
    reply(&mut gateway, &send, "after the gap").await;
    let first = user.next_of("chat_reply").await;
    let second = user.next_of("chat_reply").await;
    assert_eq!(first["payload"]["content"], "lost on the way");
    assert_eq!(second["payload"]["content"], "after the gap");
    assert_eq!(
        second["payload"]["seq"].as_i64().unwrap(),
        first["payload"]["seq"].as_i64().unwrap() + 1
    );
}

#[actix_web::test]
async fn users_hear_when_their_agents_gateway_goes_and_comes_back() {
    let a = Server::start().await;
    let b = a.second_instance().await;
    let w = world(&a).await;
    let mut user = h5(&a, &w).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    let gateway = gateway_link(&b, &w).await;
    let online = user.next_of("system").await;
    assert_eq!(
        online["payload"],
        json!({"event": "agent_online", "agent_id": w.agent, "gateway_id": w.gateway})
    );
    drop(gateway);
    let offline = user.next_of("system").await;
    assert_eq!(offline["payload"]["event"], "agent_offline");
    assert_eq!(offline["payload"]["agent_id"], w.agent.to_string());
}

#[actix_web::test]
async fn the_gateway_simulator_answers_chats() {
    let server = Server::start().await;
    let w = world(&server).await;
    let token = post(
        &server,
        "/api/v1/gateway-registry/tokens",
        Some(ADMIN_TOKEN),
        json!({}),
    )
    .await
    .json["registration_token"]
        .as_str()
        .unwrap()
        .to_string();
    // The simulator re-registers the same gateway name, so it takes over `office`.
    let mut sim = std::process::Command::new(crate::harness::GATEWAY_SIM)
        .args([
            "run",
            "--server",
            &server.base,
            "--org",
            &w.org,
            "--registration-token",
            &token,
            "--name",
            "office",
            "--reply-delay-ms",
            "50",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start gateway-sim");
    wait_linked(&server, &w).await;
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "are you a robot?")).await;
    let answer = user.next_of("chat_reply").await;
    assert_eq!(answer["payload"]["content"], "echo: are you a robot?");
    let _ = sim.kill();
    let _ = sim.wait();
}

/// A WebSocket client that authenticates and then never reads, on a socket whose receive
/// buffer is made small before it connects (so the window it offers stays small).

#[actix_web::test]
async fn a_client_that_stops_reading_is_closed_and_does_not_hold_up_the_others() {
    const REPLIES: usize = 1000; // ~30 MB: past the stalled socket's kernel buffers and queue
    let server = Server::start().await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let stalled = stalled_socket(
        &server,
        "/ws/h5/chat",
        Some(&json!({"type": "auth", "payload": {"token": w.access}})),
    );

    // The reading device runs on its own thread, so it keeps up whatever this thread does.
    let (base, access, agent) = (server.base.clone(), w.access.clone(), w.agent);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let url = format!("{}/ws/h5/chat", base.replacen("http", "ws", 1));
            let (_, mut framed) = awc::Client::new().ws(url).max_frame_size(1 << 20).connect().await.unwrap();
            use futures_util::{SinkExt, StreamExt};
            framed.send(awc::ws::Message::Text(json!({"type": "auth", "payload": {"token": access}}).to_string().into())).await.unwrap();
            let chat = json!({"type": "chat", "id": "local-1", "payload": {"agent_id": agent, "content": "start"}});
            framed.send(awc::ws::Message::Text(chat.to_string().into())).await.unwrap();
            ready_tx.send(()).unwrap();
            let mut replies = Vec::new();
            while replies.len() < REPLIES {
                match actix_web::rt::time::timeout(Duration::from_secs(20), framed.next()).await {
                    Ok(Some(Ok(awc::ws::Frame::Text(bytes)))) => {
                        let frame: Value = serde_json::from_slice(&bytes).unwrap();
                        if frame["type"] == "chat_reply" {
                            replies.push(frame["payload"]["content"].as_str().unwrap().split(':').next().unwrap().to_string());
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    other => panic!("reader stopped after {} replies: {other:?}", replies.len()),
                }
            }
            replies
        })
    });
    ready_rx.recv().unwrap();
    let send = gateway.next_of("chat.send").await;
    let key = send["payload"]["session_key"].clone();
    let big = "x".repeat(30 * 1024);
    for i in 0..REPLIES {
        gateway.send(json!({"type": "chat.reply", "id": format!("r{i}"), "payload": {"session_key": key, "content": format!("{i}:{big}")}})).await;
    }
    // The reading device got every reply, in order, despite the stalled one.
    let replies = reader.join().expect("reader thread");
    let expected: Vec<String> = (0..REPLIES).map(|i| i.to_string()).collect();
    assert_eq!(replies, expected);
    // When the stalled client reads again, what was queued arrives, then a 4009 close.
    let received = expect_closed_as_too_slow(&server, stalled).await;
    assert!(
        received.len() < 12 << 20,
        "far more was queued than the limit allows: {} bytes",
        received.len()
    );
}

/// A client that stops reading, with more queued for it than its buffers hold: the server's
/// write to it can never finish, so closing the socket cannot either. The kernel drops the
/// connection once nothing was taken for WS_WRITE_TIMEOUT_SECONDS.
#[actix_web::test]
async fn a_client_that_never_reads_again_is_dropped_by_the_write_deadline() {
    let server = Server::builder()
        .env("WS_WRITE_TIMEOUT_SECONDS", "2")
        .start()
        .await;
    let w = world(&server).await;
    let mut gateway = gateway_link(&server, &w).await;
    let stalled = stalled_socket(
        &server,
        "/ws/h5/chat",
        Some(&json!({"type": "auth", "payload": {"token": w.access}})),
    );
    let mut user = h5(&server, &w).await;
    user.send(chat(&w, "local-1", "start")).await;
    let send = gateway.next_of("chat.send").await;
    let key = send["payload"]["session_key"].clone();
    let big = "x".repeat(30 * 1024);
    for i in 0..300 {
        gateway
            .send(json!({"type": "chat.reply", "id": format!("r{i}"),
                            "payload": {"session_key": key, "content": format!("{i}:{big}")}}))
            .await;
    }
    drop(user);
    assert!(
        crate::harness::eventually(Duration::from_secs(10), || async {
            server.log().contains("client is too slow")
        })
        .await
    );
    // Left: the gateway's link alone.
    assert!(
        crate::harness::eventually(Duration::from_secs(15), || async {
            crate::harness::established(server.port) == 1
        })
        .await,
        "the stalled connection is still there ({} connections)",
        crate::harness::established(server.port)
    );
    drop(stalled);
}
