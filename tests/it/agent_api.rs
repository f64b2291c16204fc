//! The agent-facing API: agent tokens (shown once, rotated on update, one agent each), the
//! board guard, and the lead/worker task rules through `/api/v1/agent/*`.

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{agent, as_agent, make_lead, new_board, send, switch_to_new_org};
use crate::harness::{Reply, Server, SseClient, ADMIN_TOKEN};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

fn board_path(board: &Value, rest: &str) -> String {
    format!(
        "/api/v1/agent/boards/{}{rest}",
        board["id"].as_str().unwrap()
    )
}

#[actix_web::test]
async fn an_agent_token_reaches_its_own_board_only() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let other = new_board(&server, json!({})).await;
    let (me, token) = agent(&server, &board, "Worker").await;

    let health = ok(as_agent(&server, &token, Method::GET, "/api/v1/agent/healthz", None).await);
    assert_eq!(
        (health["agent_id"].clone(), health["board_id"].clone()),
        (me["id"].clone(), board["id"].clone())
    );
    assert_eq!(health["status"], "online", "the first call marks it seen");
    let boards = ok(as_agent(&server, &token, Method::GET, "/api/v1/agent/boards", None).await);
    assert_eq!(boards["total"], 1);
    assert_eq!(boards["items"][0]["id"], board["id"]);
    assert_eq!(
        as_agent(&server, &token, Method::GET, &board_path(&other, ""), None)
            .await
            .status,
        403
    );
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::GET,
            &board_path(&other, "/tasks"),
            None
        )
        .await
        .status,
        403
    );
    let ghost = format!("/api/v1/agent/boards/{}", Uuid::new_v4());
    assert_eq!(
        as_agent(&server, &token, Method::GET, &ghost, None)
            .await
            .status,
        404
    );

    // Agent tokens open only the agent routes; the admin token does not open them.
    let reply = server
        .raw(
            Method::GET,
            "/api/v1/boards",
            None,
            None,
            &[("X-Agent-Token", &token)],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    let reply = server
        .call(
            Method::GET,
            "/api/v1/agent/healthz",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
    assert_eq!(reply.status, 401);
    let bearer = server
        .call(Method::GET, "/api/v1/agent/healthz", Some(&token), None)
        .await;
    assert_eq!(bearer.status, 200, "Bearer works on /agent/*");
    // The right lookup id with a wrong secret (its last digit changed) is refused too.
    let last = if token.ends_with('0') { "1" } else { "0" };
    let wrong_secret = format!("{}{last}", &token[..token.len() - 1]);
    for bad in ["", "mca_nope", &token.replace('.', "x"), &wrong_secret] {
        assert_eq!(
            as_agent(&server, bad, Method::GET, "/api/v1/agent/healthz", None)
                .await
                .status,
            401,
            "{bad}"
        );
    }
}

#[actix_web::test]
async fn an_update_rotates_the_token_and_the_old_one_stops_working() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (me, old) = agent(&server, &board, "Rotor").await;
    let path = format!("/api/v1/agents/{}", me["id"].as_str().unwrap());
    let listed = ok(server.admin_get(&path).await);
    assert!(listed.get("agent_token").is_none(), "never shown again");
    let updated = ok(send(&server, Method::PATCH, &path, json!({"name": "Rotor 2"})).await);
    let new = updated["agent_token"]
        .as_str()
        .expect("a new token")
        .to_string();
    assert_ne!(new, old);
    assert_eq!(
        as_agent(&server, &old, Method::GET, "/api/v1/agent/healthz", None)
            .await
            .status,
        401
    );
    assert_eq!(
        as_agent(&server, &new, Method::GET, "/api/v1/agent/healthz", None)
            .await
            .status,
        200
    );
    let unchanged = ok(send(&server, Method::PATCH, &path, json!({})).await);
    assert_eq!(
        unchanged["agent_token"],
        Value::Null,
        "an empty update keeps the token"
    );
}

#[actix_web::test]
async fn a_gateway_main_agent_sees_its_organization_only() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let main: Uuid = server
        .db
        .client()
        .await
        .query_one("SELECT id FROM agents WHERE board_id IS NULL LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let rotated = ok(send(
        &server,
        Method::PATCH,
        &format!("/api/v1/agents/{main}"),
        json!({"name": "Main"}),
    )
    .await);
    let token = rotated["agent_token"].as_str().unwrap().to_string();
    switch_to_new_org(&server).await;
    let foreign = new_board(&server, json!({})).await;

    let boards = ok(as_agent(&server, &token, Method::GET, "/api/v1/agent/boards", None).await);
    let ids: Vec<&Value> = boards["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["id"])
        .collect();
    assert_eq!(ids, [&board["id"]]);
    assert_eq!(
        ok(as_agent(&server, &token, Method::GET, &board_path(&board, ""), None).await)["id"],
        board["id"]
    );
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::GET,
            &board_path(&foreign, ""),
            None
        )
        .await
        .status,
        404
    );
}

#[actix_web::test]
async fn leads_and_workers_follow_the_reference_task_rules() {
    let server = Server::start().await;
    let board = new_board(&server, json!({"require_approval_for_done": false})).await;
    let (lead, lead_token) = agent(&server, &board, "Lea").await;
    make_lead(&server, &lead).await;
    let (worker, worker_token) = agent(&server, &board, "Wes").await;
    let (_, other_token) = agent(&server, &board, "Otto").await;

    // Only the lead creates; its tasks are marked as its own.
    let reply = as_agent(
        &server,
        &worker_token,
        Method::POST,
        &board_path(&board, "/tasks"),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(reply.status, 403);
    let task = ok(as_agent(
        &server,
        &lead_token,
        Method::POST,
        &board_path(&board, "/tasks"),
        Some(json!({"title": "Index docs"})),
    )
    .await);
    let task_path = board_path(&board, &format!("/tasks/{}", task["id"].as_str().unwrap()));
    let reply = as_agent(
        &server,
        &lead_token,
        Method::POST,
        &board_path(&board, "/tasks"),
        Some(json!({"title": "y", "assigned_agent_id": lead["id"]})),
    )
    .await;
    assert_eq!(reply.status, 403, "a lead may not assign itself");

    // A worker claims the unassigned task; another worker may not move it.
    let claimed = ok(as_agent(
        &server,
        &worker_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "in_progress"})),
    )
    .await);
    assert_eq!(claimed["assigned_agent_id"], worker["id"]);
    let reply = as_agent(
        &server,
        &other_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "review"})),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["detail"]["code"].as_str()),
        (403, Some("task_assignee_mismatch"))
    );
    let reply = as_agent(
        &server,
        &worker_token,
        Method::PATCH,
        &task_path,
        Some(json!({"title": "mine"})),
    )
    .await;
    assert_eq!(reply.json["detail"]["code"], "task_update_field_forbidden");

    // The lead cannot close it before review, nor comment on another's task outside review...
    let reply = as_agent(
        &server,
        &lead_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "done"})),
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = as_agent(
        &server,
        &worker_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "review"})),
    )
    .await;
    assert_eq!(reply.json["detail"], "Comment is required.");
    ok(as_agent(
        &server,
        &worker_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "review", "comment": "Indexed 40 pages"})),
    )
    .await);
    let done = ok(as_agent(
        &server,
        &lead_token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "done"})),
    )
    .await);
    assert_eq!(done["status"], "done");

    // ...except on tasks it created, or where it was mentioned.
    let comments = format!("{task_path}/comments");
    ok(as_agent(
        &server,
        &lead_token,
        Method::POST,
        &comments,
        Some(json!({"message": "thanks"})),
    )
    .await);
    let users_task = ok(send(
        &server,
        Method::POST,
        &format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap()),
        json!({"title": "user's"}),
    )
    .await);
    let users_comments = board_path(
        &board,
        &format!("/tasks/{}/comments", users_task["id"].as_str().unwrap()),
    );
    let reply = as_agent(
        &server,
        &lead_token,
        Method::POST,
        &users_comments,
        Some(json!({"message": "hm"})),
    )
    .await;
    assert_eq!(reply.status, 403);
    ok(as_agent(
        &server,
        &worker_token,
        Method::POST,
        &users_comments,
        Some(json!({"message": "@lea please look"})),
    )
    .await);
    ok(as_agent(
        &server,
        &lead_token,
        Method::POST,
        &users_comments,
        Some(json!({"message": "on it"})),
    )
    .await);
    let listed = ok(as_agent(&server, &worker_token, Method::GET, &users_comments, None).await);
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["items"][1]["agent_id"], lead["id"]);
}

#[actix_web::test]
async fn a_lead_adds_workers_to_its_board_up_to_max_agents() {
    let server = Server::start().await;
    let board = new_board(&server, json!({"max_agents": 2})).await;
    let other = new_board(&server, json!({})).await;
    let (lead, lead_token) = agent(&server, &board, "Lead").await;
    make_lead(&server, &lead).await;
    let (_, worker_token) = agent(&server, &board, "First").await;

    let reply = as_agent(
        &server,
        &worker_token,
        Method::POST,
        "/api/v1/agent/agents",
        Some(json!({"name": "Nope"})),
    )
    .await;
    assert_eq!(reply.status, 403, "workers do not create agents");
    // Whatever board is named, the new worker joins the lead's board, with a token of its own.
    let made = ok(as_agent(
        &server,
        &lead_token,
        Method::POST,
        "/api/v1/agent/agents",
        Some(json!({"name": "Second", "board_id": other["id"]})),
    )
    .await);
    assert_eq!(made["board_id"], board["id"]);
    let token = made["agent_token"].as_str().unwrap();
    assert_eq!(
        as_agent(&server, token, Method::GET, "/api/v1/agent/healthz", None)
            .await
            .status,
        200
    );
    let reply = as_agent(
        &server,
        &lead_token,
        Method::POST,
        "/api/v1/agent/agents",
        Some(json!({"name": "Third"})),
    )
    .await;
    assert_eq!(reply.status, 409);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .starts_with("Board worker-agent limit reached: max_agents=2"));

    let listed = ok(as_agent(
        &server,
        &worker_token,
        Method::GET,
        "/api/v1/agent/agents",
        None,
    )
    .await);
    assert_eq!(listed["total"], 3);
    let reply = as_agent(
        &server,
        &worker_token,
        Method::GET,
        &format!(
            "/api/v1/agent/agents?board_id={}",
            other["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(reply.status, 403);
}

#[actix_web::test]
async fn souls_are_read_by_their_agent_or_lead_and_written_by_the_lead() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (lead, lead_token) = agent(&server, &board, "Lead").await;
    make_lead(&server, &lead).await;
    let (worker, worker_token) = agent(&server, &board, "Worker").await;
    let soul = board_path(
        &board,
        &format!("/agents/{}/soul", worker["id"].as_str().unwrap()),
    );

    assert_eq!(
        ok(as_agent(&server, &worker_token, Method::GET, &soul, None).await),
        json!("")
    );
    let reply = as_agent(
        &server,
        &worker_token,
        Method::PUT,
        &soul,
        Some(json!({"content": "be brief"})),
    )
    .await;
    assert_eq!(reply.status, 403, "only the lead writes");
    let reply = as_agent(
        &server,
        &lead_token,
        Method::PUT,
        &soul,
        Some(json!({"content": "  "})),
    )
    .await;
    assert_eq!(reply.status, 422);
    ok(as_agent(
        &server,
        &lead_token,
        Method::PUT,
        &soul,
        Some(json!({"content": "Be brief.", "reason": "too chatty"})),
    )
    .await);
    assert_eq!(
        ok(as_agent(&server, &worker_token, Method::GET, &soul, None).await),
        json!("Be brief.")
    );
    assert_eq!(
        ok(as_agent(&server, &lead_token, Method::GET, &soul, None).await),
        json!("Be brief.")
    );
    let (_, other_token) = agent(&server, &board, "Other").await;
    assert_eq!(
        as_agent(&server, &other_token, Method::GET, &soul, None)
            .await
            .status,
        403
    );
    let ghost = board_path(&board, &format!("/agents/{}/soul", Uuid::new_v4()));
    assert_eq!(
        as_agent(&server, &lead_token, Method::GET, &ghost, None)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn agents_read_and_write_their_boards_memory() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let other = new_board(&server, json!({})).await;
    let (_, token) = agent(&server, &board, "Scribe").await;
    let path = board_path(&board, "/memory");
    let entry = ok(as_agent(
        &server,
        &token,
        Method::POST,
        &path,
        Some(json!({"content": " standup at 9 ", "tags": ["chat"]})),
    )
    .await);
    assert_eq!(
        (
            entry["content"].as_str(),
            entry["source"].as_str(),
            entry["is_chat"].as_bool()
        ),
        (Some("standup at 9"), Some("Scribe"), Some(true))
    );
    let listed = ok(as_agent(
        &server,
        &token,
        Method::GET,
        &format!("{path}?is_chat=true"),
        None,
    )
    .await);
    assert_eq!(listed["items"][0]["id"], entry["id"]);
    let admin_view = ok(server
        .admin_get(&format!(
            "/api/v1/boards/{}/memory",
            board["id"].as_str().unwrap()
        ))
        .await);
    assert_eq!(admin_view["total"], 1);
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::GET,
            &board_path(&other, "/memory"),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::POST,
            &path,
            Some(json!({"content": ""}))
        )
        .await
        .status,
        422
    );
}

#[actix_web::test]
async fn the_shared_board_routes_take_agent_tokens_too() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let other = new_board(&server, json!({})).await;
    let (worker, token) = agent(&server, &board, "Shared").await;
    let tasks = format!("/api/v1/boards/{}/tasks", board["id"].as_str().unwrap());
    let task = ok(send(&server, Method::POST, &tasks, json!({"title": "t"})).await);
    let task_path = format!("{tasks}/{}", task["id"].as_str().unwrap());

    assert_eq!(
        ok(as_agent(&server, &token, Method::GET, &tasks, None).await)["total"],
        1
    );
    let foreign = format!("/api/v1/boards/{}/tasks", other["id"].as_str().unwrap());
    assert_eq!(
        as_agent(&server, &token, Method::GET, &foreign, None)
            .await
            .status,
        403
    );
    let claimed = ok(as_agent(
        &server,
        &token,
        Method::PATCH,
        &task_path,
        Some(json!({"status": "in_progress"})),
    )
    .await);
    assert_eq!(
        claimed["assigned_agent_id"], worker["id"],
        "the agent rules apply"
    );
    let comment = ok(as_agent(
        &server,
        &token,
        Method::POST,
        &format!("{task_path}/comments"),
        Some(json!({"message": "working"})),
    )
    .await);
    assert_eq!(comment["agent_id"], worker["id"]);
    let approvals = format!("/api/v1/boards/{}/approvals", board["id"].as_str().unwrap());
    assert_eq!(
        ok(as_agent(&server, &token, Method::GET, &approvals, None).await)["total"],
        0
    );
    // Creating and deleting tasks there stays with users; the admin token still works.
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::POST,
            &tasks,
            Some(json!({"title": "x"}))
        )
        .await
        .status,
        401
    );
    assert_eq!(server.admin_get(&tasks).await.status, 200);
    assert_eq!(
        server.call(Method::GET, &tasks, None, None).await.status,
        401
    );
}

#[actix_web::test]
async fn board_memory_and_streams_take_agent_tokens() {
    let server = Server::start().await;
    let group = ok(send(
        &server,
        Method::POST,
        "/api/v1/board-groups",
        json!({"name": "Ops", "slug": "ops"}),
    )
    .await);
    let board = new_board(&server, json!({"board_group_id": group["id"]})).await;
    let other = new_board(&server, json!({})).await;
    let (_, token) = agent(&server, &board, "Scribe").await;
    let base = format!("/api/v1/boards/{}", board["id"].as_str().unwrap());
    let header = [("X-Agent-Token", token.as_str())];

    let mut memory = SseClient::open_with(&server, &format!("{base}/memory/stream"), &header).await;
    let mut tasks = SseClient::open_with(&server, &format!("{base}/tasks/stream"), &header).await;
    let _approvals =
        SseClient::open_with(&server, &format!("{base}/approvals/stream"), &header).await;
    let mut group_memory =
        SseClient::open_with(&server, &format!("{base}/group-memory/stream"), &header).await;

    let posted = ok(as_agent(
        &server,
        &token,
        Method::POST,
        &format!("{base}/memory"),
        Some(json!({"content": "deploy at 5", "tags": ["chat"]})),
    )
    .await);
    assert_eq!(posted["source"], "Scribe", "chat is authored by the agent");
    let (event, _, data) = memory.event().await;
    assert_eq!(
        (event.as_str(), &data["memory"]["id"]),
        ("memory", &posted["id"])
    );
    let shared = ok(as_agent(
        &server,
        &token,
        Method::POST,
        &format!("{base}/group-memory"),
        Some(json!({"content": "freeze on friday"})),
    )
    .await);
    assert_eq!(group_memory.event().await.2["memory"]["id"], shared["id"]);
    assert_eq!(
        ok(as_agent(
            &server,
            &token,
            Method::GET,
            &format!("{base}/group-memory"),
            None
        )
        .await)["total"],
        1
    );
    assert_eq!(
        ok(as_agent(
            &server,
            &token,
            Method::GET,
            &format!("{base}/memory"),
            None
        )
        .await)["total"],
        1
    );
    crate::fixtures::create_task(&server, &board, json!({"title": "watched"})).await;
    assert_eq!(tasks.event().await.0, "task");

    // Another board stays closed to it, and a bad token opens nothing.
    let foreign = format!("/api/v1/boards/{}/memory", other["id"].as_str().unwrap());
    assert_eq!(
        as_agent(&server, &token, Method::GET, &foreign, None)
            .await
            .status,
        403
    );
    assert_eq!(
        as_agent(
            &server,
            &token,
            Method::GET,
            &format!("{foreign}/stream"),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        as_agent(
            &server,
            "mca_bad.token",
            Method::GET,
            &format!("{base}/memory"),
            None
        )
        .await
        .status,
        401
    );
}
