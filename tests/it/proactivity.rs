//! The proactivity engine end to end: rules fire from the real actions that should trigger
//! them, their suggestions reach the list and the stream of the other instance, cooldowns
//! hold across instances, events left pending by a dead consumer or lost by Redis are
//! evaluated once, and accepting a suggestion carries out its action once.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{create_task, delete, new_board, send, switch_to_new_org, update_task};
use crate::harness::{eventually, redis_url, Server, SseClient, SseItem};

/// Servers whose engines recover quickly (the tests' "dead consumer" and "lost event").
fn engine_server() -> crate::harness::ServerBuilder {
    Server::builder()
        .env("PROACTIVITY_RECOVER_AFTER_SECONDS", "2")
        .env("SSE_KEEPALIVE_SECONDS", "1")
}

async fn suggestions(server: &Server, query: &str) -> Vec<Value> {
    let reply = server
        .admin_get(&format!("/api/v1/suggestions{query}"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["items"].as_array().unwrap().clone()
}

/// Waits for a suggestion titled `title` and returns it.
async fn suggestion_titled(server: &Server, title: &str) -> Value {
    for _ in 0..150 {
        let listed = suggestions(server, "").await;
        if let Some(found) = listed.into_iter().find(|s| s["title"] == title) {
            return found;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no suggestion {title:?}:\n{}", server.log())
}

#[actix_web::test]
async fn builtin_rules_are_seeded_and_rule_bodies_are_checked() {
    let server = Server::start().await;
    let rules = server.admin_get("/api/v1/proactive-rules").await;
    assert_eq!(rules.status, 200, "{}", rules.text);
    let names: Vec<&str> = rules.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Overdue Task Alert",
            "Stale Review Detection",
            "WIP Limit Warning",
            "Unblocking Opportunity",
            "Idle Agent Detection",
            "Auto Follow-up"
        ]
    );
    let builtin = &rules.json["items"][0];
    assert_eq!(builtin["is_builtin"], true);
    let path = format!(
        "/api/v1/proactive-rules/{}",
        builtin["id"].as_str().unwrap()
    );
    assert_eq!(delete(&server, &path).await.status, 409);
    let toggled = send(
        &server,
        Method::POST,
        &format!("{path}/toggle"),
        json!(null),
    )
    .await;
    assert_eq!(toggled.json["is_enabled"], false, "{}", toggled.text);

    // Bad bodies: each names its field.
    for (body, field) in [
        (
            json!({"name": "x", "trigger_event": "task.created", "action_type": "send_email"}),
            "action_type",
        ),
        (
            json!({"name": "x", "trigger_event": "agent.heartbeat", "action_type": "create_suggestion",
                "conditions": {"rules": [{"field": "idle_hours", "op": "gte", "value": 1}]}}),
            "conditions",
        ),
        (
            json!({"name": "x", "trigger_event": "x", "action_type": "create_suggestion",
                "conditions": {"rules": [{"field": "a", "op": "like", "value": 1}]}}),
            "conditions",
        ),
        (
            json!({"name": "x", "trigger_event": "x", "action_type": "create_suggestion",
                "action_config": {"title": null}}),
            "action_config",
        ),
        (
            json!({"name": "x", "trigger_event": "x", "action_type": "create_suggestion",
                "board_id": Uuid::new_v4()}),
            "board_id",
        ),
        (
            json!({"name": " ", "trigger_event": "x", "action_type": "create_suggestion"}),
            "name",
        ),
        (
            json!({"trigger_event": "x", "action_type": "create_suggestion"}),
            "name",
        ),
        (
            json!({"name": "x", "trigger_event": "x", "action_type": "create_suggestion",
                "cooldown_seconds": -1}),
            "cooldown_seconds",
        ),
    ] {
        let reply = send(
            &server,
            Method::POST,
            "/api/v1/proactive-rules",
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        assert!(
            reply.json["detail"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["loc"] == json!(["body", field])),
            "{body}: {}",
            reply.text
        );
    }
    let created = send(
        &server,
        Method::POST,
        "/api/v1/proactive-rules",
        json!({"name": "Mine", "trigger_event": "custom.thing", "action_type": "create_suggestion",
               "conditions": {"rules": [{"field": "n", "op": "gt", "value": 2}]}}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let mine = format!(
        "/api/v1/proactive-rules/{}",
        created.json["id"].as_str().unwrap()
    );
    let patched = send(
        &server,
        Method::PATCH,
        &mine,
        json!({"cooldown_seconds": 60, "name": null}),
    )
    .await;
    assert_eq!(patched.json["cooldown_seconds"], 60, "{}", patched.text);
    assert_eq!(patched.json["name"], "Mine");

    // Another organization sees neither the rule nor its suggestions.
    switch_to_new_org(&server).await;
    assert_eq!(
        send(&server, Method::PATCH, &mine, json!({})).await.status,
        404
    );
    assert_eq!(delete(&server, &mine).await.status, 404);
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{mine}/toggle"),
            json!(null)
        )
        .await
        .status,
        404
    );
    let theirs = server.admin_get("/api/v1/proactive-rules").await;
    assert_eq!(
        theirs.json["total"], 6,
        "a new organization gets the builtin rules too"
    );
}

#[actix_web::test]
async fn a_finished_task_with_dependents_suggests_unblocking_on_the_other_instance() {
    let a = engine_server().start().await;
    let b = engine_server().start_on(&a).await;
    let mut stream_on_b = SseClient::open(&b, "/api/v1/suggestions/stream", None).await;
    assert_eq!(
        stream_on_b.next(Duration::from_secs(3)).await,
        Some(SseItem::Comment("keepalive".into()))
    );
    let board = new_board(&a, json!({"require_approval_for_done": false})).await;
    let first = create_task(&a, &board, json!({"title": "Design"})).await;
    create_task(
        &a,
        &board,
        json!({"title": "Build", "depends_on_task_ids": [first["id"]]}),
    )
    .await;
    update_task(&a, &first, json!({"status": "done"})).await;

    let found = suggestion_titled(&b, "Downstream tasks now unblocked").await;
    assert_eq!(found["suggestion_type"], "task_reassign");
    assert_eq!(found["board_id"], board["id"]);
    assert_eq!(found["status"], "pending");
    assert!(found["source_event_id"].is_string(), "{found}");
    assert_eq!(found["payload"]["event_payload"]["new_status"], "done");
    let mut heard = None;
    for _ in 0..20 {
        if let Some(SseItem::Event { event, data, .. }) =
            stream_on_b.next(Duration::from_millis(500)).await
        {
            heard = Some((event, data));
            break;
        }
    }
    let (event, data) = heard.expect("the suggestion reaches the stream of the other instance");
    assert_eq!(event, "suggestion");
    assert_eq!(data["suggestion"]["id"], found["id"]);
    // Each event is evaluated once, by one of the two engines.
    let db = a.db.client().await;
    let row = db
        .query_one(
            "SELECT count(*) AS n FROM agent_suggestions WHERE title = 'Downstream tasks now unblocked'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>("n"), 1);
}

#[actix_web::test]
async fn an_overdue_task_and_the_daily_tick_raise_an_alert() {
    let server = engine_server().start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    create_task(
        &server,
        &board,
        json!({"title": "Late", "due_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    // The day turns (for this deployment's clock).
    let db = server.db.client().await;
    db.execute(
        "UPDATE proactivity_clock SET daily_at = daily_at - interval '1 day'",
        &[],
    )
    .await
    .unwrap();
    let found = suggestion_titled(&server, "Overdue tasks detected").await;
    assert_eq!(found["priority"], "high");
    assert_eq!(found["payload"]["event_type"], "cron.daily");
    assert_eq!(found["payload"]["event_payload"]["overdue_count"], 1);
    let ticks = db
        .query_one(
            "SELECT count(*) AS n FROM agent_events WHERE event_type = 'cron.daily'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ticks.get::<_, i64>("n"), 1, "one tick per organization");
}

#[actix_web::test]
async fn a_rules_cooldown_holds_across_two_instances() {
    let a = engine_server().start().await;
    let b = engine_server().start_on(&a).await;
    let created = send(
        &a,
        Method::POST,
        "/api/v1/proactive-rules",
        json!({"name": "New work", "trigger_event": "task.created", "action_type": "create_suggestion",
               "action_config": {"title": "New work arrived"}, "cooldown_seconds": 3600}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let board = new_board(&a, json!({"require_approval_for_done": false})).await;
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        create_task(server, &board, json!({"title": format!("T{i}")})).await;
    }
    suggestion_titled(&a, "New work arrived").await;
    let db = a.db.client().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            db.query_one(
                "SELECT count(*) AS n FROM agent_events WHERE event_type = 'task.created' AND evaluated_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>("n")
                == 0
        })
        .await
    );
    assert_eq!(
        suggestions(&b, "")
            .await
            .iter()
            .filter(|s| s["title"] == "New work arrived")
            .count(),
        1
    );
}

/// The deployment's stream key and a Redis connection to its database (DB 2).
async fn event_stream(server: &Server) -> (redis::aio::MultiplexedConnection, String) {
    let db = server.db.client().await;
    let id: Uuid = db
        .query_one("SELECT deployment_id FROM proactivity_clock", &[])
        .await
        .unwrap()
        .get("deployment_id");
    // PROACTIVITY_REDIS_URL's default: REDIS_URL with DB 2.
    let mut url = url::Url::parse(&redis_url()).unwrap();
    url.set_path("/2");
    let client = redis::Client::open(url.as_str()).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    (conn, format!("mc:event-stream:{id}"))
}

#[actix_web::test]
async fn events_a_dead_consumer_held_or_redis_lost_are_evaluated_once() {
    // The API instance runs no engine: events only go on the stream.
    let api = engine_server()
        .env("PROACTIVITY_ENGINE_IN_SERVE", "false")
        .start()
        .await;
    let titles = ["lost 0", "lost 1", "held 0", "held 1", "held 2"];
    // One rule per task (a short cooldown: an event evaluated twice would fire twice).
    for title in titles {
        let rule = send(
            &api,
            Method::POST,
            "/api/v1/proactive-rules",
            json!({"name": title, "trigger_event": "task.created", "action_type": "create_suggestion",
                   "conditions": {"rules": [{"field": "title", "value": title}]},
                   "action_config": {"title": format!("Saw {title}")}, "cooldown_seconds": 1}),
        )
        .await;
        assert_eq!(rule.status, 201, "{}", rule.text);
    }
    let (mut redis, stream) = event_stream(&api).await;
    let board = new_board(&api, json!({"require_approval_for_done": false})).await;
    // Redis loses two events.
    for title in &titles[..2] {
        create_task(&api, &board, json!({"title": title})).await;
    }
    let db = api.db.client().await;
    let on_stream = || async {
        let mut redis = event_stream(&api).await.0;
        redis::cmd("XLEN")
            .arg(&stream)
            .query_async::<i64>(&mut redis)
            .await
            .unwrap()
    };
    assert!(eventually(Duration::from_secs(5), || async { on_stream().await == 2 }).await);
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut redis)
        .await
        .unwrap();
    // A consumer reads three events and dies before acknowledging them.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("rule-engine")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut redis)
        .await
        .unwrap();
    for title in &titles[2..] {
        create_task(&api, &board, json!({"title": title})).await;
    }
    assert!(eventually(Duration::from_secs(5), || async { on_stream().await == 3 }).await);
    let read: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("rule-engine")
        .arg("ghost")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_ne!(
        read,
        redis::Value::Nil,
        "the ghost consumer read the events"
    );

    // An instance with an engine starts: it claims the ghost's entries and reads the lost
    // events from PostgreSQL.
    let engine = engine_server().start_on(&api).await;
    let unevaluated = || async {
        db.query_one(
            "SELECT count(*) AS n FROM agent_events WHERE evaluated_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>("n")
    };
    assert!(
        eventually(Duration::from_secs(20), || async {
            unevaluated().await == 0
        })
        .await,
        "{}",
        engine.log()
    );
    // Longer than the cooldown and a recovery round: nothing is evaluated again.
    actix_web::rt::time::sleep(Duration::from_secs(3)).await;
    for title in titles {
        let fired: i64 = db
            .query_one(
                "SELECT count(*) AS n FROM agent_suggestions WHERE title = $1",
                &[&format!("Saw {title}")],
            )
            .await
            .unwrap()
            .get("n");
        assert_eq!(fired, 1, "{title}");
    }
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("rule-engine")
        .query_async(&mut redis)
        .await
        .unwrap();
    let redis::Value::Array(summary) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(
        summary[0],
        redis::Value::Int(0),
        "the claimed entries were acknowledged"
    );
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut redis)
        .await
        .unwrap();
}

#[actix_web::test]
async fn accepting_a_follow_up_creates_the_task_once() {
    let server = engine_server().start().await;
    let rule = send(
        &server,
        Method::POST,
        "/api/v1/proactive-rules",
        json!({"name": "New work", "trigger_event": "task.created", "action_type": "create_suggestion"}),
    )
    .await;
    assert_eq!(rule.status, 201, "{}", rule.text);
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let task = create_task(
        &server,
        &board,
        json!({"title": "Ship v1", "description": "Next steps: write the changelog."}),
    )
    .await;
    update_task(&server, &task, json!({"status": "done"})).await;
    let found = suggestion_titled(&server, "Consider a follow-up task").await;
    assert_eq!(found["payload"]["action"]["type"], "create_task");
    let path = format!("/api/v1/suggestions/{}", found["id"].as_str().unwrap());
    let accepted = send(
        &server,
        Method::POST,
        &format!("{path}/accept"),
        json!(null),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.json["status"], "executed", "{}", accepted.text);
    let created = accepted.json["action_result"]["task_id"].as_str().unwrap();
    let tasks = server
        .admin_get(&format!(
            "/api/v1/boards/{}/tasks",
            board["id"].as_str().unwrap()
        ))
        .await;
    let follow_ups: Vec<&Value> = tasks.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["title"] == "Follow up: Ship v1")
        .collect();
    assert_eq!(follow_ups.len(), 1);
    assert_eq!(follow_ups[0]["id"], created);
    // Once: a second accept, or a dismiss, of a resolved suggestion is refused.
    for verb in ["accept", "dismiss"] {
        let again = send(
            &server,
            Method::POST,
            &format!("{path}/{verb}"),
            json!(null),
        )
        .await;
        assert_eq!(again.status, 409, "{}", again.text);
        assert_eq!(again.json["detail"], "Suggestion is already executed.");
    }
    assert_eq!(suggestions(&server, "?status=executed").await.len(), 1);

    // An expired suggestion cannot be accepted.
    let db = server.db.client().await;
    let pending = suggestion_titled(&server, "[New work] triggered by task.created").await;
    assert_eq!(pending["status"], "pending");
    db.execute(
        "UPDATE agent_suggestions SET expires_at = now() - interval '1 minute' WHERE status = 'pending'",
        &[],
    )
    .await
    .unwrap();
    let expired = suggestions(&server, "?status=expired").await;
    assert_eq!(expired.len(), 1);
    for pending in expired {
        let path = format!(
            "/api/v1/suggestions/{}/accept",
            pending["id"].as_str().unwrap()
        );
        let reply = send(&server, Method::POST, &path, json!(null)).await;
        assert_eq!(reply.status, 409, "{}", reply.text);
        assert_eq!(reply.json["detail"], "Suggestion is already expired.");
    }

    // Another organization's suggestion is not found.
    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&path).await.status, 404);
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{path}/dismiss"),
            json!(null)
        )
        .await
        .status,
        404
    );
}

#[actix_web::test]
async fn an_idle_agents_heartbeat_suggests_work_and_accepting_assigns_it() {
    let server = engine_server().start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let (agent, token) = crate::fixtures::agent(&server, &board, "Idler").await;
    let waiting = create_task(&server, &board, json!({"title": "Unassigned"})).await;
    // The agent was created two hours ago and has done nothing since.
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE agents SET created_at = now() - interval '2 hours' WHERE id = $1",
            &[&agent["id"].as_str().unwrap().parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap();
    let beat = crate::fixtures::as_agent(
        &server,
        &token,
        Method::POST,
        "/api/v1/agent/heartbeat",
        None,
    )
    .await;
    assert_eq!(beat.status, 200, "{}", beat.text);
    let found = suggestion_titled(&server, "Idle agent detected").await;
    assert_eq!(found["agent_id"], agent["id"]);
    assert!(
        found["payload"]["event_payload"]["idle_minutes"]
            .as_i64()
            .unwrap()
            >= 60,
        "{found}"
    );
    assert_eq!(found["payload"]["action"]["type"], "assign_or_nudge");
    let path = format!(
        "/api/v1/suggestions/{}/accept",
        found["id"].as_str().unwrap()
    );
    let accepted = send(&server, Method::POST, &path, json!(null)).await;
    assert_eq!(accepted.json["status"], "executed", "{}", accepted.text);
    assert_eq!(
        accepted.json["action_result"]["assigned_task_id"],
        waiting["id"]
    );
    let tasks = server
        .admin_get(&format!(
            "/api/v1/boards/{}/tasks",
            board["id"].as_str().unwrap()
        ))
        .await;
    let task = tasks.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == waiting["id"])
        .cloned()
        .unwrap();
    assert_eq!(task["assigned_agent_id"], agent["id"]);
}
