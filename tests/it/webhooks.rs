//! Board webhooks (domain.md §A15): admin CRUD, and the signed, size- and rate-limited ingest.

use awc::http::Method;
use serde_json::{json, Value};

use crate::fixtures::{create_agent, delete, new_board, send, sign, switch_to_new_org};
use crate::harness::{Reply, Server};

fn hooks_path(board: &Value) -> String {
    format!("/api/v1/boards/{}/webhooks", board["id"].as_str().unwrap())
}

/// A webhook that requires signatures.
async fn create_hook(server: &Server, board: &Value) -> Value {
    create_hook_with(
        server,
        board,
        json!({"description": "Triage GitHub pushes", "require_signature": true}),
    )
    .await
}

async fn create_hook_with(server: &Server, board: &Value, body: Value) -> Value {
    let reply = send(server, Method::POST, &hooks_path(board), body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json
}

async fn ingest(server: &Server, path: &str, body: &str, signature: Option<&str>) -> Reply {
    let mut headers = vec![("X-GitHub-Event", "push")];
    if let Some(sig) = signature {
        headers.push(("X-Webhook-Signature", sig));
    }
    server
        .raw(Method::POST, path, None, Some(body), &headers)
        .await
        .unwrap()
}

async fn payload_total(server: &Server, hook_path: &str) -> i64 {
    let reply = server.admin_get(&format!("{hook_path}/payloads")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["total"].as_i64().unwrap()
}

#[actix_web::test]
async fn signed_payloads_are_stored_and_listed() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook(&server, &board).await;
    let secret = hook["secret"].as_str().expect("secret once at creation");
    let path = hook["endpoint_path"].as_str().unwrap().to_string();
    assert_eq!(
        path,
        format!("{}/{}", hooks_path(&board), hook["id"].as_str().unwrap())
    );
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["endpoint_url"], Value::Null);

    // The secret never comes back on reads, only from its own call.
    let read = server.admin_get(&path).await;
    assert_eq!(read.status, 200);
    assert!(read.json.get("secret").is_none(), "{}", read.text);
    assert_eq!(read.json["require_signature"], true);
    let kept = server.admin_get(&format!("{path}/secret")).await;
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(kept.json["secret"], secret);
    let list = server.admin_get(&hooks_path(&board)).await;
    assert_eq!(list.json["total"], 1);
    assert!(list.json["items"][0].get("secret").is_none());

    let body = r#"{"ref":"refs/heads/main"}"#;
    let reply = ingest(&server, &path, body, Some(&sign(secret, body))).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    assert_eq!(reply.json["ok"], true);
    assert_eq!(reply.json["webhook_id"], hook["id"]);
    assert_eq!(reply.json["board_id"], board["id"]);
    let payload_id = reply.json["payload_id"].as_str().unwrap();

    let page = server.admin_get(&format!("{path}/payloads")).await;
    assert_eq!(page.json["total"], 1);
    let stored = &page.json["items"][0];
    assert_eq!(stored["id"], payload_id);
    assert_eq!(stored["payload"], json!({"ref": "refs/heads/main"}));
    assert_eq!(stored["content_type"], "application/json");
    assert_eq!(stored["headers"]["x-github-event"], "push");
    assert!(stored["headers"].get("authorization").is_none());

    let one = server
        .admin_get(&format!("{path}/payloads/{payload_id}"))
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json["id"], payload_id);

    // Rotation: the old secret stops verifying, the new one works.
    let rotated = send(&server, Method::POST, &format!("{path}/secret"), json!({})).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.json["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        ingest(&server, &path, body, Some(&sign(secret, body)))
            .await
            .status,
        401
    );
    assert_eq!(
        ingest(&server, &path, body, Some(&sign(new_secret, body)))
            .await
            .status,
        202
    );

    // Disabled → 410; delete removes the payloads too.
    let patched = send(&server, Method::PATCH, &path, json!({"enabled": false})).await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json["enabled"], false);
    let gone = ingest(&server, &path, body, Some(&sign(new_secret, body))).await;
    assert_eq!(gone.status, 410);
    assert_eq!(gone.json["detail"], "Webhook is disabled.");
    assert_eq!(delete(&server, &path).await.status, 200);
    assert_eq!(server.admin_get(&path).await.status, 404);
    let db = server.db.client().await;
    let left: i64 = db
        .query_one("SELECT count(*) FROM board_webhook_payloads", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// As in the reference, a webhook made in the console (which never reads the secret) is
/// called without a signature; a wrong signature is still refused, and a webhook can be
/// switched to require one.
#[actix_web::test]
async fn unsigned_calls_reach_webhooks_that_do_not_require_a_signature() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook_with(&server, &board, json!({"description": "From the console"})).await;
    assert_eq!(hook["require_signature"], false);
    let path = hook["endpoint_path"].as_str().unwrap().to_string();
    let body = r#"{"event":"deploy"}"#;

    let unsigned = ingest(&server, &path, body, None).await;
    assert_eq!(unsigned.status, 202, "{}", unsigned.text);
    let wrong = ingest(&server, &path, body, Some(&sign("guess", body))).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    assert_eq!(wrong.json["detail"], "Invalid webhook signature.");
    assert_eq!(payload_total(&server, &path).await, 1);

    let strict = send(
        &server,
        Method::PATCH,
        &path,
        json!({"require_signature": true}),
    )
    .await;
    assert_eq!(strict.status, 200, "{}", strict.text);
    assert_eq!(strict.json["require_signature"], true);
    assert_eq!(ingest(&server, &path, body, None).await.status, 401);
    let secret = server.admin_get(&format!("{path}/secret")).await.json["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = ingest(&server, &path, body, Some(&sign(&secret, body))).await;
    assert_eq!(signed.status, 202, "{}", signed.text);
    assert_eq!(payload_total(&server, &path).await, 2);

    // Another organization reads neither the webhook nor its secret.
    switch_to_new_org(&server).await;
    assert_eq!(
        server.admin_get(&format!("{path}/secret")).await.status,
        404
    );
}

#[actix_web::test]
async fn bad_signatures_and_big_bodies_store_nothing() {
    let server = Server::builder()
        .env("WEBHOOK_MAX_BODY_BYTES", "2048")
        .start()
        .await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook(&server, &board).await;
    let secret = hook["secret"].as_str().unwrap();
    let path = hook["endpoint_path"].as_str().unwrap().to_string();
    let body = r#"{"a":1}"#;

    let missing = ingest(&server, &path, body, None).await;
    assert_eq!(missing.status, 401, "{}", missing.text);
    let wrong = ingest(&server, &path, body, Some(&sign("not-the-secret", body))).await;
    assert_eq!(wrong.status, 401);
    let other_body = ingest(&server, &path, r#"{"a":2}"#, Some(&sign(secret, body))).await;
    assert_eq!(other_body.status, 401);
    let unprefixed = sign(secret, body).replace("sha256=", "");
    assert_eq!(
        ingest(&server, &path, body, Some(&unprefixed)).await.status,
        401
    );

    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(4096));
    let too_big = ingest(&server, &path, &big, Some(&sign(secret, &big))).await;
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    assert_eq!(payload_total(&server, &path).await, 0);

    // Unknown webhook or a webhook of another board: 404.
    let other = new_board(&server, json!({})).await;
    let foreign = format!("{}/{}", hooks_path(&other), hook["id"].as_str().unwrap());
    assert_eq!(
        ingest(&server, &foreign, body, Some(&sign(secret, body)))
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn calls_over_the_rate_limit_answer_429() {
    let server = Server::builder()
        .env("WEBHOOK_RATE_LIMIT_PER_MINUTE", "3")
        .start()
        .await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook(&server, &board).await;
    let secret = hook["secret"].as_str().unwrap();
    let path = hook["endpoint_path"].as_str().unwrap().to_string();
    let body = r#"{"n":1}"#;
    for _ in 0..3 {
        let ok = ingest(&server, &path, body, Some(&sign(secret, body))).await;
        assert_eq!(ok.status, 202, "{}", ok.text);
    }
    let limited = ingest(&server, &path, body, Some(&sign(secret, body))).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(payload_total(&server, &path).await, 3);

    // Another webhook has its own budget.
    let second = create_hook(&server, &board).await;
    let second_path = second["endpoint_path"].as_str().unwrap();
    let ok = ingest(
        &server,
        second_path,
        body,
        Some(&sign(second["secret"].as_str().unwrap(), body)),
    )
    .await;
    assert_eq!(ok.status, 202);
}

#[actix_web::test]
async fn admin_routes_need_auth_validate_and_hide_other_orgs() {
    let server = Server::start().await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook(&server, &board).await;
    let path = hook["endpoint_path"].as_str().unwrap().to_string();

    for p in [hooks_path(&board), path.clone(), format!("{path}/payloads")] {
        assert_eq!(server.get(&p).await.status, 401, "GET {p}");
    }
    let anon = server
        .call(
            Method::POST,
            &hooks_path(&board),
            None,
            Some(r#"{"description":"x"}"#),
        )
        .await;
    assert_eq!(anon.status, 401);

    let blank = send(
        &server,
        Method::POST,
        &hooks_path(&board),
        json!({"description": "  "}),
    )
    .await;
    assert_eq!(blank.status, 422, "{}", blank.text);
    let wrong_type = send(
        &server,
        Method::POST,
        &hooks_path(&board),
        json!({"description": "x", "enabled": "maybe"}),
    )
    .await;
    assert_eq!(wrong_type.status, 422);

    // agent_id must be an agent of this board.
    let other_board = new_board(&server, json!({})).await;
    let agent = create_agent(&server, &other_board, "Helper").await;
    assert_eq!(agent.status, 200, "{}", agent.text);
    let foreign_agent = send(
        &server,
        Method::POST,
        &hooks_path(&board),
        json!({"description": "x", "agent_id": agent.json["id"]}),
    )
    .await;
    assert_eq!(foreign_agent.status, 422);
    assert_eq!(
        foreign_agent.json["detail"],
        "agent_id must reference an agent on this board."
    );
    let own_agent = create_agent(&server, &board, "Lead").await;
    let bound = send(
        &server,
        Method::PATCH,
        &path,
        json!({"agent_id": own_agent.json["id"], "description": "Now bound"}),
    )
    .await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    assert_eq!(bound.json["agent_id"], own_agent.json["id"]);
    assert_eq!(bound.json["description"], "Now bound");

    switch_to_new_org(&server).await;
    assert_eq!(server.admin_get(&hooks_path(&board)).await.status, 404);
    assert_eq!(server.admin_get(&path).await.status, 404);
    assert_eq!(
        server.admin_get(&format!("{path}/payloads")).await.status,
        404
    );
    assert_eq!(
        send(&server, Method::PATCH, &path, json!({"enabled": false}))
            .await
            .status,
        404
    );
    assert_eq!(delete(&server, &path).await.status, 404);
}

#[actix_web::test]
async fn without_redis_the_limit_is_counted_in_the_process() {
    let server = Server::builder()
        .without_redis()
        .env("WEBHOOK_RATE_LIMIT_PER_MINUTE", "1")
        .start()
        .await;
    let board = new_board(&server, json!({})).await;
    let hook = create_hook(&server, &board).await;
    let secret = hook["secret"].as_str().unwrap();
    let path = hook["endpoint_path"].as_str().unwrap();
    let body = "plain text";
    let first = ingest(&server, path, body, Some(&sign(secret, body))).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let second = ingest(&server, path, body, Some(&sign(secret, body))).await;
    assert_eq!(second.status, 429);
    let page = server.admin_get(&format!("{path}/payloads")).await;
    assert_eq!(page.json["items"][0]["payload"], "plain text");
}
