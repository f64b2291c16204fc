//! `GET /api/v1/activity` and `GET /api/v1/activity/task-comments` (domain.md §A10).

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{
    create_agent, create_board, create_gateway, create_task, grant_only, send, switch_to_new_org,
    update_task,
};
use crate::harness::Server;

async fn board(server: &Server) -> Value {
    let name = format!("A{}", &Uuid::new_v4().simple().to_string()[..8]);
    let gateway = create_gateway(server, &name).await;
    create_board(server, &gateway, &name, json!({})).await
}

fn uuid(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}

async fn comment(server: &Server, task: &Value, message: &str) {
    let path = format!(
        "/api/v1/boards/{}/tasks/{}/comments",
        task["board_id"].as_str().unwrap(),
        task["id"].as_str().unwrap()
    );
    let reply = send(server, Method::POST, &path, json!({"message": message})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

async fn page(server: &Server, path: &str) -> Value {
    let reply = server.admin_get(path).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

fn newest_first(page: &Value) -> bool {
    let times: Vec<chrono::DateTime<chrono::Utc>> = items(page)
        .iter()
        .map(|i| serde_json::from_value(i["created_at"].clone()).unwrap())
        .collect();
    times.windows(2).all(|w| w[0] >= w[1])
}

/// What users see of the given boards, counted in the database: task events and the
/// lifecycle of agents (never heartbeats); with `boardless`, also the events of no board
/// (a member who reads every board sees those).
async fn visible_events(server: &Server, boards: &[&Value], boardless: bool) -> i64 {
    let ids: Vec<Uuid> = boards.iter().map(|b| uuid(b)).collect();
    server
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM activity_events \
              WHERE (board_id = ANY($1) OR ($2 AND board_id IS NULL)) \
                AND (task_id IS NOT NULL OR event_type LIKE 'gateway.%' \
                     OR (event_type LIKE 'agent.%' AND event_type <> 'agent.heartbeat'))",
            &[&ids, &boardless],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn the_activity_feed_shows_task_and_agent_events_of_readable_boards_newest_first() {
    let server = Server::start().await;
    let a = board(&server).await;
    let b = board(&server).await;
    let a1 = create_task(&server, &a, json!({"title": "On A"})).await;
    update_task(&server, &a1, json!({"status": "in_progress"})).await;
    let b1 = create_task(&server, &b, json!({"title": "On B"})).await;
    comment(&server, &b1, "latest word").await;
    // Heartbeats are never shown to users.
    server
        .db
        .client()
        .await
        .execute(
            "INSERT INTO activity_events (id, organization_id, board_id, event_type, message) \
             SELECT $1, organization_id, id, 'agent.heartbeat', 'beat' FROM boards WHERE id = $2",
            &[&Uuid::new_v4(), &uuid(&a)],
        )
        .await
        .unwrap();

    let all = page(&server, "/api/v1/activity").await;
    let expected = visible_events(&server, &[&a, &b], true).await;
    assert!(expected >= 4, "created, status change, created, comment");
    // The gateway's main agent was asked for when its gateway was created.
    assert!(items(&page(&server, "/api/v1/activity").await)
        .iter()
        .any(|i| i["event_type"] == "agent.provision.requested"),);
    assert_eq!(all["total"], expected);
    assert_eq!(
        (all["limit"].clone(), all["offset"].clone()),
        (json!(200), json!(0))
    );
    assert_eq!(items(&all).len() as i64, expected);
    assert!(newest_first(&all), "{all}");
    assert!(items(&all)
        .iter()
        .all(|i| i["event_type"] != "agent.heartbeat"));
    let latest = &items(&all)[0];
    assert_eq!(
        (
            &latest["event_type"],
            &latest["message"],
            &latest["task_id"]
        ),
        (&json!("task.comment"), &json!("latest word"), &b1["id"])
    );
    for field in [
        "id",
        "event_type",
        "message",
        "agent_id",
        "task_id",
        "created_at",
    ] {
        assert!(latest.get(field).is_some(), "{field} in {latest}");
    }

    let second_page = page(&server, "/api/v1/activity?limit=2&offset=1").await;
    assert_eq!(second_page["total"], expected);
    assert_eq!(
        items(&second_page)
            .iter()
            .map(|i| &i["id"])
            .collect::<Vec<_>>(),
        items(&all)[1..3]
            .iter()
            .map(|i| &i["id"])
            .collect::<Vec<_>>()
    );

    grant_only(&server, &[&a]).await;
    let only_a = page(&server, "/api/v1/activity").await;
    assert_eq!(only_a["total"], visible_events(&server, &[&a], false).await);
    assert!(items(&only_a)
        .iter()
        .all(|i| i["task_id"] == a1["id"] || i["task_id"].is_null()));

    switch_to_new_org(&server).await;
    assert_eq!(page(&server, "/api/v1/activity").await["total"], 0);
}

#[actix_web::test]
async fn the_activity_feed_refuses_bad_requests() {
    let server = Server::start().await;
    for path in ["/api/v1/activity", "/api/v1/activity/task-comments"] {
        let reply = server.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, 401, "{path}");
        for query in ["limit=0", "limit=201", "offset=-1"] {
            let reply = server.admin_get(&format!("{path}?{query}")).await;
            assert_eq!(reply.status, 422, "{path}?{query}");
        }
    }
    let reply = server
        .admin_get("/api/v1/activity/task-comments?board_id=nope")
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let reply = server
        .admin_get(&format!(
            "/api/v1/activity/task-comments?board_id={}",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(reply.status, 404);
}

#[actix_web::test]
async fn the_comment_feed_lists_non_blank_comments_with_their_task_board_and_agent() {
    let server = Server::start().await;
    let a = board(&server).await;
    let b = board(&server).await;
    let a1 = create_task(&server, &a, json!({"title": "Write docs"})).await;
    let b1 = create_task(&server, &b, json!({"title": "Fix bug"})).await;
    comment(&server, &a1, "first").await;
    comment(&server, &b1, "second").await;
    let started = update_task(&server, &a1, json!({"status": "in_progress"})).await;
    update_task(
        &server,
        &started,
        json!({"status": "review", "comment": "ready for review"}),
    )
    .await;

    let reviewer = create_agent(&server, &a, "Rita").await;
    assert_eq!(reviewer.status, 200, "{}", reviewer.text);
    let numbered = create_agent(&server, &a, "Nemo").await;
    assert_eq!(numbered.status, 200, "{}", numbered.text);
    let db = server.db.client().await;
    for (agent, profile) in [
        (&reviewer.json, json!({"role": "  Reviewer\n"})),
        (&numbered.json, json!({"role": 7})),
    ] {
        db.execute(
            "UPDATE agents SET identity_profile = $2 WHERE id = $1",
            &[&uuid(agent), &profile],
        )
        .await
        .unwrap();
    }
    // Agent comments (agents have no API here yet), then a blank one, each a bit later.
    for (i, (agent, message)) in [
        (Some(uuid(&numbered.json)), "by nemo"),
        (Some(uuid(&reviewer.json)), "looks good"),
        (None, "   "),
    ]
    .into_iter()
    .enumerate()
    {
        db.execute(
            "INSERT INTO activity_events (id, organization_id, board_id, event_type, message, agent_id, task_id, created_at) \
             SELECT $1, organization_id, board_id, 'task.comment', $2, $3, id, now() + make_interval(secs => $4) \
             FROM tasks WHERE id = $5",
            &[&Uuid::new_v4(), &message, &agent, &(i as f64 + 1.0), &uuid(&a1)],
        )
        .await
        .unwrap();
    }

    let feed = page(&server, "/api/v1/activity/task-comments").await;
    let messages: Vec<&str> = items(&feed)
        .iter()
        .map(|i| i["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "looks good",
            "by nemo",
            "ready for review",
            "second",
            "first"
        ]
    );
    assert_eq!(feed["total"], 5);
    assert!(newest_first(&feed));
    let top = &items(&feed)[0];
    assert_eq!(top["agent_id"], reviewer.json["id"]);
    assert_eq!(top["agent_name"], "Rita");
    assert_eq!(top["agent_role"], "Reviewer");
    assert_eq!(top["task_id"], a1["id"]);
    assert_eq!(top["task_title"], "Write docs");
    assert_eq!(top["board_id"], a["id"]);
    assert_eq!(top["board_name"], a["name"]);
    assert_eq!(
        (
            &items(&feed)[1]["agent_name"],
            &items(&feed)[1]["agent_role"]
        ),
        (&json!("Nemo"), &Value::Null),
        "a role that is not a string is none"
    );
    let by_user = &items(&feed)[3];
    assert_eq!(
        (
            &by_user["agent_id"],
            &by_user["agent_name"],
            &by_user["agent_role"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    assert_eq!(
        (&by_user["task_title"], &by_user["board_name"]),
        (&json!("Fix bug"), &b["name"])
    );

    let on_b = page(
        &server,
        &format!("/api/v1/activity/task-comments?board_id={}", uuid(&b)),
    )
    .await;
    assert_eq!(on_b["total"], 1);
    assert_eq!(items(&on_b)[0]["message"], "second");
    let paged = page(&server, "/api/v1/activity/task-comments?limit=1&offset=2").await;
    assert_eq!(
        (paged["total"].clone(), items(&paged)[0]["message"].clone()),
        (json!(5), json!("ready for review"))
    );

    grant_only(&server, &[&a]).await;
    let only_a = page(&server, "/api/v1/activity/task-comments").await;
    assert_eq!(only_a["total"], 4);
    assert!(items(&only_a).iter().all(|i| i["board_id"] == a["id"]));
    let reply = server
        .admin_get(&format!(
            "/api/v1/activity/task-comments?board_id={}",
            uuid(&b)
        ))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);

    switch_to_new_org(&server).await;
    assert_eq!(
        page(&server, "/api/v1/activity/task-comments").await["total"],
        0
    );
    let reply = server
        .admin_get(&format!(
            "/api/v1/activity/task-comments?board_id={}",
            uuid(&a)
        ))
        .await;
    assert_eq!(reply.status, 404, "{}", reply.text);
}
