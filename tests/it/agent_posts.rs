//! What agents post: system events (stored, then on the `mc:events:*` channels),
//! suggestions (stored, then on the admins' suggestion streams of every instance) and
//! knowledge entries, each only about the agent's organization and, for a board agent,
//! its board.

use std::time::Duration;

use awc::http::Method;
use futures_util::StreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{agent, as_agent};
use crate::fixtures::{create_task, delete, new_board, send, switch_to_new_org};
use crate::harness::{redis_url, Reply, Server, SseClient, SseItem};

const EVENTS: &str = "/api/v1/agent/events";
const SUGGESTIONS: &str = "/api/v1/agent/suggestions";
const KNOWLEDGE: &str = "/api/v1/agent/knowledge";

async fn post(server: &Server, token: &str, path: &str, body: Value) -> Reply {
    as_agent(server, token, Method::POST, path, Some(body)).await
}

fn created(reply: Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    reply.json
}

/// The gateway-main agent of `board`'s gateway, with a fresh token.
async fn main_agent_of(server: &Server, board: &Value) -> (Uuid, String) {
    let gateway: Uuid = board["gateway_id"].as_str().unwrap().parse().unwrap();
    let main: Uuid = server
        .db
        .client()
        .await
        .query_one(
            "SELECT id FROM agents WHERE gateway_id = $1 AND board_id IS NULL",
            &[&gateway],
        )
        .await
        .unwrap()
        .get(0);
    let rotated = send(
        server,
        Method::PATCH,
        &format!("/api/v1/agents/{main}"),
        json!({"name": "Main"}),
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    (main, rotated.json["agent_token"].as_str().unwrap().into())
}

fn is_time(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
}

#[actix_web::test]
async fn an_event_is_stored_and_published_on_its_organization_and_board_channels() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (me, token) = agent(&server, &board, "Reporter").await;
    let task = create_task(&server, &board, json!({"title": "Ship it"})).await;
    let org = board["organization_id"].as_str().unwrap();
    let org_channel = format!("mc:events:{org}");
    let board_channel = format!("{org_channel}:{}", board["id"].as_str().unwrap());

    let client = redis::Client::open(redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&org_channel).await.unwrap();
    pubsub.subscribe(&board_channel).await.unwrap();

    let event = created(
        post(
            &server,
            &token,
            EVENTS,
            json!({"event_type": "task.status_changed", "task_id": task["id"], "payload": {"new_status": "done"}}),
        )
        .await,
        201,
    );
    assert_eq!(event["event_type"], "task.status_changed");
    assert_eq!(event["organization_id"], org);
    assert_eq!(event["board_id"], board["id"], "the agent's board");
    assert_eq!(event["agent_id"], me["id"], "the agent itself");
    assert_eq!(event["task_id"], task["id"]);
    assert_eq!(event["payload"], json!({"new_status": "done"}));
    assert!(is_time(&event["created_at"]), "{event}");

    let mut heard = Vec::new();
    let mut messages = pubsub.on_message();
    for _ in 0..2 {
        let message = actix_web::rt::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("published within 5 s")
            .expect("subscription open");
        let text: String = message.get_payload().unwrap();
        // The bridge's envelope: the publishing instance, a newline, the message.
        let (_, body) = text.split_once('\n').expect("enveloped");
        heard.push((
            message.get_channel_name().to_string(),
            serde_json::from_str::<Value>(body).unwrap(),
        ));
    }
    heard.sort_by(|a, b| a.0.cmp(&b.0));
    let system_event = json!({
        "event_type": "task.status_changed", "organization_id": org, "board_id": board["id"],
        "agent_id": me["id"], "task_id": task["id"], "payload": {"new_status": "done"},
        "timestamp": event["created_at"], "event_id": event["id"],
    });
    assert_eq!(
        heard,
        [
            (org_channel, system_event.clone()),
            (board_channel, system_event)
        ]
    );

    for token in [None, Some("not-a-token")] {
        let headers: Vec<(&str, &str)> = token.map(|t| ("X-Agent-Token", t)).into_iter().collect();
        for path in [EVENTS, SUGGESTIONS, KNOWLEDGE] {
            let reply = server
                .raw(
                    Method::POST,
                    path,
                    None,
                    Some(&json!({"event_type": "x", "suggestion_type": "x", "title": "x", "content": "x"}).to_string()),
                    &headers,
                )
                .await
                .unwrap();
            assert_eq!(reply.status, 401, "{path} with {token:?}");
        }
    }
}

#[actix_web::test]
async fn suggestions_and_knowledge_are_posted_with_the_reference_shapes() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (me, token) = agent(&server, &board, "Advisor").await;

    let suggestion = created(
        post(
            &server,
            &token,
            SUGGESTIONS,
            json!({"suggestion_type": "workload_rebalance", "title": "Rebalance", "payload": {"why": "wip"}}),
        )
        .await,
        200,
    );
    for (field, value) in [
        ("organization_id", board["organization_id"].clone()),
        ("board_id", board["id"].clone()),
        ("agent_id", me["id"].clone()),
        ("suggestion_type", json!("workload_rebalance")),
        ("title", json!("Rebalance")),
        ("description", Value::Null),
        ("confidence", json!(0.5)),
        ("priority", json!("medium")),
        ("status", json!("pending")),
        ("payload", json!({"why": "wip"})),
        ("source_event_id", Value::Null),
        ("resolved_by_user_id", Value::Null),
        ("resolved_at", Value::Null),
    ] {
        assert_eq!(suggestion[field], value, "{field}");
    }
    let at =
        |f: &str| chrono::DateTime::parse_from_rfc3339(suggestion[f].as_str().unwrap()).unwrap();
    assert_eq!(
        at("expires_at") - at("created_at"),
        chrono::Duration::hours(168)
    );
    assert!(is_time(&suggestion["updated_at"]));

    let entry = created(
        post(
            &server,
            &token,
            KNOWLEDGE,
            json!({"title": "Deploys", "content": "Deploy on Tuesdays.", "category": "ops",
                   "tags": ["deploy", 1], "source_ref": {"task": "t1"}, "board_id": board["id"]}),
        )
        .await,
        201,
    );
    for (field, value) in [
        ("organization_id", board["organization_id"].clone()),
        ("board_id", board["id"].clone()),
        ("board_group_id", Value::Null),
        ("agent_id", me["id"].clone()),
        ("title", json!("Deploys")),
        ("content", json!("Deploy on Tuesdays.")),
        ("category", json!("ops")),
        ("tags", json!(["deploy", 1])),
        ("source_type", json!("agent_generated")),
        ("source_ref", json!({"task": "t1"})),
        ("is_pinned", json!(false)),
        ("documents", json!([])),
    ] {
        assert_eq!(entry[field], value, "{field}");
    }
    assert!(is_time(&entry["created_at"]) && is_time(&entry["updated_at"]));
    let unscoped = created(
        post(
            &server,
            &token,
            KNOWLEDGE,
            json!({"title": "Org-wide", "content": "x"}),
        )
        .await,
        201,
    );
    assert_eq!(unscoped["board_id"], Value::Null, "only a named board");
    assert_eq!(unscoped["tags"], json!([]));

    // The database keeps the entry searchable by its words.
    let id: Uuid = entry["id"].as_str().unwrap().parse().unwrap();
    let found: bool = server
        .db
        .client()
        .await
        .query_one(
            "SELECT search_vector @@ plainto_tsquery('english', 'tuesday deploys') FROM knowledge_entries WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(found);
}

#[actix_web::test]
async fn posts_name_only_the_agents_organization_and_a_board_agent_only_its_board() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let sibling = new_board(&server, json!({})).await;
    let (_, token) = agent(&server, &board, "Worker").await;
    let (main_id, main_token) = main_agent_of(&server, &board).await;
    let sibling_task = create_task(&server, &sibling, json!({"title": "Theirs"})).await;
    switch_to_new_org(&server).await;
    let foreign = new_board(&server, json!({})).await;
    let foreign_task = create_task(&server, &foreign, json!({"title": "Foreign"})).await;
    let (foreign_agent, _) = agent(&server, &foreign, "Stranger").await;

    let bodies = |extra: Value| {
        [EVENTS, SUGGESTIONS, KNOWLEDGE].map(|path| {
            let mut body =
                json!({"event_type": "e", "suggestion_type": "s", "title": "t", "content": "c"});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            (path, body)
        })
    };
    for (path, body) in bodies(json!({"board_id": foreign["id"]})) {
        assert_eq!(
            post(&server, &token, path, body.clone()).await.status,
            404,
            "{path} foreign board"
        );
        assert_eq!(
            post(&server, &main_token, path, body).await.status,
            404,
            "{path} foreign board, main agent"
        );
    }
    for (path, body) in bodies(json!({"board_id": sibling["id"]})) {
        assert_eq!(
            post(&server, &token, path, body.clone()).await.status,
            403,
            "{path} another board"
        );
        let reply = post(&server, &main_token, path, body).await;
        assert!(
            reply.status.is_success(),
            "{path} main agent: {}",
            reply.text
        );
        assert_eq!(reply.json["board_id"], sibling["id"]);
    }
    for (path, body) in bodies(json!({"agent_id": foreign_agent["id"]}))
        .into_iter()
        .take(2)
    {
        assert_eq!(
            post(&server, &token, path, body).await.status,
            404,
            "{path} foreign agent"
        );
    }
    let event = |task: &Value| json!({"event_type": "e", "task_id": task["id"]});
    assert_eq!(
        post(&server, &token, EVENTS, event(&foreign_task))
            .await
            .status,
        404
    );
    assert_eq!(
        post(&server, &token, EVENTS, event(&sibling_task))
            .await
            .status,
        403
    );
    // A main agent's event about a task is about the task's board.
    let about_task = created(
        post(&server, &main_token, EVENTS, event(&sibling_task)).await,
        201,
    );
    assert_eq!(
        (
            about_task["board_id"].clone(),
            about_task["agent_id"].clone()
        ),
        (sibling["id"].clone(), json!(main_id))
    );
    let mismatched =
        json!({"event_type": "e", "task_id": sibling_task["id"], "board_id": board["id"]});
    assert_eq!(
        post(&server, &main_token, EVENTS, mismatched).await.status,
        404
    );
}

#[actix_web::test]
async fn bad_post_bodies_answer_422_naming_the_field() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (_, token) = agent(&server, &board, "Sloppy").await;

    let cases = [
        (
            SUGGESTIONS,
            json!({"suggestion_type": "s"}),
            "missing",
            "title",
        ),
        (KNOWLEDGE, json!({"content": "c"}), "missing", "title"),
        (EVENTS, json!({}), "missing", "event_type"),
        (
            EVENTS,
            json!({"event_type": 5}),
            "string_type",
            "event_type",
        ),
        (
            EVENTS,
            json!({"event_type": "e", "payload": []}),
            "dict_type",
            "payload",
        ),
        (
            SUGGESTIONS,
            json!({"suggestion_type": "s", "title": "t", "confidence": "high"}),
            "float_parsing",
            "confidence",
        ),
        (
            SUGGESTIONS,
            json!({"suggestion_type": "s", "title": "t".repeat(513)}),
            "string_too_long",
            "title",
        ),
        (
            EVENTS,
            json!({"event_type": "e".repeat(129)}),
            "string_too_long",
            "event_type",
        ),
        (
            KNOWLEDGE,
            json!({"title": "t".repeat(513), "content": "c"}),
            "string_too_long",
            "title",
        ),
        (
            KNOWLEDGE,
            json!({"title": "t", "content": "c", "category": "c".repeat(129)}),
            "string_too_long",
            "category",
        ),
        (
            KNOWLEDGE,
            json!({"title": "t", "content": "  "}),
            "string_too_short",
            "content",
        ),
        (
            KNOWLEDGE,
            json!({"title": "", "content": "c"}),
            "string_too_short",
            "title",
        ),
        (
            KNOWLEDGE,
            json!({"title": "t", "content": "c", "tags": "a,b"}),
            "list_type",
            "tags",
        ),
        (
            KNOWLEDGE,
            json!({"title": "t", "content": "c", "board_id": "nope"}),
            "uuid_parsing",
            "board_id",
        ),
    ];
    for (path, body, kind, field) in cases {
        let reply = post(&server, &token, path, body.clone()).await;
        assert_eq!(reply.status, 422, "{path} {body}: {}", reply.text);
        let error = &reply.json["detail"][0];
        assert_eq!(error["type"], kind, "{path} {body}: {}", reply.text);
        assert_eq!(error["loc"], json!(["body", field]), "{path} {body}");
    }
    let unicode = "é".repeat(512);
    created(
        post(
            &server,
            &token,
            KNOWLEDGE,
            json!({"title": unicode, "content": "c"}),
        )
        .await,
        201,
    );
}

/// Opens the admin's suggestion stream and waits for its first keepalive (so it listens).
async fn listening(server: &Server) -> SseClient {
    let mut stream = SseClient::open(server, "/api/v1/suggestions/stream", None).await;
    assert_eq!(
        stream.next(Duration::from_secs(3)).await,
        Some(SseItem::Comment("keepalive".into()))
    );
    stream
}

/// The next suggestion on `stream` within `within`, skipping keepalives.
async fn next_suggestion(stream: &mut SseClient, within: Duration) -> Option<Value> {
    let deadline = std::time::Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match stream.next(left).await? {
            SseItem::Event { event, data, .. } => {
                assert_eq!(event, "suggestion");
                assert_eq!(data["type"], "suggestion.new");
                return Some(data["suggestion"].clone());
            }
            SseItem::Comment(_) => {}
        }
    }
    None
}

#[actix_web::test]
async fn an_agents_suggestion_reaches_the_admins_streams_on_every_instance() {
    let builder = || Server::builder().env("SSE_KEEPALIVE_SECONDS", "1");
    let a = builder().start().await;
    let b = builder().start_on(&a).await;
    let board = new_board(&a, json!({})).await;
    let (_, token) = agent(&a, &board, "Advisor").await;
    let mut on_a = listening(&a).await;
    let mut on_b = listening(&b).await;

    let body = json!({"suggestion_type": "idle_agent", "title": "Nudge the idle agent", "confidence": 0.7});
    let first = created(post(&a, &token, SUGGESTIONS, body.clone()).await, 200);
    assert_eq!(
        next_suggestion(&mut on_a, Duration::from_secs(5))
            .await
            .as_ref(),
        Some(&first)
    );
    // Instance b's subscription to Redis may still be settling: post until b hears one.
    let mut posted = vec![first];
    let heard = loop {
        if let Some(heard) = next_suggestion(&mut on_b, Duration::from_secs(1)).await {
            break heard;
        }
        assert!(posted.len() < 10, "instance b never heard a suggestion");
        posted.push(created(
            post(&a, &token, SUGGESTIONS, body.clone()).await,
            200,
        ));
    };
    assert!(posted.contains(&heard), "{heard}");
}

#[actix_web::test]
async fn boards_and_agents_with_posts_can_still_be_deleted() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (me, token) = agent(&server, &board, "Doomed").await;
    let task = create_task(&server, &board, json!({"title": "Soon gone"})).await;
    let event = created(
        post(
            &server,
            &token,
            EVENTS,
            json!({"event_type": "e", "task_id": task["id"]}),
        )
        .await,
        201,
    );
    created(
        post(
            &server,
            &token,
            SUGGESTIONS,
            json!({"suggestion_type": "s", "title": "t"}),
        )
        .await,
        200,
    );
    let entry = created(
        post(
            &server,
            &token,
            KNOWLEDGE,
            json!({"title": "Kept", "content": "c", "board_id": board["id"]}),
        )
        .await,
        201,
    );
    let db = server.db.client().await;
    let count = |table: &str| format!("SELECT count(*) FROM {table} WHERE board_id = $1");
    let board_id: Uuid = board["id"].as_str().unwrap().parse().unwrap();

    let reply = delete(
        &server,
        &format!("/api/v1/agents/{}", me["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let event_id: Uuid = event["id"].as_str().unwrap().parse().unwrap();
    let agent_of_event: Option<Uuid> = db
        .query_one(
            "SELECT agent_id FROM agent_events WHERE id = $1",
            &[&event_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(agent_of_event, None, "the event stays, without its agent");

    let reply = delete(&server, &format!("/api/v1/boards/{board_id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    for table in ["agent_events", "agent_suggestions"] {
        let left: i64 = db
            .query_one(&count(table), &[&board_id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table} go with their board");
    }
    let entry_id: Uuid = entry["id"].as_str().unwrap().parse().unwrap();
    let kept = db
        .query_one(
            "SELECT board_id, agent_id FROM knowledge_entries WHERE id = $1",
            &[&entry_id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            kept.get::<_, Option<Uuid>>(0),
            kept.get::<_, Option<Uuid>>(1)
        ),
        (None, None),
        "knowledge outlives its board and agent"
    );
}
