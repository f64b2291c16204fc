//! The statements the hot paths send (issue 28's regression guard, which times nothing):
//! PostgreSQL itself counts them (`pg_stat_statements`, on a cluster of the test's own).
//! A change that sends one more statement on one of these paths fails here; one that sends
//! fewer lowers the number. Also: what instances keep in memory follows changes made
//! elsewhere.

use std::time::Duration;

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{create_board, heartbeat, registered, send, switch_to_new_org};
use crate::harness::{eventually, PgProcess, Server, WsClient, ADMIN_TOKEN};

/// Requests per path: statements a path sends every time are called this often, what
/// runs in the background (sweeps, ticks) far less often in the same moment.
const ROUNDS: i64 = 40;

/// The statements sent per request while `round` runs `ROUNDS` times, one after another;
/// panics with the statements when that is not a whole number.
async fn statements_per_round<F, Fut>(pg: &tokio_postgres::Client, mut round: F) -> i64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    pg.batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
    for _ in 0..ROUNDS {
        round().await;
    }
    let rows = pg
        .query(
            "SELECT query, calls FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'postgres') AND calls >= $1 \
             ORDER BY calls DESC",
            &[&(ROUNDS / 2)],
        )
        .await
        .unwrap();
    let listing: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{:>5} × {}",
                r.get::<_, i64>("calls"),
                r.get::<_, String>("query")
            )
        })
        .collect();
    let total: i64 = rows.iter().map(|r| r.get::<_, i64>("calls")).sum();
    assert_eq!(
        total % ROUNDS,
        0,
        "not a whole number of statements per request:\n{}",
        listing.join("\n")
    );
    eprintln!("{}", listing.join("\n"));
    total / ROUNDS
}

#[actix_web::test]
async fn the_hot_paths_send_no_more_statements_than_they_did() {
    let pg = PgProcess::start();
    // The rule engine (which reads each event a write records) runs elsewhere: only what
    // the requests send is counted.
    let server = Server::builder()
        .database_url(&pg.url("postgres"))
        .env("PROACTIVITY_ENGINE_IN_SERVE", "false")
        .start()
        .await;
    let (db, connection) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(connection);
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .unwrap();
    let (gateway, relay_token) = registered(&server, "Office").await;
    let board = create_board(&server, &json!({"id": gateway}), "Counted", json!({})).await;
    let board = board["id"].as_str().unwrap().to_string();
    for i in 0..30 {
        let reply = send(
            &server,
            Method::POST,
            &format!("/api/v1/boards/{board}/tasks"),
            json!({"title": format!("Task {i}")}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let live = eventually(Duration::from_secs(10), || async {
        server.metric("mc_cache_live").await == 1
    })
    .await;
    assert!(live, "the caches never went live");

    let get = |path: String| {
        let server = &server;
        async move {
            let reply = server.admin_get(&path).await;
            assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        }
    };
    // The principal and the organization's boards are kept: nothing is read.
    get("/api/v1/boards".into()).await;
    let boards = statements_per_round(&db, || get("/api/v1/boards".into())).await;
    assert_eq!(boards, 0, "GET /boards");

    // The board comes from the kept list; the page with its total, then (sent together)
    // dependencies, tags, and the board's custom fields with the tasks' values.
    let tasks_page = format!("/api/v1/boards/{board}/tasks?limit=20");
    get(tasks_page.clone()).await;
    let tasks = statements_per_round(&db, || get(tasks_page.clone())).await;
    assert_eq!(tasks, 5, "a task page");

    // A heartbeat alone in its batch: BEGIN, the batch's one statement, COMMIT (the relay
    // token's hash is kept).
    let beat = || async {
        assert_eq!(beat(&server, &gateway, &relay_token).await, 200);
    };
    beat().await;
    let heartbeat = statements_per_round(&db, beat).await;
    assert_eq!(heartbeat, 3, "a heartbeat");

    // A task write (no tags, dependencies or custom fields): BEGIN, the board, the
    // board's custom fields, the insert, the agents to notify, the task's read (its
    // dependencies and tags: its custom-field values are those the write found), the
    // board's numbered entries (one statement), the organization's event, COMMIT.
    let write = || {
        let server = &server;
        let path = format!("/api/v1/boards/{board}/tasks");
        async move {
            let reply = send(server, Method::POST, &path, json!({"title": "Counted"})).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
    };
    write().await;
    let writes = statements_per_round(&db, write).await;
    assert_eq!(writes, 10, "a task write");

    // A socket watches the board: its room gets each write's events with the news and
    // reads nothing.
    let mut watcher = WsClient::connect(
        &server,
        &format!("/ws/board/{board}/sync?token={ADMIN_TOKEN}"),
    )
    .await;
    assert_eq!(watcher.expect_json().await["type"], "board.state");
    write().await;
    watcher.next_of("task.created").await;
    // Each round waits for the event, so a room's read would be counted in its round.
    let watcher = tokio::sync::Mutex::new(watcher);
    let watched = statements_per_round(&db, || async {
        write().await;
        watcher.lock().await.next_of("task.created").await;
    })
    .await;
    assert_eq!(watched, 10, "a task write on a watched board");
}

/// What one instance keeps of an admin and its boards follows a change made through
/// another instance or by SQL, and a rotated relay token stops working on every instance.
#[actix_web::test]
async fn kept_principals_boards_and_relay_tokens_follow_changes_made_elsewhere() {
    let a = Server::start().await;
    let b = Server::builder().start_on(&a).await;
    let (gateway, relay_token) = registered(&a, "Office").await;
    let board = create_board(&a, &json!({"id": gateway}), "Home", json!({})).await;
    let total = |s: &Value| s["total"].as_i64().unwrap();
    for server in [&a, &b] {
        assert_eq!(total(&server.admin_get("/api/v1/boards").await.json), 1);
    }
    // A board made through one instance is listed by both (each kept the list of one).
    create_board(&a, &json!({"id": gateway}), "Second", json!({})).await;
    assert_eq!(total(&a.admin_get("/api/v1/boards").await.json), 2);
    b.caches_caught_up().await;
    assert_eq!(total(&b.admin_get("/api/v1/boards").await.json), 2);
    // Another organization becomes the active one (by SQL, as an operator would): both
    // instances answer for it.
    switch_to_new_org(&a).await;
    b.caches_caught_up().await;
    for server in [&a, &b] {
        assert_eq!(total(&server.admin_get("/api/v1/boards").await.json), 0);
        let read = server
            .admin_get(&format!("/api/v1/boards/{}", board["id"].as_str().unwrap()))
            .await;
        assert_eq!(read.status, 404);
    }

    // A heartbeat through each instance keeps the token's hash there; the gateway
    // registers again (a new relay token): the old token is refused everywhere.
    for server in [&a, &b] {
        assert_eq!(beat(server, &gateway, &relay_token).await, 200);
    }
    a.db.client()
        .await
        .execute(
            "UPDATE gateways SET relay_token_hash = 'rotated' WHERE id = $1::text::uuid",
            &[&gateway],
        )
        .await
        .unwrap();
    for server in [&a, &b] {
        server.caches_caught_up().await;
        assert_eq!(beat(server, &gateway, &relay_token).await, 401);
    }
}

/// A relay heartbeat's status.
async fn beat(server: &Server, gateway: &str, token: &str) -> awc::http::StatusCode {
    let body = json!({"gateway_id": gateway, "relay_token": token, "status": "online"});
    heartbeat(server, &body).await.status
}
