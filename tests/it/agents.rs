//! `/api/v1/agents`: heartbeats (by the agent, by an admin, by name), the 30 s presence
//! rule, the agents stream (push, `Last-Event-ID` resume, across instances) and
//! capabilities.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{create_agent, delete, grant_only, new_board, send, switch_to_new_org};
use crate::harness::{Reply, Server, SseClient, SseItem};

fn ok(reply: Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn as_agent(server: &Server, token: &str, method: Method, path: &str, body: Value) -> Reply {
    server
        .raw(
            method,
            path,
            None,
            Some(&body.to_string()),
            &[("X-Agent-Token", token)],
        )
        .await
        .expect("request")
}

/// A new agent on `board`, with its token.
async fn agent(server: &Server, board: &Value, name: &str) -> (Value, String) {
    let created = ok(create_agent(server, board, name).await);
    let token = created["agent_token"].as_str().unwrap().to_string();
    (created, token)
}

fn beat_path(agent: &Value) -> String {
    format!("/api/v1/agents/{}/heartbeat", agent["id"].as_str().unwrap())
}

fn caps_path(agent: &Value) -> String {
    format!(
        "/api/v1/agents/{}/capabilities",
        agent["id"].as_str().unwrap()
    )
}

/// The agent's stored presence and status.
async fn stored(server: &Server, agent: &Value) -> (Option<chrono::DateTime<chrono::Utc>>, String) {
    let id: Uuid = agent["id"].as_str().unwrap().parse().unwrap();
    let row = server
        .db
        .client()
        .await
        .query_one(
            "SELECT last_seen_at, status FROM agents WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The next event, or `None` when only keepalives (or nothing) come within `within`.
async fn next_event(stream: &mut SseClient, within: Duration) -> Option<(Option<String>, Value)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match stream.next(left).await? {
            SseItem::Event { event, id, data } => {
                assert_eq!(event, "agent");
                return Some((id, data));
            }
            SseItem::Comment(_) => continue,
        }
    }
}

/// Events until one whose agent satisfies `wanted` (earlier states of the same change may
/// come first); panics when none does within 5 s.
async fn until(stream: &mut SseClient, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (_, data) = next_event(stream, left).await.expect("pushed");
        if wanted(&data["agent"]) {
            return data["agent"].clone();
        }
    }
}

#[actix_web::test]
async fn an_agent_heartbeats_itself_and_an_admin_any_agent_of_its_org() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (me, token) = agent(&server, &board, "Me").await;
    let (other, _) = agent(&server, &board, "Other").await;

    let beat = ok(as_agent(&server, &token, Method::POST, &beat_path(&me), json!({})).await);
    assert_eq!(
        (beat["id"].clone(), beat["status"].clone()),
        (me["id"].clone(), json!("online"))
    );
    assert!(beat["last_seen_at"].is_string());
    assert!(beat.get("agent_token").is_none());
    let foreign = as_agent(&server, &token, Method::POST, &beat_path(&other), json!({})).await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);

    let by_admin = ok(send(
        &server,
        Method::POST,
        &beat_path(&other),
        json!({"status": "degraded"}),
    )
    .await);
    assert_eq!(by_admin["status"], "degraded");
    let recorded: i64 = server
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM activity_events WHERE event_type = 'agent.heartbeat' AND agent_id = $1",
            &[&Uuid::parse_str(other["id"].as_str().unwrap()).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);

    let unknown = format!("/api/v1/agents/{}/heartbeat", Uuid::new_v4());
    assert_eq!(
        send(&server, Method::POST, &unknown, json!({}))
            .await
            .status,
        404
    );
    let bad = send(
        &server,
        Method::POST,
        &beat_path(&other),
        json!({"status": 5}),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let anonymous = server
        .call(Method::POST, &beat_path(&other), None, Some("{}"))
        .await;
    assert_eq!(anonymous.status, 401);

    // Read access to the board is not enough.
    grant_only(&server, &[&board]).await;
    server
        .db
        .client()
        .await
        .execute("UPDATE organization_members SET role = 'admin'", &[])
        .await
        .unwrap();
    server.caches_caught_up().await;
    let reader = send(&server, Method::POST, &beat_path(&other), json!({})).await;
    assert_eq!(reader.status, 403, "{}", reader.text);

    switch_to_new_org(&server).await;
    let elsewhere = send(&server, Method::POST, &beat_path(&other), json!({})).await;
    assert_eq!(elsewhere.status, 404, "{}", elsewhere.text);
}

#[actix_web::test]
async fn a_heartbeat_by_name_finds_or_creates_the_agent() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let path = "/api/v1/agents/heartbeat";

    let created = ok(send(
        &server,
        Method::POST,
        path,
        json!({"name": "Scout", "board_id": board["id"]}),
    )
    .await);
    assert_eq!(
        (
            created["name"].clone(),
            created["board_id"].clone(),
            created["status"].clone()
        ),
        (json!("Scout"), board["id"].clone(), json!("online"))
    );
    let token = created["agent_token"]
        .as_str()
        .expect("new agent's token")
        .to_string();
    let health = ok(server
        .raw(
            Method::GET,
            "/api/v1/agent/healthz",
            None,
            None,
            &[("X-Agent-Token", &token)],
        )
        .await
        .unwrap());
    assert_eq!(health["agent_id"], created["id"]);

    let again = ok(send(
        &server,
        Method::POST,
        path,
        json!({"name": "Scout", "status": "busy"}),
    )
    .await);
    assert_eq!(
        (again["id"].clone(), again["status"].clone()),
        (created["id"].clone(), json!("busy"))
    );
    assert!(
        again["agent_token"].is_null(),
        "a token is shown only at creation"
    );
    let listed = ok(server.admin_get("/api/v1/agents").await);
    assert_eq!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == "Scout")
            .count(),
        1
    );

    // Creating needs a board, and a name.
    let no_board = send(&server, Method::POST, path, json!({"name": "Nowhere"})).await;
    assert_eq!(no_board.status, 422, "{}", no_board.text);
    let blank = send(
        &server,
        Method::POST,
        path,
        json!({"name": "  ", "board_id": board["id"]}),
    )
    .await;
    assert_eq!(blank.status, 422, "{}", blank.text);
    let foreign_board = send(
        &server,
        Method::POST,
        path,
        json!({"name": "X", "board_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(foreign_board.status, 404, "{}", foreign_board.text);

    // An agent always beats for itself, whatever name it sends.
    let (me, my_token) = agent(&server, &board, "Me").await;
    let mine = ok(as_agent(
        &server,
        &my_token,
        Method::POST,
        path,
        json!({"name": "Scout", "status": "idle"}),
    )
    .await);
    assert_eq!(
        (mine["id"].clone(), mine["status"].clone()),
        (me["id"].clone(), json!("idle"))
    );
    assert_eq!(stored(&server, &created).await.1, "busy");

    let anonymous = server
        .call(Method::POST, path, None, Some(r#"{"name": "Scout"}"#))
        .await;
    assert_eq!(anonymous.status, 401);
}

#[actix_web::test]
async fn presence_is_written_at_most_every_30_seconds_but_a_status_change_always() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (worker, token) = agent(&server, &board, "Worker").await;

    ok(send(&server, Method::POST, &beat_path(&worker), json!({})).await);
    let (first_seen, status) = stored(&server, &worker).await;
    assert_eq!(status, "online");
    let first_seen = first_seen.expect("seen");

    ok(send(&server, Method::POST, &beat_path(&worker), json!({})).await);
    ok(as_agent(
        &server,
        &token,
        Method::POST,
        "/api/v1/agent/heartbeat",
        json!({}),
    )
    .await);
    assert_eq!(
        stored(&server, &worker).await,
        (Some(first_seen), "online".into())
    );

    let busy = ok(send(
        &server,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "busy"}),
    )
    .await);
    assert_eq!(busy["status"], "busy");
    assert_eq!(
        stored(&server, &worker).await,
        (Some(first_seen), "busy".into())
    );

    // Once the window has passed, presence is written again.
    let id: Uuid = worker["id"].as_str().unwrap().parse().unwrap();
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE agents SET last_seen_at = last_seen_at - interval '31 seconds' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    ok(send(
        &server,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "busy"}),
    )
    .await);
    let (seen, status) = stored(&server, &worker).await;
    assert!(seen.unwrap() >= first_seen, "written again");
    assert_eq!(status, "busy");
}

#[actix_web::test]
async fn agent_changes_are_pushed_and_a_reconnecting_client_gets_what_it_missed() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (worker, _) = agent(&server, &board, "Worker").await;
    let stream = "/api/v1/agents/stream";

    let mut listener = SseClient::open(&server, stream, None).await;
    assert!(
        next_event(&mut listener, Duration::from_millis(300))
            .await
            .is_none(),
        "no past changes without since"
    );
    ok(send(
        &server,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "busy"}),
    )
    .await);
    let (first, data) = next_event(&mut listener, Duration::from_secs(5))
        .await
        .expect("pushed");
    assert_eq!(
        (data["agent"]["id"].clone(), data["agent"]["status"].clone()),
        (worker["id"].clone(), json!("busy"))
    );
    // A heartbeat that changes nothing sends nothing.
    ok(send(
        &server,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "busy"}),
    )
    .await);
    assert!(next_event(&mut listener, Duration::from_millis(500))
        .await
        .is_none());
    drop(listener);

    let (scout, _) = agent(&server, &board, "Scout").await;
    let renamed = ok(send(
        &server,
        Method::PATCH,
        &format!("/api/v1/agents/{}", worker["id"].as_str().unwrap()),
        json!({"name": "Renamed"}),
    )
    .await);
    assert_eq!(renamed["name"], "Renamed");
    let mut resumed = SseClient::open(&server, stream, first.as_deref()).await;
    let mut missed = Vec::new();
    while let Some((_, data)) = next_event(&mut resumed, Duration::from_millis(800)).await {
        missed.push(data["agent"].clone());
    }
    let names: Vec<&str> = missed.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Scout", "Renamed"],
        "exactly what it missed, in order"
    );
    assert_eq!(missed[0]["id"], scout["id"]);

    // `since` replays the agents changed at or after it; one that does not parse means now.
    let mut replay = SseClient::open(
        &server,
        &format!("{stream}?since=2000-01-01T00:00:00Z"),
        None,
    )
    .await;
    let mut replayed = Vec::new();
    while let Some((_, data)) = next_event(&mut replay, Duration::from_millis(800)).await {
        replayed.push(data["agent"]["id"].clone());
    }
    assert!(replayed.contains(&worker["id"]) && replayed.contains(&scout["id"]));
    let mut fresh = SseClient::open(&server, &format!("{stream}?since=yesterday"), None).await;
    assert!(next_event(&mut fresh, Duration::from_millis(300))
        .await
        .is_none());

    // A deleted agent is gone from the stream's reads; the others still come.
    let mut watching = SseClient::open(&server, stream, None).await;
    ok(delete(
        &server,
        &format!("/api/v1/agents/{}", scout["id"].as_str().unwrap()),
    )
    .await);
    ok(send(
        &server,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "idle"}),
    )
    .await);
    let (_, data) = next_event(&mut watching, Duration::from_secs(5))
        .await
        .expect("pushed");
    assert_eq!(data["agent"]["id"], worker["id"]);
}

#[actix_web::test]
async fn the_agents_stream_shows_only_what_the_admin_may_see() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let hidden = new_board(&server, json!({})).await;
    let (visible, token) = agent(&server, &board, "Visible").await;
    let (secret, _) = agent(&server, &hidden, "Secret").await;
    let stream = "/api/v1/agents/stream";

    assert_eq!(server.get(stream).await.status, 401);
    let foreign = server
        .admin_get(&format!("{stream}?board_id={}", Uuid::new_v4()))
        .await;
    assert_eq!(foreign.status, 404);

    let mut on_board = SseClient::open(
        &server,
        &format!("{stream}?board_id={}", board["id"].as_str().unwrap()),
        None,
    )
    .await;
    ok(send(
        &server,
        Method::POST,
        &beat_path(&secret),
        json!({"status": "busy"}),
    )
    .await);
    ok(send(
        &server,
        Method::POST,
        &beat_path(&visible),
        json!({"status": "busy"}),
    )
    .await);
    let (_, data) = next_event(&mut on_board, Duration::from_secs(5))
        .await
        .expect("pushed");
    assert_eq!(
        data["agent"]["id"], visible["id"],
        "the filter's board only"
    );
    drop(on_board);

    // An admin who may read one board sees that board's agents only.
    grant_only(&server, &[&board]).await;
    server
        .db
        .client()
        .await
        .execute("UPDATE organization_members SET role = 'admin'", &[])
        .await
        .unwrap();
    server.caches_caught_up().await;
    let outside = server
        .admin_get(&format!(
            "{stream}?board_id={}",
            hidden["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(outside.status, 403);
    let mut scoped = SseClient::open(&server, stream, None).await;
    let hidden_id: Uuid = secret["id"].as_str().unwrap().parse().unwrap();
    server
        .db
        .client()
        .await
        .execute(
            "UPDATE agents SET status = 'idle' WHERE id = $1",
            &[&hidden_id],
        )
        .await
        .unwrap();
    ok(as_agent(
        &server,
        &token,
        Method::POST,
        "/api/v1/agent/heartbeat",
        json!({}),
    )
    .await);
    let (_, data) = next_event(&mut scoped, Duration::from_secs(5))
        .await
        .expect("pushed");
    assert_eq!(
        data["agent"]["id"], visible["id"],
        "not the hidden board's agent"
    );

    let member = server.db.client().await;
    member
        .execute("UPDATE organization_members SET role = 'member'", &[])
        .await
        .unwrap();
    server.caches_caught_up().await;
    assert_eq!(server.admin_get(stream).await.status, 403);
}

#[actix_web::test]
async fn a_change_made_on_another_instance_reaches_the_stream() {
    let a = Server::start().await;
    let board = new_board(&a, json!({})).await;
    let (worker, token) = agent(&a, &board, "Worker").await;
    let b = a.second_instance().await;

    let mut listener = SseClient::open(&a, "/api/v1/agents/stream", None).await;
    ok(as_agent(
        &b,
        &token,
        Method::POST,
        &beat_path(&worker),
        json!({"status": "busy"}),
    )
    .await);
    until(&mut listener, |agent| {
        agent["id"] == worker["id"] && agent["status"] == "busy"
    })
    .await;

    let created = ok(send(
        &b,
        Method::POST,
        "/api/v1/agents/heartbeat",
        json!({"name": "Late", "board_id": board["id"]}),
    )
    .await);
    until(&mut listener, |agent| agent["id"] == created["id"]).await;
}

#[actix_web::test]
async fn capabilities_are_added_listed_and_removed_within_the_org() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (worker, _) = agent(&server, &board, "Worker").await;
    let path = caps_path(&worker);

    assert_eq!(ok(server.admin_get(&path).await), json!([]));
    let python = ok(send(
        &server,
        Method::POST,
        &path,
        json!({"capability": " python "}),
    )
    .await);
    assert_eq!(
        (
            python["capability"].clone(),
            python["proficiency"].clone(),
            python["metadata"].clone(),
            python["agent_id"].clone()
        ),
        (
            json!("python"),
            json!("standard"),
            Value::Null,
            worker["id"].clone()
        )
    );
    assert!(python["organization_id"].is_string() && python["created_at"].is_string());
    let review = ok(send(
        &server,
        Method::POST,
        &path,
        json!({"capability": "code_review", "proficiency": "expert", "metadata": {"languages": ["rust"]}}),
    )
    .await);
    assert_eq!(review["metadata"], json!({"languages": ["rust"]}));
    let listed = ok(server.admin_get(&path).await);
    assert_eq!(listed, json!([python, review]));

    let twice = send(
        &server,
        Method::POST,
        &path,
        json!({"capability": "python"}),
    )
    .await;
    assert_eq!(
        (twice.status.as_u16(), twice.json["detail"].clone()),
        (409, json!("Agent already has this capability."))
    );
    for bad in [
        json!({"capability": "  "}),
        json!({}),
        json!({"capability": "x".repeat(129)}),
        json!({"capability": "x", "proficiency": ""}),
    ] {
        let reply = send(&server, Method::POST, &path, bad.clone()).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
    }

    ok(delete(&server, &format!("{path}/python")).await);
    let gone = delete(&server, &format!("{path}/python")).await;
    assert_eq!(
        (gone.status.as_u16(), gone.json["detail"].clone()),
        (404, json!("Capability not found."))
    );
    assert_eq!(ok(server.admin_get(&path).await), json!([review]));
    let unknown = caps_path(&json!({"id": Uuid::new_v4()}));
    assert_eq!(server.admin_get(&unknown).await.status, 404);
    assert_eq!(server.get(&path).await.status, 401);

    // Capabilities go with their agent.
    let (doomed, _) = agent(&server, &board, "Doomed").await;
    ok(send(
        &server,
        Method::POST,
        &caps_path(&doomed),
        json!({"capability": "testing"}),
    )
    .await);
    ok(delete(
        &server,
        &format!("/api/v1/agents/{}", doomed["id"].as_str().unwrap()),
    )
    .await);
    let left: i64 = server
        .db
        .client()
        .await
        .query_one("SELECT count(*) FROM agent_capabilities", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&path).await.status, 404);
    let foreign = send(&server, Method::POST, &path, json!({"capability": "go"})).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        delete(&server, &format!("{path}/code_review")).await.status,
        404
    );
}

/// An admin's heartbeat for an agent (which locks the agent, then the board for its
/// activity) and the agent's own comments (which lock the board, then name the agent in
/// their activity) run at the same time without deadlocking each other.
#[actix_web::test]
async fn admin_heartbeats_and_the_agents_own_activity_do_not_deadlock() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let (lead, token) = agent(&server, &board, "Lead").await;
    crate::fixtures::make_lead(&server, &lead).await;
    let tasks = format!(
        "/api/v1/agent/boards/{}/tasks",
        board["id"].as_str().unwrap()
    );
    let task = ok(as_agent(
        &server,
        &token,
        Method::POST,
        &tasks,
        json!({"title": "Busy"}),
    )
    .await);
    let comments = format!("{tasks}/{}/comments", task["id"].as_str().unwrap());
    let beat = beat_path(&lead);
    for round in 0..15 {
        let beats = (0..3).map(|_| send(&server, Method::POST, &beat, json!({"status": "busy"})));
        let notes = (0..3).map(|n| {
            as_agent(
                &server,
                &token,
                Method::POST,
                &comments,
                json!({"message": format!("note {round}.{n}")}),
            )
        });
        let (beats, notes) = futures_util::future::join(
            futures_util::future::join_all(beats),
            futures_util::future::join_all(notes),
        )
        .await;
        for reply in beats.iter().chain(&notes) {
            assert!(
                reply.status.is_success(),
                "round {round}: {} {}",
                reply.status,
                reply.text
            );
        }
    }
}
